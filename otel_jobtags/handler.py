"""The logging side of the bridge: the OpenTelemetry handler and the text formatter.

:class:`JobTagHandler` is the maintained OpenTelemetry logging handler
(``opentelemetry-instrumentation-logging``) with job attribution built in (the
rules of :mod:`otel_jobtags.attribution`), and a guard that keeps the
OpenTelemetry SDK's, exporter's and gRPC's own records out of the exported
stream (they go to stderr instead). It leaves the record's message as it
finds it, so the application's other handlers see what they always saw; the
``[TAG] `` prefix is added to the exported body only (a setting).

:class:`JobTagFormatter` is a text formatter that shows the job fields of
every record.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import traceback
from time import time_ns
from typing import Any, Literal

from opentelemetry._logs import Logger, LoggerProvider, LogRecord, NoOpLogger, SeverityNumber
from opentelemetry.context import get_current as _get_current_context
from opentelemetry.instrumentation.log_utils import std_to_otel
from opentelemetry.instrumentation.logging.handler import LoggingHandler

from . import _diagnostics, _flags
from .attribution import (
    ATTR_JOB_ID,
    ATTR_JOB_PREFIX_TAG,
    ATTR_JOB_RUN_ID,
    ATTR_JOB_TAG,
    JobTagFilter,
    report_internal_error,
    with_prefix,
)
from .delivery.internal import state as _exporting
from .delivery.queue import RecordQueue
from .delivery.records import RECORD_OVERHEAD, attributes_size, text_size
from .errors import ConfigError
from .logfiles import CONTINUATION_MARK
from .pipeline_logs import PIPELINE_LOGGERS
from .tags import TagRegistry

__all__ = [
    "ATTR_JOB_ID",
    "ATTR_JOB_PREFIX_TAG",
    "ATTR_JOB_RUN_ID",
    "ATTR_JOB_TAG",
    "JobTagFilter",
    "JobTagFormatter",
    "JobTagHandler",
]

BODY_PREFIX_VARIABLE = "OTEL_JOBTAGS_BODY_PREFIX"
# Values an OpenTelemetry attribute can hold; anything else is exported as its str().
_PRIMITIVES = frozenset((str, bool, int, float, bytes))
# What structlog's stdlib integration (``wrap_for_formatter``) passes in
# ``extra=`` for its formatter: its own objects, not data about the record.
_STRUCTLOG_EXTRAS = ("_logger", "_name")


# The standard LogRecord attributes: everything else on a record (``extra=``,
# filters) becomes an OpenTelemetry attribute, as in the contrib handler.
_RESERVED_ATTRS = frozenset(
    (
        "asctime", "args", "created", "exc_info", "exc_text", "filename", "funcName",
        "getMessage", "message", "levelname", "levelno", "lineno", "module", "msecs",
        "msg", "name", "pathname", "process", "processName", "relativeCreated",
        "stack_info", "thread", "threadName", "taskName",
    )
)  # fmt: skip
# A fresh LogRecord has only standard attributes; with job.tag and job.id it
# has two more. (Formatters add "message"/"asctime": such records take the
# general path.)
_TAGGED_RECORD_LEN = len(vars(logging.makeLogRecord({}))) + 2
_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}
_SEVERITY_NUMBER: dict[int, SeverityNumber] = {}
_UNSEEN: Any = object()


_internal_names: dict[str, bool] = {}  # logger name -> internal? (a cache: names are few)


def _is_internal_name(name: str) -> bool:
    internal = any(name == prefix or name.startswith(prefix + ".") for prefix in PIPELINE_LOGGERS)
    _internal_names[name] = internal
    return internal


def is_internal_record(record: logging.LogRecord) -> bool:
    """True for records the export pipeline logs about itself."""
    if getattr(_exporting, "active", False):
        return True
    internal = _internal_names.get(record.name)
    return _is_internal_name(record.name) if internal is None else internal


_NEXT_LINE = "\n" + CONTINUATION_MARK


class JobTagFormatter(logging.Formatter):
    """A text formatter that can show the job fields of every record.

    Use ``%(job.tag)s``, ``%(job.id)s`` and ``%(job.run_id)s`` in a
    %-style format; records outside any job show ``-`` (or the given
    ``defaults``). Works with ``dictConfig`` as
    ``"class": "otel_jobtags.JobTagFormatter"``.

    The dotted names only work with the %-style: ``{job.tag}`` would read an
    attribute ``tag`` of a field ``job``, so other styles naming them raise
    :class:`~otel_jobtags.ConfigError`.

    Every line after a record's first -- a multi-line message, a traceback --
    starts with :data:`~otel_jobtags.logfiles.CONTINUATION_MARK` (``"  | "``),
    so that no message can pass a line of its own off as another record: the
    log readers (:func:`~otel_jobtags.read_job_logs`, ``otel-jobtags logs``)
    never start a record at a marked line, and give the continuation lines
    back without the mark. The first line is left as it is (``grep '[TAG]'``
    finds it as before)::

        2025-10-23 14:30:47,345 ERROR: [AUTO_REBAL] failed
          | Traceback (most recent call last):
          |   File "/srv/app/jobs.py", line 94, in job
          | app.UpstreamError: 503
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: Literal["%", "{", "$"] = "%",
        validate: bool = True,
        *,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        merged = {ATTR_JOB_TAG: "-", ATTR_JOB_ID: "-", ATTR_JOB_RUN_ID: "-", **(defaults or {})}
        dotted = [name for name in (ATTR_JOB_TAG, ATTR_JOB_ID, ATTR_JOB_RUN_ID) if fmt and name in fmt]
        if dotted and style != "%":
            raise ConfigError(
                f"Invalid format {fmt!r}: the job fields work in %-style formats only, "
                f"e.g. '%(asctime)s %({dotted[0]})s %(message)s'"
            )
        if validate and dotted and fmt:
            # logging's validator needs a \w+ field name: check the format
            # with the dotted names spelled so, then build it unvalidated.
            try:
                logging.Formatter(fmt.replace(".", "_"), datefmt, style, validate=True)
            except ValueError:
                raise ValueError(f"Invalid format {fmt!r} for '%' style") from None
            validate = False
        super().__init__(fmt, datefmt, style, validate, defaults=merged)

    def format(self, record: logging.LogRecord) -> str:
        """The record as text, every line after the first starting with the continuation mark."""
        text = super().format(record)
        if "\n" in text:
            text = text.replace("\n", _NEXT_LINE)
        return text


