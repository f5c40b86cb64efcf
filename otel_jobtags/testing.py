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
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .handler import ATTR_JOB_ID, ATTR_JOB_RUN_ID, ATTR_JOB_TAG, JobTagFilter
from .tags import TagRegistry

__all__ = ["CapturedLog", "capture_logs"]

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
