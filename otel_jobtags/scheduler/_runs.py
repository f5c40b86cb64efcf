"""Job run records: their logger, attributes and how often successes are recorded.

The scheduler integration (:mod:`otel_jobtags.scheduler`) writes run records;
the alert rules (:mod:`otel_jobtags.grafana`) read them. Both take their names
and defaults from here, which needs no APScheduler.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from ..errors import ConfigError
from ..schedule import Schedule
from ..tags import JobTag
from ._summary import DEFAULT_EVERY

__all__ = [
    "ATTR_JOB_DURATION_MS",
    "ATTR_JOB_OUTCOME",
    "ATTR_JOB_RUNS",
    "ATTR_JOB_SCHEDULED_TIME",
    "FREQUENT_PERIOD",
    "RUNS_LOGGER",
    "Outcome",
    "RunRecordPolicy",
    "RunRecords",
    "default_run_record_policy",
]

RUNS_LOGGER = "otel_jobtags.runs"
"""The logger run records are written to."""
ATTR_JOB_OUTCOME = "job.outcome"
"""How a run ended: an :class:`Outcome` value."""
ATTR_JOB_DURATION_MS = "job.duration_ms"
"""How long the run took, in milliseconds (the mean, in a summary); only on runs that ran."""
ATTR_JOB_SCHEDULED_TIME = "job.scheduled_time"
"""When the run was due, ISO 8601 with the scheduler's UTC offset."""
ATTR_JOB_RUNS = "job.runs"
"""In a summary record: how many successful runs it stands for."""


class Outcome(str, enum.Enum):
    """How a run ended: the value of a run record's ``job.outcome``."""

    SUCCESS = "success"
    """It returned."""
    ERROR = "error"
    """It raised."""
    CANCELLED = "cancelled"
    """It was stopped: asyncio cancellation, ``KeyboardInterrupt`` or ``SystemExit``."""
    MISSED = "missed"
    """It never started: the scheduler was too late (``misfire_grace_time``)."""
    SKIPPED = "skipped"
    """It never started: the job's ``max_instances`` were already running."""

    def __str__(self) -> str:
        return self.value


FREQUENT_PERIOD = timedelta(seconds=5)
"""Jobs whose tag's schedule runs at least this often get summarised successes by default."""

_SUCCESSES = ("each", "summary", "off")


@dataclass(frozen=True)
class RunRecordPolicy:
    """Which run records a job gets.

    Failures, missed runs and skipped runs are always recorded, one record
    each; this policy decides about successful runs.

    Args:
        successes: ``"each"`` -- one INFO record per successful run;
            ``"summary"`` -- the first success is recorded, then at most one
            summary record per ``every`` (``job.runs`` successes, mean
            ``job.duration_ms``); ``"off"`` -- none.
        every: the summary interval (default 5 minutes).

    Raises:
        ConfigError: an unknown ``successes`` value or a non-positive ``every``.
    """

    successes: Literal["each", "summary", "off"] = "each"
    every: timedelta = DEFAULT_EVERY

    def __post_init__(self) -> None:
        if self.successes not in _SUCCESSES:
            raise ConfigError(f"Invalid successes={self.successes!r}: use 'each', 'summary' or 'off'")
        if not isinstance(self.every, timedelta) or self.every <= timedelta(0):
            raise ConfigError(
                f"Invalid every={self.every!r}: give a positive timedelta, e.g. timedelta(minutes=5)"
            )


RunRecords = (
    bool
    | Mapping[str, RunRecordPolicy]
    | Mapping[JobTag, RunRecordPolicy]
    | Mapping[str | JobTag, RunRecordPolicy]
)
"""What ``connect(run_records=...)`` takes: on, off, or policies by job id, tag name or tag."""


def default_run_record_policy(job: JobTag | Schedule) -> RunRecordPolicy:
    """The policy a job (given by its tag or its schedule) gets unless ``run_records`` names it.

    Successes are summarised every 5 minutes for jobs whose tag's schedule
    runs every :data:`FREQUENT_PERIOD` (5 s) or more often -- the
    high-frequency jobs -- and recorded one by one for every other job.
    """
    period = job.schedule.period if isinstance(job, JobTag) else job.period
    if period is not None and period <= FREQUENT_PERIOD:
        return RunRecordPolicy("summary")
    return RunRecordPolicy("each")
