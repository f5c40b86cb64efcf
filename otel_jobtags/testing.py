"""Helpers for asserting on tagged records in an application's own tests.

>>> from otel_jobtags.testing import capture_logs
>>> with capture_logs(registry) as logs:          # doctest: +SKIP
...     run_my_job()
>>> [(r.job_tag, r.level, r.message) for r in logs]   # doctest: +SKIP
[('AUTO_REBAL', 'INFO', '[AUTO_REBAL] job started')]

The records are attributed exactly as the exporting handler attributes them,
so a job's records look as the collector would receive them. (Unlike the
exporting handler, it also captures what the OpenTelemetry SDK and gRPC log
about themselves.)

:func:`export_in_memory` installs with an in-memory exporter, to assert on
exactly what would be exported. A test suite that builds the whole
application sets ``OTEL_LOGS_EXPORTER=none``: the application's own
``install()`` then exports nothing and has nothing to deliver at exit.

:func:`run_job` calls a job function as the scheduler integration runs each
scheduled run -- in the job's context with a fresh run id, with its run
record -- without a scheduler, and returns what happened.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

from .configure import Installation, current_installation, default_exporter, install
from .handler import ATTR_JOB_ID, ATTR_JOB_RUN_ID, ATTR_JOB_TAG, JobTagFilter
from .scheduler import JobRun, RunRecordPolicy
from .scheduler import run_job as _run_job
from .tags import JobTag, TagRegistry

__all__ = [
    "CapturedExports",
    "CapturedLog",
    "ExportedLog",
    "ExportedLogs",
    "JobRun",
    "capture_exports",
    "capture_logs",
    "export_in_memory",
    "run_job",
]

_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@dataclass(frozen=True)
class CapturedLog:
    """One record as the handler would export it."""

    level: str
    """Level name, e.g. ``"INFO"``."""
    logger: str
    """Name of the logger it was logged on."""
    message: str
    """The formatted message, with its ``[TAG] `` prefix when attributed."""
    job_tag: str | None
    """The ``job.tag`` attribute, or ``None`` outside any job."""
    job_id: str | None
    """The ``job.id`` attribute."""
    run_id: str | None = None
    """The ``job.run_id`` attribute, when the run has one."""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """Every non-standard attribute of the record (``extra=`` and ours)."""
    exc_info: Any = None
    """The record's ``exc_info`` (exception type, value, traceback) or ``None``."""


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[CapturedLog], registry: TagRegistry | None) -> None:
        super().__init__(logging.NOTSET)
        self.sink = sink
        self.addFilter(JobTagFilter(registry))

    def emit(self, record: logging.LogRecord) -> None:
        d = record.__dict__
        self.sink.append(
            CapturedLog(
                level=record.levelname,
                logger=record.name,
                message=record.getMessage(),
                job_tag=d.get(ATTR_JOB_TAG),
                job_id=d.get(ATTR_JOB_ID),
                run_id=d.get(ATTR_JOB_RUN_ID),
                attributes={k: v for k, v in d.items() if k not in _STANDARD},
                exc_info=record.exc_info,
            )
        )


@contextmanager
def capture_logs(
    registry: TagRegistry | None = None,
    *,
    level: int = logging.DEBUG,
    logger: str | None = None,
) -> Iterator[list[CapturedLog]]:
    """Capture the records logged inside the block, attributed to their jobs.

    Args:
        registry: the tags to resolve ``[TAG]`` prefixes and explicit values
            against; by default the active registry.
        level: the lowest level captured; the logger's level is lowered to it
            for the block and restored afterwards.
        logger: the logger to capture from; the root logger by default.

    Yields:
        A list that fills with :class:`CapturedLog` entries as records arrive.
    """
    captured: list[CapturedLog] = []
    target = logging.getLogger(logger)
    handler = _ListHandler(captured, registry)
    handler.setLevel(level)
    previous = target.level
    target.addHandler(handler)
    target.setLevel(min(level, previous) if previous else level)
    try:
        yield captured
    finally:
        target.removeHandler(handler)
        target.setLevel(previous)


@dataclass(frozen=True)
class ExportedLog:
    """One record as the exporter received it."""

    level: str
    """The OpenTelemetry severity text, e.g. ``"INFO"``, ``"WARN"``."""
    body: Any
    """The exported body, e.g. ``"[AUTO_REBAL] job started"``."""
    attributes: Mapping[str, Any]
    """The exported attributes (``job.tag``, ``job.id``, ``extra=`` values...)."""


