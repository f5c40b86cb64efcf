"""Which job a log record belongs to: the rules, and the filter that applies them.

Attribution order: an explicit ``extra={"job_tag": ...}`` (or ``job_id``),
then the active :func:`~otel_jobtags.job_context`, then -- a compatibility
setting, on by default -- a registered ``[TAG] `` prefix at the start of the
message. An active job always wins over a prefix: inside a job, a message that
starts with another registered job's prefix keeps one prefix, its job's, and
the named tag is kept in the ``job.prefix_tag`` attribute.

Prefix attribution exists for call sites like
``log.info(format_background_log(TAG, "done"))`` that run outside any job.
It trusts the start of the message: ``log.warning(f"{user} failed login")``
with a user named ``"[AUTO_REBAL] mallory"`` would be attributed to
AUTO_REBAL. Pass untrusted values as arguments (``log.warning("%s failed
login", user)``: only the template is read) or switch it off with
``prefix_attribution=False`` / ``OTEL_JOBTAGS_PREFIX_ATTRIBUTION=false``.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
from typing import Any

from . import _diagnostics, _flags
from . import context as _context
from .errors import UnknownJobError
from .tags import JobTag, TagRegistry

__all__ = [
    "ATTR_JOB_ID",
    "ATTR_JOB_PREFIX_TAG",
    "ATTR_JOB_RUN_ID",
    "ATTR_JOB_TAG",
    "JobTagFilter",
    "report_internal_error",
]

ATTR_JOB_TAG = "job.tag"
"""OpenTelemetry attribute (and ``LogRecord`` attribute) holding the tag name."""
ATTR_JOB_ID = "job.id"
"""OpenTelemetry attribute holding the scheduler's job id."""
ATTR_JOB_RUN_ID = "job.run_id"
"""OpenTelemetry attribute identifying one run of a job."""
ATTR_JOB_PREFIX_TAG = "job.prefix_tag"
"""The registered tag a message's ``[TAG] `` prefix named, when the record belongs to another job."""

PREFIX_ATTRIBUTION_VARIABLE = "OTEL_JOBTAGS_PREFIX_ATTRIBUTION"
STRICT_VARIABLE = "OTEL_JOBTAGS_STRICT"

_EXTRA_TAG = "job_tag"
_EXTRA_ID = "job_id"
_PREFIX_RE = re.compile(r"\[([A-Z][A-Z0-9_]{0,14})\] ")

_reported_unknown: set[tuple[str, str]] = set()  # (key, value) said once per process


def report_internal_error(what: str, exc: BaseException) -> None:
    """Say on stderr that a log record could not be handled; never raises into a log call."""
    _diagnostics.report(what, exc)


def _unknown_job_error(key: str, value: object, registry: TagRegistry | None, logger: str) -> UnknownJobError:
    known = [tag.name for tag in registry] if registry is not None else []
    error = UnknownJobError(value, known)
    hint = ""
    if isinstance(value, str) and known:
        close = difflib.get_close_matches(value.strip("[]"), known + [t.job_id for t in registry or ()], n=1)
        if close:
            hint = f"; did you mean {close[0]!r}?"
    where = "no tag registry is active: call otel_jobtags.install(registry) or use_registry(registry)"
    if registry is not None:
        where = f"known jobs are {', '.join(known) or 'none: the registry is empty'}"
    error.args = (f"Unknown {key}={value!r} in extra= of a record on logger {logger!r}: {where}{hint}",)
    return error


