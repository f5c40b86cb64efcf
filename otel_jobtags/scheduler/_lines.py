"""APScheduler's own per-run lines: attributed to their job, and quiet where a run record says it.

APScheduler 3.x logs each run on its executor's logger
(``apscheduler.executors.<alias>``)::

    Running job "rebalance (trigger: ..., next run at: ...)" (scheduled at ...)
    Job "rebalance (...)" executed successfully
    Job "rebalance (...)" raised an exception          (with the traceback)
    Run time of job "rebalance (...)" was missed by 0:00:03

and a run skipped because ``max_instances`` was reached on the scheduler's
(``apscheduler.scheduler``). The first four are logged while the run's job
context is active (see :class:`~otel_jobtags.scheduler._wrapping.RunTimes`),
so they carry the run's ``job.tag``, ``job.id`` and ``job.run_id``; the
skipped line is attributed here, by its job id.

A job with run records already gets one record per run (or a summary), one
failure record with the traceback, one missed or skipped record: APScheduler's
copies of the same facts would double every line, and a 1-second job would
write two INFO lines a second. So, by default (``apscheduler_lines="debug"``),
those lines are logged at DEBUG instead -- written only where the logger is
enabled for DEBUG -- and the failure line without its traceback (the run
record carries it). ``apscheduler_lines="keep"`` leaves them as APScheduler
writes them; jobs without run records always keep them.

The filter sits on those two loggers (a logger's filters see exactly the
records created on it), one per connection, and acts only on the jobs of its
own connection.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from ..errors import ConfigError
from ..tags import TagRegistry
from ._wrapping import TaggedJob

__all__ = ["APSchedulerLines", "SchedulerLinesFilter", "add_filter", "resolve_apscheduler_lines"]

APSchedulerLines = Literal["debug", "keep"]
"""What ``connect(apscheduler_lines=...)`` takes."""

# APScheduler 3.x's templates (apscheduler/executors/base.py, schedulers/base.py).
_RUNNING = 'Running job "%s" (scheduled at %s)'
_EXECUTED = 'Job "%s" executed successfully'
_RAISED = 'Job "%s" raised an exception'
_MISSED = 'Run time of job "%s" was missed by %s'
_SKIPPED = 'Execution of job "%s" skipped: maximum number of running instances reached (%d)'
_PER_RUN = frozenset({_RUNNING, _EXECUTED, _RAISED, _MISSED})

_EXTRA_TAG = "job_tag"  # the extra= key JobTagFilter reads; a JobTag value is taken as it is


def resolve_apscheduler_lines(value: object) -> bool:
    """Whether APScheduler's per-run lines are lowered to DEBUG (``"debug"``) or kept (``"keep"``)."""
    if value == "debug":
        return True
    if value == "keep":
        return False
    raise ConfigError(
        f"Invalid apscheduler_lines={value!r}: use 'debug' (APScheduler's per-run lines at DEBUG, "
        "the run records say it at INFO) or 'keep' (as APScheduler writes them)"
    )


class SchedulerLinesFilter(logging.Filter):
    """Attributes APScheduler's per-run lines of one connection's jobs, and lowers them to DEBUG.

    Args:
        connection_id: the connection whose jobs it acts on.
        registry: the connection's tags, for lines logged outside a run (skipped runs).
        records: whether the connection writes run records at all.
        lower: log the lines of jobs with run records at DEBUG.
    """

    def __init__(self, connection_id: str, registry: TagRegistry, *, records: bool, lower: bool) -> None:
        super().__init__()
        self.connection_id = connection_id
        self.registry = registry
        self.records = records
        self.lower = lower

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep, lower or (when DEBUG is off for the logger) drop one of APScheduler's lines."""
        args = record.args
        if type(args) is not tuple or not args:
            return True
        job = args[0]
        msg = record.msg
        if isinstance(job, TaggedJob):
            spec = job.spec
            if spec.connection_id != self.connection_id or msg not in _PER_RUN:
                return True
            return _lowered(record) if self.lower and spec.policy is not None else True
        if msg == _SKIPPED:
            tag = self.registry.job_tag_map.get(getattr(job, "id", None))  # type: ignore[arg-type]
            if tag is None:
                return True
            record.__dict__.setdefault(_EXTRA_TAG, tag)
            return _lowered(record) if self.lower and self.records else True
        return True


def _lowered(record: logging.LogRecord) -> bool:
    # As if it had been logged at DEBUG: dropped where the logger is not enabled for it.
    if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
        return False
    record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
    record.exc_info = record.exc_text = None  # the run record carries the traceback, once
    return True


def add_filter(logger: Any, lines_filter: SchedulerLinesFilter) -> logging.Logger | None:
    """Put the filter on ``logger`` (an APScheduler logger) once; returns it when newly added."""
    if not isinstance(logger, logging.Logger) or lines_filter in logger.filters:
        return None
    logger.addFilter(lines_filter)
    return logger
