"""The logging side of the bridge: attribution and the OpenTelemetry handler.

:class:`JobTagFilter` is a standard :class:`logging.Filter`: put it on any
handler (file, console, OpenTelemetry) and the records it sees are attributed
to their job -- attributes ``job.tag``/``job.id`` on the record and the
``[TAG] `` prefix at the start of the message, exactly once. It never drops a
record and never raises.

:class:`JobTagHandler` is the maintained OpenTelemetry logging handler
(``opentelemetry-instrumentation-logging``) with that filter built in, and a
guard that keeps the OpenTelemetry SDK's, exporter's and gRPC's own records out
of the exported stream (they go to stderr instead).

Attribution order: explicit (``extra={"job_tag": ...}`` or ``extra={"job_id":
...}``), then the active :func:`~otel_jobtags.job_context`, then a registered
``[TAG]`` prefix at the start of the message. An unregistered ``[WORD]`` prefix
is left alone.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import traceback
from time import time_ns
from typing import Any, Literal

from opentelemetry._logs import Logger, LoggerProvider, LogRecord, NoOpLogger, SeverityNumber
from opentelemetry.context import get_current as _get_current_context
from opentelemetry.instrumentation.log_utils import std_to_otel
from opentelemetry.instrumentation.logging.handler import LoggingHandler

from . import _diagnostics
from . import context as _context
from .delivery.internal import exporting
from .delivery.internal import state as _exporting
from .delivery.queue import RecordQueue
from .delivery.records import RECORD_OVERHEAD, attributes_size, text_size
from .errors import ConfigError
from .tags import JobTag, TagRegistry

__all__ = [
    "ATTR_JOB_ID",
    "ATTR_JOB_RUN_ID",
    "ATTR_JOB_TAG",
    "JobTagFilter",
    "JobTagFormatter",
    "JobTagHandler",
    "exporting",
]

ATTR_JOB_TAG = "job.tag"
"""OpenTelemetry attribute (and ``LogRecord`` attribute) holding the tag name."""
ATTR_JOB_ID = "job.id"
"""OpenTelemetry attribute holding the scheduler's job id."""
ATTR_JOB_RUN_ID = "job.run_id"
"""OpenTelemetry attribute identifying one run of a job."""

_EXTRA_TAG = "job_tag"
_EXTRA_ID = "job_id"
_PREFIX_RE = re.compile(r"\[([A-Z][A-Z0-9_]{0,14})\] ")

# Loggers whose records describe the export pipeline itself. Exporting them
# would feed the pipeline's own trouble back into it (a failing export logs a
# warning, which is exported, which fails...).
_INTERNAL_LOGGERS = ("opentelemetry", "grpc")

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
    internal = any(name == prefix or name.startswith(prefix + ".") for prefix in _INTERNAL_LOGGERS)
    _internal_names[name] = internal
    return internal


def is_internal_record(record: logging.LogRecord) -> bool:
    """True for records the export pipeline logs about itself."""
    if getattr(_exporting, "active", False):
        return True
    internal = _internal_names.get(record.name)
    return _is_internal_name(record.name) if internal is None else internal


def _report_internal_error(what: str, exc: BaseException) -> None:
    # Never raise into the application's log call; say what happened on stderr.
    with contextlib.suppress(Exception):  # stderr itself may be gone
        sys.stderr.write(f"otel-jobtags: {what}: {type(exc).__name__}: {exc}\n")