class JobTagFilter(logging.Filter):
    """Attribute records to their job; usable on any handler and in ``dictConfig``.

    Sets the record attributes ``job.tag``, ``job.id`` (and ``job.run_id``
    inside a run), and makes a string message start with ``[TAG] `` exactly
    once (``prefix=True``). A message that is not a string -- structlog's
    event dict, an exception -- is never changed. Text formatters can show the
    fields as ``%(job.tag)s``; use :class:`~otel_jobtags.JobTagFormatter` so
    that records outside any job format too.

    The filter changes the record itself, which every later handler sees: put
    it on the handlers that write text, not on a logger.

    Args:
        registry: the tags that explicit values and ``[TAG]`` prefixes resolve
            against; by default the active registry
            (:func:`~otel_jobtags.context.use_registry`, set by ``install``).
        prefix: add the ``[TAG] `` prefix to string messages that lack it.
        prefix_attribution: attribute a record outside any job by a registered
            ``[TAG] `` prefix at the start of its message; else
            ``OTEL_JOBTAGS_PREFIX_ATTRIBUTION``, else on.
        strict: raise :class:`~otel_jobtags.UnknownJobError` from the log call
            for an ``extra={"job_tag": ...}`` the registry does not know (for
            tests); else ``OTEL_JOBTAGS_STRICT``, else off: said once per value
            on stderr.

    ``dictConfig`` example::

        "filters": {"jobtags": {"()": "otel_jobtags.JobTagFilter"}},
        "formatters": {"jobs": {"class": "otel_jobtags.JobTagFormatter",
                                "format": "%(asctime)s %(levelname)s: %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": "app.log",
                              "filters": ["jobtags"], "formatter": "jobs"}},

    Raises:
        ConfigError: ``OTEL_JOBTAGS_PREFIX_ATTRIBUTION`` or ``OTEL_JOBTAGS_STRICT``
            holds something other than true/false.
    """

    def __init__(
        self,
        registry: TagRegistry | None = None,
        *,
        prefix: bool = True,
        prefix_attribution: bool | None = None,
        strict: bool | None = None,
    ) -> None:
        super().__init__()
        self.registry = registry
        self.prefix = prefix
        self.prefix_attribution = _flags.resolve_flag(prefix_attribution, PREFIX_ATTRIBUTION_VARIABLE, True)
        self.strict = _flags.resolve_flag(strict, STRICT_VARIABLE, False)

    def filter(self, record: logging.LogRecord) -> bool:
        """Attribute ``record`` in place; always keeps it."""
        d = record.__dict__
        if ATTR_JOB_TAG in d:  # attributed already, by this or another handler's filter
            if self.prefix:  # the export handler's filter attributes without a prefix
                self._add_prefix(record, d)
            return True
        try:
            self._attribute(record, d)
        except UnknownJobError:
            if self.strict:
                raise
        except Exception as exc:  # a log call must never fail because of us
            report_internal_error("could not attribute a log record", exc)
        return True

    def _attribute(self, record: logging.LogRecord, d: dict[str, Any]) -> None:
        registry = self.registry if self.registry is not None else _context.active_registry()
        tag: JobTag | None = None
        run_id: str | None = None
        if _EXTRA_TAG in d or _EXTRA_ID in d:
            tag = self._explicit(record, d, registry)
        if tag is None:
            active = _context.current_job_var.get()
            if active is not None:
                tag, run_id = active.tag, active.run_id
        named = None
        msg = record.msg
        if registry is not None and type(msg) is str and msg.startswith("["):
            m = _PREFIX_RE.match(msg)
            if m is not None:
                named = registry.get(m.group(1))  # an unregistered [WORD] stays as it is
        if tag is None:
            if named is None or not self.prefix_attribution:
                return
            tag = named
        d[ATTR_JOB_TAG] = tag.name
        d[ATTR_JOB_ID] = tag.job_id
        if run_id is not None:
            d[ATTR_JOB_RUN_ID] = run_id
        if named is not None and named != tag:
            d[ATTR_JOB_PREFIX_TAG] = named.name
        if self.prefix:
            self._add_prefix(record, d)

    @staticmethod
    def _add_prefix(record: logging.LogRecord, d: dict[str, Any]) -> None:
        msg = record.msg
        if type(msg) is not str:
            return  # structlog's event dict stays a dict for its formatter
        record.msg = with_prefix(msg, d, record.args)

    def _explicit(
        self, record: logging.LogRecord, d: dict[str, Any], registry: TagRegistry | None
    ) -> JobTag | None:
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
        if tag is None:
            self._unknown(key, value, registry, record.name)
            return None
        # The dotted attributes replace the extra keys, so the exported
        # record carries job.tag/job.id once, not twice under two names.
        d.pop(key, None)
        return tag

    def _unknown(self, key: str, value: object, registry: TagRegistry | None, logger: str) -> None:
        error = _unknown_job_error(key, value, registry, logger)
        if self.strict:
            raise error
        said = (key, repr(value))
        if said not in _reported_unknown:
            _reported_unknown.add(said)
            _diagnostics.write(f"{error} (said once; OTEL_JOBTAGS_STRICT=true raises instead)")


def with_prefix(text: str, d: dict[str, Any], args: Any = None) -> str:
    """``text`` starting with its record's ``[TAG] `` exactly once (``d`` is the record's ``__dict__``).

    A prefix naming another registered job (``job.prefix_tag``) is replaced.
    """
    name = d.get(ATTR_JOB_TAG)
    if name is None:
        return text
    prefix = f"[{name}] "
    if text.startswith(prefix):
        return text
    named = d.get(ATTR_JOB_PREFIX_TAG)
    if named is not None and text.startswith(other := f"[{named}] "):
        return prefix + text[len(other) :]
    if args and text.startswith("%"):
        # The prefix may come from an argument: "%s" % format_background_log(...)
        with contextlib.suppress(Exception):
            if (text % args).startswith(prefix):
                return text
    return prefix + text