class ExportedLogs:
    """What an in-memory installation exported; see :func:`export_in_memory`."""

    def __init__(self, installation: Installation, exporter: InMemoryLogRecordExporter) -> None:
        self.installation = installation
        """The installation, e.g. for its ``stats``."""
        self._exporter = exporter

    def records(self) -> list[ExportedLog]:
        """Deliver what is logged so far and return every exported record, in order."""
        self.installation.force_flush()
        return _exported(self._exporter)


@contextmanager
def export_in_memory(registry: TagRegistry | None = None, **install_options: Any) -> Iterator[ExportedLogs]:
    """``install()`` with an in-memory exporter for the block, then ``uninstall()``.

    Use it to assert on exactly what would be exported -- bodies, attributes,
    levels -- without a collector and with nothing to deliver at exit::

        with export_in_memory(JOBS, level="INFO") as exported:
            auto_rebalance()
        assert exported.records()[0].attributes["job.tag"] == "AUTO_REBAL"

    For a test suite that builds the whole application (which calls
    ``install()`` itself), set ``OTEL_LOGS_EXPORTER=none`` instead.

    Args:
        registry: the application's tags.
        install_options: any other :func:`~otel_jobtags.install` argument.

    Yields:
        :class:`ExportedLogs`.
    """
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    installation = install(registry, exporter=exporter, **install_options)
    try:
        yield ExportedLogs(installation, exporter)
    finally:
        installation.shutdown()


def _exported(exporter: InMemoryLogRecordExporter) -> list[ExportedLog]:
    return [
        ExportedLog(
            level=r.log_record.severity_text or "",
            body=r.log_record.body,
            attributes=dict(r.log_record.attributes or {}),
        )
        for r in exporter.get_finished_logs()
    ]


class CapturedExports:
    """What the installations made inside :func:`capture_exports` exported."""

    def __init__(self, exporters: list[InMemoryLogRecordExporter]) -> None:
        self._exporters = exporters

    def records(self) -> list[ExportedLog]:
        """Deliver what the running installation holds, and return every exported record, in order."""
        installation = current_installation()
        if installation is not None:
            installation.force_flush()
        return [log for exporter in self._exporters for log in _exported(exporter)]


@contextmanager
def capture_exports() -> Iterator[CapturedExports]:
    """Make the application's own ``install()`` export to memory, for the block.

    For a test that builds the whole application (which calls ``install()``
    with its OTLP settings): inside the block that ``install()`` exports to
    memory instead -- no collector needed, nothing left to deliver at exit --
    and the test can assert on exactly what would have been exported::

        with capture_exports() as exported:
            app = create_app()          # calls otel_jobtags.install(JOBS, ...)
            app.run_job("auto_rebalance")
        assert exported.records()[-1].body == "[AUTO_REBAL] done"

    Yields:
        :class:`CapturedExports`.
    """
    exporters: list[InMemoryLogRecordExporter] = []

    def factory() -> InMemoryLogRecordExporter:
        exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        exporters.append(exporter)
        return exporter

    with default_exporter(factory):
        yield CapturedExports(exporters)


def run_job(
    registry: TagRegistry,
    job: JobTag | str,
    func: Callable[..., Any],
    /,
    *args: Any,
    run_records: RunRecordPolicy | bool = True,
    **kwargs: Any,
) -> JobRun:
    """Run a job function once exactly as the scheduler would: in its context, with its run record.

    Every record the function (and what it calls) logs carries the job's
    tag and a fresh ``job.run_id``; the run record follows, as
    ``otel_jobtags.scheduler.connect`` writes it. What the function raises
    is recorded and returned, not raised::

        with capture_logs(JOBS) as logs:
            run = run_job(JOBS, "auto_rebalance", rebalance, dry_run=True)
        assert run.outcome == "success"
        assert {r.run_id for r in logs} == {run.run_id}

    Args:
        registry: the application's tags.
        job: the job: its id, tag name or tag.
        func: the job function; ``args`` and ``kwargs`` are passed to it.
        run_records: as for :func:`otel_jobtags.scheduler.run_job`.

    Returns:
        :class:`~otel_jobtags.scheduler.JobRun`: outcome, run id, duration,
        the returned value or the raised error.

    Raises:
        UnknownJobError: the registry does not know ``job``.
    """
    return _run_job(registry.resolve(job), func, *args, run_records=run_records, **kwargs)