class JobTagFilter(logging.Filter):
    """Attribute records to their job; usable on any handler and in ``dictConfig``.

    Sets the record attributes ``job.tag``, ``job.id`` (and ``job.run_id``
    inside a run), and makes the message start with ``[TAG] `` exactly once.
    Text formatters can show them as ``%(job.tag)s``; use
    :class:`JobTagFormatter` so that records outside any job format too.

    Args:
        registry: the tags that explicit values and ``[TAG]`` prefixes resolve
            against; by default the active registry
            (:func:`~otel_jobtags.use_registry`, set by ``install``).
        prefix: add the ``[TAG] `` prefix to messages that lack it.

    ``dictConfig`` example::

        "filters": {"jobtags": {"()": "otel_jobtags.JobTagFilter"}},
        "formatters": {"jobs": {"class": "otel_jobtags.JobTagFormatter",
                                "format": "%(asctime)s %(levelname)s: %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": "app.log",
                              "filters": ["jobtags"], "formatter": "jobs"}},
    """

    def __init__(self, registry: TagRegistry | None = None, *, prefix: bool = True) -> None:
        super().__init__()
        self.registry = registry
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        """Attribute ``record`` in place; always keeps it."""
        d = record.__dict__
        if ATTR_JOB_TAG in d:  # attributed already, by this or another handler's filter
            return True
        try:
            self._attribute(record, d)
        except Exception as exc:  # a log call must never fail because of us
            _report_internal_error("could not attribute a log record", exc)
        return True

    def _attribute(self, record: logging.LogRecord, d: dict[str, Any]) -> None:
        registry = self.registry if self.registry is not None else _context._registry
        tag: JobTag | None = None
        run_id: str | None = None
        if _EXTRA_TAG in d or _EXTRA_ID in d:
            tag = self._explicit(d, registry)
        if tag is None:
            active = _context._current.get()
            if active is not None:
                tag, run_id = active.tag, active.run_id
        msg = record.msg
        if tag is None:
            if registry is None or type(msg) is not str or not msg.startswith("["):
                return
            m = _PREFIX_RE.match(msg)
            if m is None:
                return
            tag = registry.get(m.group(1))  # an unregistered [WORD] stays as it is
            if tag is None:
                return
        d[ATTR_JOB_TAG] = tag.name
        d[ATTR_JOB_ID] = tag.job_id
        if run_id is not None:
            d[ATTR_JOB_RUN_ID] = run_id
        if not self.prefix:
            return
        prefix = tag.prefix
        if type(msg) is not str:
            msg = str(msg)
        elif msg.startswith(prefix):
            return
        elif msg.startswith("%") and record.args:
            # The prefix may come from an argument: "%s" % format_background_log(...)
            text = record.getMessage()
            if text.startswith(prefix):
                return
        record.msg = prefix + msg

    @staticmethod
    def _explicit(d: dict[str, Any], registry: TagRegistry | None) -> JobTag | None:
        value = d.get(_EXTRA_TAG)
        key = _EXTRA_TAG
        if value is None:
            value, key = d.get(_EXTRA_ID), _EXTRA_ID
        if isinstance(value, JobTag):
            tag: JobTag | None = value if registry is None else (registry.get(value) or value)
        elif registry is not None and isinstance(value, str):
            tag = registry.get(value)
        else:
            tag = None
        if tag is not None:
            # The dotted attributes replace the extra keys, so the exported
            # record carries job.tag/job.id once, not twice under two names.
            d.pop(key, None)
        return tag


class JobTagFormatter(logging.Formatter):
    """A text formatter that can show the job fields of every record.

    Use ``%(job.tag)s``, ``%(job.id)s`` and ``%(job.run_id)s`` in a
    %-style format; records outside any job show ``-`` (or the given
    ``defaults``). Works with ``dictConfig`` as
    ``"class": "otel_jobtags.JobTagFormatter"``.

    The dotted names only work with the %-style: ``{job.tag}`` would read an
    attribute ``tag`` of a field ``job``, so other styles naming them raise
    :class:`~otel_jobtags.ConfigError`.
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


def _exception_attributes(record: logging.LogRecord, attributes: dict[str, Any]) -> dict[str, Any]:
    """``attributes`` with the contrib handler's ``exception.*`` ones for ``record.exc_info``."""
    exc_info = record.exc_info
    if not exc_info:
        return attributes
    exctype, value, tb = exc_info
    if exctype is not None:
        attributes["exception.type"] = exctype.__name__
    if value is not None and value.args:
        attributes["exception.message"] = str(value.args[0])
    if tb is not None:
        attributes["exception.stacktrace"] = "".join(traceback.format_exception(*exc_info))
    return attributes


