"""APScheduler 3.x integration: every job runs in its job context, and every run leaves a record.

One call connects a scheduler to a tag registry::

    from otel_jobtags.scheduler import connect

    connection = connect(scheduler, JOBS)

See :func:`connect`; :func:`start_once_per_host` starts a scheduler in one
process of the host only (gunicorn/uWSGI workers), and :func:`run_job` runs a
job function once as a scheduled run is run. The run records' names and policy (:class:`RunRecordPolicy`)
and :class:`PeriodicSummary` need no APScheduler; the names that do are
imported on first use, so ``import otel_jobtags.scheduler`` works without it
and ``from otel_jobtags.scheduler import connect`` says how to install it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._runner import JobRun, arun_job, run_job
from ._runs import (
    ATTR_JOB_DURATION_MS,
    ATTR_JOB_OUTCOME,
    ATTR_JOB_RUNS,
    ATTR_JOB_SCHEDULED_TIME,
    FREQUENT_PERIOD,
    RUNS_LOGGER,
    Outcome,
    RunRecordPolicy,
    default_run_record_policy,
)
from ._summary import PeriodicSummary, SummarySnapshot

if TYPE_CHECKING:
    from ._checks import (
        ScheduleMismatch,
        compare_schedule,
        schedule_mismatches,
        trigger_for,
        unscheduled_tags,
        untagged_jobs,
    )
    from ._connection import SchedulerConnection, connect
    from ._hostlock import SchedulerLock, default_lock_path, start_once_per_host

__all__ = [
    "ATTR_JOB_DURATION_MS",
    "ATTR_JOB_OUTCOME",
    "ATTR_JOB_RUNS",
    "ATTR_JOB_SCHEDULED_TIME",
    "FREQUENT_PERIOD",
    "RUNS_LOGGER",
    "JobRun",
    "Outcome",
    "PeriodicSummary",
    "RunRecordPolicy",
    "ScheduleMismatch",
    "SchedulerConnection",
    "SchedulerLock",
    "SummarySnapshot",
    "arun_job",
    "compare_schedule",
    "connect",
    "default_lock_path",
    "default_run_record_policy",
    "run_job",
    "schedule_mismatches",
    "start_once_per_host",
    "trigger_for",
    "unscheduled_tags",
    "untagged_jobs",
]

# The names that need APScheduler (or, for the host lock, a POSIX system), and their modules.
_NEEDS_APSCHEDULER = {
    "ScheduleMismatch": "._checks",
    "SchedulerConnection": "._connection",
    "SchedulerLock": "._hostlock",
    "compare_schedule": "._checks",
    "connect": "._connection",
    "default_lock_path": "._hostlock",
    "schedule_mismatches": "._checks",
    "start_once_per_host": "._hostlock",
    "trigger_for": "._checks",
    "unscheduled_tags": "._checks",
    "untagged_jobs": "._checks",
}


def __getattr__(name: str) -> Any:
    module = _NEEDS_APSCHEDULER.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