def _holding_logging_lock() -> bool:
    lock = getattr(logging, "_lock", None)  # the module lock: an RLock on every supported Python
    is_owned = getattr(lock, "_is_owned", None)
    return bool(is_owned()) if callable(is_owned) else False


class JobTagHandler(LoggingHandler):
    """The OpenTelemetry logging handler, attributing records to their job.

    A :class:`JobTagFilter` runs first, so exported records carry ``job.tag``
    and ``job.id`` attributes; the record's message is left as it is (other
    handlers see it unchanged) and the exported body starts with ``[TAG] ``
    unless ``body_prefix`` is off -- switch it off for structured bodies, so
    that a JSON body stays JSON. A message that is a dict (structlog's event
    dict, with no formatter on this handler) is exported as JSON text.
    Attribute values OpenTelemetry cannot hold are exported as their ``str()``.

    Records that the
    OpenTelemetry SDK, the exporters and gRPC log about themselves -- or that
    any code logs while exporting -- are never exported: those of level
    WARNING and above are written to ``stderr`` instead (at most one line per
    message per ``throttle_interval`` seconds), so the operator still sees them.

    The record is translated as the contrib handler does it (same body,
    severity, attributes, ``exception.*`` attributes, event name), on a
    shorter path: the SDK logger of each logger name is looked up once, and
    no handler lock is taken (nothing here needs one).

    Args:
        logger_provider: the SDK ``LoggerProvider`` records are emitted to.
        registry: passed to the :class:`JobTagFilter`.
        level: the handler's level.
        body_prefix: start the exported body with ``[TAG] ``; else
            ``OTEL_JOBTAGS_BODY_PREFIX``, else on.
        prefix_attribution: passed to the :class:`JobTagFilter`.
        strict: passed to the :class:`JobTagFilter`.
        stderr: where internal records go; ``None`` means a stream handler on stderr.
        throttle_interval: seconds between two stderr lines with the same message.
        queue: hand records over to this queue of a
            :class:`~otel_jobtags.delivery.DeliveryProcessor` (``install`` does): the log
            call then only attributes the record and formats its message and
            traceback; the OpenTelemetry record is built on the export thread.
    """

    def __init__(
        self,
        logger_provider: LoggerProvider | None = None,
        *,
        registry: TagRegistry | None = None,
        level: int = logging.NOTSET,
        stderr: logging.Handler | None = None,
        throttle_interval: float = _diagnostics.DEFAULT_INTERVAL,
        body_prefix: bool | None = None,
        prefix_attribution: bool | None = None,
        strict: bool | None = None,
        queue: RecordQueue | None = None,
    ) -> None:
        super().__init__(level=level, logger_provider=logger_provider)
        self.queue = queue
        self.job_filter = JobTagFilter(
            registry, prefix=False, prefix_attribution=prefix_attribution, strict=strict
        )
        self.addFilter(self.job_filter)
        self.body_prefix = _flags.resolve_flag(body_prefix, BODY_PREFIX_VARIABLE, True)
        self._finish_body = _prefixed_body if self.body_prefix else _plain_body
        if stderr is None:
            stderr = logging.StreamHandler(sys.stderr)
            stderr.setFormatter(logging.Formatter("otel-jobtags: %(name)s %(levelname)s: %(message)s"))
            stderr.setLevel(logging.WARNING)
        self._internal = stderr
        self._throttle = _diagnostics.Throttle(throttle_interval)
        self._otel_loggers: dict[str, Logger | None] = {}

    def handle(self, record: logging.LogRecord) -> bool:
        """Divert internal records to stderr; export the others."""
        # is_internal_record(), inlined: this runs for every record.
        internal = _internal_names.get(record.name)
        if internal is None:
            internal = _is_internal_name(record.name)
        if internal or getattr(_exporting, "active", False):
            if record.levelno >= self._internal.level:
                self._divert(record)
            return False
        filters = self.filters
        if len(filters) == 1 and filters[0] is self.job_filter:
            rv: bool | logging.LogRecord = self.job_filter.filter(record)
        else:
            rv = self.filter(record)
        if not rv:
            return False
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace the record
            record = rv
        if self.queue is not None:
            self._hand_over(record, self.queue)
        else:
            self.emit(record)
        return True

    flushOnClose = False  # noqa: N815 -- the name logging.shutdown() looks up (Python 3.12+)
    """Not flushed by ``logging.shutdown(handlers)``, which ``dictConfig`` runs while holding
    logging's module lock (see :meth:`flush`). The exit hook and ``Installation.shutdown``
    deliver what is left."""

    def flush(self) -> None:
        """Ask the provider to export what is buffered (in the background); nothing once closed.

        ``logging.shutdown()`` flushes every handler ever created at exit,
        after ``install()``'s own exit hook has delivered and closed this
        one: starting a thread then would fail on newer Pythons.
        Nor while this thread holds logging's module lock (``dictConfig`` and
        ``basicConfig(force=True)`` flush the handlers they clear under it): the
        flush waits for the delivery thread, which may be waiting for that lock
        (a log call, a logger looked up) -- a cycle.
        """
        if not getattr(self, "_closed", False) and not _holding_logging_lock():
            super().flush()

    def _divert(self, record: logging.LogRecord) -> None:
        held = self._throttle.allow(f"{record.name}\0{record.msg}")
        if held is None:
            return
        if held:
            record = logging.makeLogRecord(record.__dict__)
            record.msg = f"{record.getMessage()} ({held} similar held back)"
            record.args = None
        with contextlib.suppress(Exception):
            self._internal.handle(record)

    def _otel_logger(self, name: str) -> Logger | None:
        logger = self._logger_provider.get_logger(name)
        found = None if isinstance(logger, NoOpLogger) else logger
        self._otel_loggers[name] = found
        return found

    def _parts(self, record: logging.LogRecord) -> tuple[str, dict[str, Any] | None, int]:
        """The exported body and attributes of ``record``, and the attributes' size."""
        d = record.__dict__
        attributes: dict[str, Any] | None
        if len(d) == _TAGGED_RECORD_LEN and ATTR_JOB_TAG in d and ATTR_JOB_ID in d:
            # The common case, a record of a job and nothing else extra:
            # its only non-standard attributes are the two the filter set.
            tag, job_id = d[ATTR_JOB_TAG], d[ATTR_JOB_ID]
            attributes = {ATTR_JOB_TAG: tag, ATTR_JOB_ID: job_id}
            size = 14 + len(tag) + len(job_id)
        else:
            extra = d.keys() - _RESERVED_ATTRS
            attributes = _attribute_values(d, extra) if extra else None
            size = 0
        if record.exc_info:
            attributes = _exception_attributes(record.exc_info, attributes or {})
            size = 0
        if attributes and not size:
            size = attributes_size(attributes)
        if self.formatter:
            body = self.format(record)
        else:  # record.getMessage(), inlined
            body = record.msg
            if type(body) is dict:  # structlog's event dict
                body = json.dumps(body, default=str, ensure_ascii=False)
            elif type(body) is not str:
                body = str(body)
            if record.args:
                body = body % record.args
        return self._finish_body(body, d), attributes, size

    def _hand_over(self, record: logging.LogRecord, queue: RecordQueue) -> None:
        # The log call's whole cost with install(): what must happen on the
        # application's thread (as logging.handlers.QueueHandler.prepare
        # does: message and traceback formatted now, while the arguments and
        # frames are what they were), then an append. The OpenTelemetry
        # record is built on the export thread.
        try:
            try:
                body, attributes, size = self._parts(record)
            except Exception as exc:  # a message or value that cannot be formatted
                report_internal_error("could not format a log record", exc)
                body, attributes, size = _unformattable(record, exc), None, 0
            queue.put(
                (
                    record.name,
                    record.levelno,
                    record.levelname,
                    record.created,
                    body,
                    attributes,
                    _get_current_context(),
                ),
                RECORD_OVERHEAD + text_size(body) + size,
            )
        except Exception as exc:  # a log call must never fail because of us
            report_internal_error("could not export a log record", exc)

    def emit(self, record: logging.LogRecord) -> None:
        """Translate ``record`` to an OpenTelemetry log record and emit it; never raises."""
        try:
            name = record.name
            logger = self._otel_loggers.get(name, _UNSEEN)
            if logger is _UNSEEN:
                logger = self._otel_logger(name)
            if logger is None:
                return
            body, parts, _ = self._parts(record)
            attributes = parts if parts is not None else {}
            event_name = None
            if "otel.event.name" in attributes or "event.name" in attributes:
                event_name = attributes.pop("otel.event.name", None)
                deprecated_event_name = attributes.pop("event.name", None)
                if event_name is None:
                    event_name = deprecated_event_name
            levelno = record.levelno
            severity = _SEVERITY_NUMBER.get(levelno)
            if severity is None:
                severity = _SEVERITY_NUMBER[levelno] = std_to_otel(levelno)
            levelname = record.levelname
            logger.emit(
                LogRecord(
                    timestamp=int(record.created * 1e9),
                    observed_timestamp=time_ns(),
                    severity_text=_SEVERITY_TEXT.get(levelname, levelname),
                    severity_number=severity,
                    body=body,
                    attributes=attributes,
                    event_name=event_name,
                )
            )
        except Exception as exc:  # a log call must never fail because of us
            report_internal_error("could not export a log record", exc)


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return object.__repr__(value)