class JobTagHandler(LoggingHandler):
    """The OpenTelemetry logging handler, attributing records to their job.

    A :class:`JobTagFilter` runs first, so exported records carry ``job.tag``
    and ``job.id`` attributes and a ``[TAG] ``-prefixed body. Records that the
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
        stderr: where internal records go; ``None`` means a stream handler on stderr.
        throttle_interval: seconds between two stderr lines with the same message.
        queue: hand records over to this queue of a
            :class:`~otel_jobtags.DeliveryProcessor` (``install`` does): the log
            call then only attributes and formats the record, and the
            OpenTelemetry record is built on the export thread.
    """

    def __init__(
        self,
        logger_provider: LoggerProvider | None = None,
        *,
        registry: TagRegistry | None = None,
        level: int = logging.NOTSET,
        stderr: logging.Handler | None = None,
        throttle_interval: float = _diagnostics.DEFAULT_INTERVAL,
        queue: RecordQueue | None = None,
    ) -> None:
        super().__init__(level=level, logger_provider=logger_provider)
        self.queue = queue
        self.job_filter = JobTagFilter(registry)
        self.addFilter(self.job_filter)
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
            self._hand_over(record)
        else:
            self.emit(record)
        return True

    def _hand_over(self, record: logging.LogRecord) -> None:
        # The log call's whole cost with install(): what must happen on the
        # application's thread (as logging.handlers.QueueHandler.prepare does:
        # the message and traceback formatted now, while args and frames are
        # what they were), then an append. The OpenTelemetry record is built
        # on the export thread.
        try:
            d = record.__dict__
            attributes: dict[str, Any] | None
            if len(d) == _TAGGED_RECORD_LEN and ATTR_JOB_TAG in d and ATTR_JOB_ID in d:
                tag, job_id = d[ATTR_JOB_TAG], d[ATTR_JOB_ID]
                attributes = {ATTR_JOB_TAG: tag, ATTR_JOB_ID: job_id}
                extra_size = 15 + len(tag) + len(job_id)
            else:
                extra = d.keys() - _RESERVED_ATTRS
                attributes = {k: d[k] for k in extra} if extra else None
                if record.exc_info:
                    attributes = _exception_attributes(record, attributes or {})
                extra_size = attributes_size(attributes) if attributes else 0
            if self.formatter:
                body = self.format(record)
            else:  # record.getMessage(), inlined
                body = record.msg
                if type(body) is not str:
                    body = str(body)
                if record.args:
                    body = body % record.args
            context = _get_current_context()
            self.queue.put(  # type: ignore[union-attr]
                (record.name, record.levelno, record.levelname, record.created, body, attributes, context),
                RECORD_OVERHEAD + text_size(body) + extra_size,
            )
        except Exception as exc:  # a log call must never fail because of us
            _report_internal_error("could not export a log record", exc)

    def flush(self) -> None:
        """Ask the provider to export what is buffered (in the background); nothing once closed.

        ``logging.shutdown()`` flushes every handler ever created at exit,
        after ``install()``'s own exit hook has delivered and closed this
        one: starting a thread then would fail on newer Pythons.
        """
        if not getattr(self, "_closed", False):
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

    def emit(self, record: logging.LogRecord) -> None:
        """Translate ``record`` to an OpenTelemetry log record and emit it; never raises."""
        try:
            name = record.name
            logger = self._otel_loggers.get(name, _UNSEEN)
            if logger is _UNSEEN:
                logger = self._otel_logger(name)
            if logger is None:
                return
            d = record.__dict__
            attributes: dict[str, Any]
            if len(d) == _TAGGED_RECORD_LEN and ATTR_JOB_TAG in d and ATTR_JOB_ID in d:
                # The common case, a record of a job and nothing else extra:
                # its only non-standard attributes are the two the filter set.
                attributes = {ATTR_JOB_TAG: d[ATTR_JOB_TAG], ATTR_JOB_ID: d[ATTR_JOB_ID]}
            else:
                extra = d.keys() - _RESERVED_ATTRS
                attributes = {k: d[k] for k in extra} if extra else {}
            event_name = None
            if "otel.event.name" in attributes or "event.name" in attributes:
                event_name = attributes.pop("otel.event.name", None)
                deprecated_event_name = attributes.pop("event.name", None)
                if event_name is None:
                    event_name = deprecated_event_name
            if record.exc_info:
                attributes = _exception_attributes(record, attributes)
            levelno = record.levelno
            severity = _SEVERITY_NUMBER.get(levelno)
            if severity is None:
                severity = _SEVERITY_NUMBER[levelno] = std_to_otel(levelno)
            if self.formatter:
                body = self.format(record)
            else:  # record.getMessage(), inlined
                body = record.msg
                if type(body) is not str:
                    body = str(body)
                if record.args:
                    body = body % record.args
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
            _report_internal_error("could not export a log record", exc)