def _unformattable(record: logging.LogRecord, exc: Exception) -> str:
    """A body for a record whose message, arguments or attributes cannot be formatted:
    still delivered, saying why (as ``logging`` itself says "--- Logging error ---")."""
    return (
        f"{_safe_str(record.msg)} (otel-jobtags could not format this record: "
        f"{type(exc).__name__}: {_safe_str(exc)}; arguments: {_safe_str(record.args)})"
    )


def _exception_attributes(exc_info: Any, attributes: dict[str, Any]) -> dict[str, Any]:
    """``attributes`` with the contrib handler's ``exception.*`` ones for ``exc_info``."""
    exctype, value, tb = exc_info
    if exctype is not None:
        attributes["exception.type"] = exctype.__name__
    if value is not None and value.args:
        attributes["exception.message"] = str(value.args[0])
    if tb is not None:
        attributes["exception.stacktrace"] = "".join(traceback.format_exception(*exc_info))
    return attributes


def _prefixed_body(body: str, d: dict[str, Any]) -> str:
    return with_prefix(body, d) if ATTR_JOB_TAG in d else body


def _plain_body(body: str, d: dict[str, Any]) -> str:
    return body


def _attribute_values(d: dict[str, Any], names: set[str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if "_logger" in d:  # structlog's bookkeeping, not data about the record
        names = names.difference(_STRUCTLOG_EXTRAS)
    for name in names:
        value = d[name]
        if type(value) not in _PRIMITIVES and not (
            isinstance(value, (list, tuple)) and all(type(item) in _PRIMITIVES for item in value)
        ):
            value = str(value)
        attributes[name] = value
    return attributes
