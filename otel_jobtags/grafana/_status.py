"""When a job is late, failing or overlapping: the arithmetic of its alert rules, in Python.

The generated Grafana rules (:mod:`otel_jobtags.grafana`, ``docs/alerts.md``)
evaluate run records in Loki with LogQL and Grafana expressions; the functions
here compute the same verdicts from the same records:

* :func:`is_late` -- no success record within the schedule's longest regular
  gap (plus the summary interval when successes are summarised) plus a grace;
* :func:`is_failing` -- at least ``failure_threshold`` failed runs within
  ``failure_window``, and none succeeded since the latest failure;
* :func:`is_overlapping` -- two or more processes kept running the job: at
  every moment of the last overlap window, at least two processes had
  written a run record within one window before it.

:func:`overlapping_runs` lists the runs of two processes that ran at the
same instant, the evidence a person reads next to the verdict.
:func:`alert_policies` gives each job's numbers (the same ones the rules are
generated with) and :func:`job_status` combines the three verdicts: it is what
the embedded web view (:mod:`otel_jobtags.web`) shows for each job. The alert
tests prove these functions on simulated run histories and check that the
generated rules carry the same windows and thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar

from ..errors import ConfigError
from ..schedule import Schedule
from ..scheduler import RunRecordPolicy, default_run_record_policy
from ..tags import JobTag, TagRegistry
from ._runqueries import ERROR, SUCCESS

__all__ = [
    "FAILING",
    "LATE",
    "OVERLAPPING",
    "AlertPolicy",
    "Run",
    "RunSpan",
    "alert_policies",
    "default_failure_threshold",
    "default_failure_window",
    "default_grace",
    "is_failing",
    "is_late",
    "is_overlapping",
    "job_status",
    "late_window",
    "overlapping_instances",
    "overlapping_runs",
    "success_gap",
]

MIN_GRACE = timedelta(seconds=60)
GRACE_FRACTION = 0.1
MIN_FAILURE_WINDOW = timedelta(minutes=15)
MANUAL_FAILURE_WINDOW = timedelta(hours=1)
MAX_DEFAULT_FAILURES = 3


class Run(NamedTuple):
    """One run record: when it was logged (the end of the run), its outcome and its process."""

    time: datetime
    outcome: str
    """``success``, ``error``, ``missed``, ``skipped`` or ``cancelled``."""
    instance: str | None = None
    """The process that wrote it: its resource's ``service.instance.id`` (else ``process.pid``)."""


class RunSpan(NamedTuple):
    """One run that ran, in one process: from its start to its end (when its run record was logged).

    A run record gives ``end`` (its time) and ``start`` (``end`` minus
    ``job.duration_ms``); ``instance`` is the process that ran it, its
    resource's ``service.instance.id`` (else ``process.pid``). Missed and
    skipped runs did not run and have no span.
    """

    start: datetime
    end: datetime
    instance: str


LATE = "late"
"""The status of a job whose late rule fires (:func:`is_late`)."""
FAILING = "failing"
"""The status of a job whose failing rule fires (:func:`is_failing`)."""
OVERLAPPING = "overlapping"
"""The status of a job two processes ran at the same time (:func:`is_overlapping`)."""


def default_grace(schedule: Schedule) -> timedelta:
    """The default grace: 10% of the schedule's period, at least 60 s, in whole seconds.

    The grace absorbs what delays a run record: the run's own duration,
    scheduler jitter and misfire tolerance, and export delay (batching, a
    collector queue). 60 s covers those for short periods; 10% keeps long
    periods from alerting on a slow run.
    """
    period = schedule.period
    if period is None:
        return MIN_GRACE
    fraction = timedelta(seconds=math.ceil(period.total_seconds() * GRACE_FRACTION))
    return max(MIN_GRACE, fraction)


def success_gap(schedule: Schedule, run_records: RunRecordPolicy | None = None) -> timedelta | None:
    """The longest time between two success records of a job that keeps succeeding.

    The schedule's period when each success is recorded; the period plus the
    summary interval when successes are summarised (a summary is written at
    the first success after the interval); ``None`` for a manual job or when
    successes are not recorded. ``run_records`` defaults to
    :func:`~otel_jobtags.scheduler.default_run_record_policy`.
    """
    period = schedule.period
    policy = run_records if run_records is not None else default_run_record_policy(schedule)
    if period is None or policy.successes == "off":
        return None
    return period + policy.every if policy.successes == "summary" else period


def late_window(
    schedule: Schedule, grace: timedelta, run_records: RunRecordPolicy | None = None
) -> timedelta | None:
    """How long without a success record makes a job late: :func:`success_gap` + grace, or ``None``."""
    gap = success_gap(schedule, run_records)
    return None if gap is None else gap + grace


def is_late(
    schedule: Schedule,
    last_success: datetime | None,
    now: datetime,
    grace: timedelta,
    run_records: RunRecordPolicy | None = None,
) -> bool:
    """Whether the late rule fires at ``now``.

    The rule counts success records logged in the window ``(now - window,
    now]``, ``window`` being :func:`late_window`; it fires when there are
    none. So a job is late when its latest success record (at or before
    ``now``) is ``window`` old or older, or when it has none at all. A job
    without a window (manual, or successes not recorded) is never late.

    For a cron schedule the period is the longest gap between two runs, so a
    schedule with uneven gaps (weekdays only) is late only once the gap
    exceeds the longest one (the weekend).
    """
    window = late_window(schedule, grace, run_records)
    if window is None:
        return False
    return last_success is None or now - last_success >= window


def is_failing(runs: Iterable[Run], now: datetime, *, window: timedelta, threshold: int) -> bool:
    """Whether the failing rule fires at ``now``.

    Within the window ``(now - window, now]``: at least ``threshold`` runs
    with outcome ``error``, and the latest error newer than the latest
    success (if any). A successful run therefore resolves it at once.
    """
    recent = [run for run in runs if now - window < run.time <= now]
    errors = [run.time for run in recent if run.outcome == ERROR]
    if len(errors) < threshold:
        return False
    successes = [run.time for run in recent if run.outcome == SUCCESS]
    return not successes or max(errors) > max(successes)


def overlapping_runs(
    spans: Iterable[RunSpan], now: datetime, *, window: timedelta
) -> list[tuple[RunSpan, RunSpan]]:
    """The pairs of runs of one job that two processes ran at the same time.

    Only runs that ended within the window ``(now - window, now]`` count. Two
    runs overlap when they come from different instances and each started
    before the other ended (``a.start < b.end and b.start < a.end``): one
    ending exactly when the other starts is no overlap, nor are two runs of
    one process (a scheduler's own ``max_instances`` allows those on purpose).
    Each pair is (earlier start, later start), in order of the later run's start.
    """
    recent = sorted(
        (span for span in spans if now - window < span.end <= now), key=lambda span: (span.start, span.end)
    )
    pairs: list[tuple[RunSpan, RunSpan]] = []
    running: list[RunSpan] = []  # started earlier, maybe not ended yet
    for span in recent:
        running = [other for other in running if other.end > span.start]
        pairs.extend((other, span) for other in running if other.instance != span.instance)
        running.append(span)
    return pairs


def overlapping_instances(runs: Iterable[Run], now: datetime, *, window: timedelta) -> tuple[str, ...]:
    """The processes behind an overlapping verdict at ``now`` (sorted); empty when it does not hold.

    The overlap rule counts, at each moment ``t``, the processes with a run
    record in ``(t - window, t]``, and fires when that count has been 2 or
    more at every moment of ``[now - window, now]`` (Grafana's pending period
    of one window). ``window`` is at least the longest gap between two
    records of a process that runs the job (:attr:`AlertPolicy.overlap_window`),
    so one scheduler per process is seen without a break, and:

    * two schedulers that keep running the job (gunicorn workers, replicas)
      make it fire one window after the second one starts, however short
      the runs and however far apart their ticks;
    * a takeover (one process stops, another starts: a restart, a deploy, a
      host lock passing on) never does: the old process's last record and the
      new one's first are less than a window apart for less than a window.

    Returns the processes with a run record in ``(now - window, now]`` when
    the rule holds. Records without a process do not count.
    """
    start = now - window
    present: dict[str, list[list[datetime]]] = {}  # process -> merged [from, until) intervals
    for run in sorted(runs, key=lambda run: run.time):
        if run.instance is None or not start - window < run.time <= now:
            continue
        # A record at r keeps its process counted over [r, r + window).
        intervals = present.setdefault(run.instance, [])
        if intervals and run.time <= intervals[-1][1]:
            intervals[-1][1] = run.time + window
        else:
            intervals.append([run.time, run.time + window])
    if len(present) < 2:
        return ()
    # The count only changes where an interval starts or ends: check there, and at the start.
    moments = {start} | {
        moment for spans in present.values() for span in spans for moment in span if start <= moment <= now
    }
    for moment in moments:
        counted = sum(any(since <= moment < until for since, until in spans) for spans in present.values())
        if counted < 2:
            return ()
    return tuple(sorted(name for name, spans in present.items() if spans[-1][1] > now))


def is_overlapping(runs: Iterable[Run], now: datetime, *, window: timedelta) -> bool:
    """Whether the overlap rule fires at ``now``: two or more processes kept running the job.

    See :func:`overlapping_instances`. A job runs twice when each of several
    processes (gunicorn workers, replicas) starts its own scheduler; see
    ``otel_jobtags.scheduler.start_once_per_host``.
    """
    return bool(overlapping_instances(runs, now, window=window))


def default_failure_window(schedule: Schedule, grace: timedelta) -> timedelta:
    """The default failure window: period + grace, at least 15 min (1 h for manual jobs)."""
    period = schedule.period
    return MANUAL_FAILURE_WINDOW if period is None else max(MIN_FAILURE_WINDOW, period + grace)


def default_failure_threshold(schedule: Schedule, window: timedelta) -> int:
    """The default number of failures: 3, or every run expected in the window when fewer (at least 1)."""
    period = schedule.period
    if period is None:
        return 1
    expected = window // period
    return max(1, min(MAX_DEFAULT_FAILURES, expected))


@dataclass(frozen=True)
class AlertPolicy:
    """The numbers of one job's alert rules."""

    tag: JobTag
    grace: timedelta
    """Added to the success gap before a missing success makes the job late."""
    failure_threshold: int
    """Failed runs within :attr:`failure_window` that make the job failing."""
    failure_window: timedelta
    run_records: RunRecordPolicy
    """Which successes are recorded (see :func:`success_gap`)."""

    @property
    def success_gap(self) -> timedelta | None:
        """See :func:`success_gap`."""
        return success_gap(self.tag.schedule, self.run_records)

    @property
    def late_window(self) -> timedelta | None:
        """Success gap + grace; ``None`` when the job has no late rule."""
        return late_window(self.tag.schedule, self.grace, self.run_records)

    @property
    def overlap_window(self) -> timedelta:
        """The overlap rule's window: the :attr:`late_window`, else the :attr:`failure_window`.

        Longer than the gap between two run records of a process that runs
        the job (see :func:`overlapping_instances`); the rule looks back two
        windows.
        """
        late = self.late_window
        return late if late is not None else self.failure_window


def job_status(
    policy: AlertPolicy,
    now: datetime,
    *,
    last_success: datetime | None,
    runs: Iterable[Run],
) -> tuple[str, ...]:
    """Which of :data:`FAILING`, :data:`LATE` and :data:`OVERLAPPING` hold for a job at ``now``.

    An empty tuple means the job is ok. ``late`` and ``failing`` are the
    generated Grafana rules' verdicts (:func:`is_late`, :func:`is_failing`
    with the policy's numbers), and so is ``overlapping``
    (:func:`is_overlapping` over :attr:`AlertPolicy.overlap_window`).

    Args:
        policy: the job's numbers (:func:`alert_policies`).
        now: when to evaluate.
        last_success: the time of the job's latest success record at or before ``now``, if any.
        runs: its run records, at least those within the failure window and
            within two overlap windows, with their processes.
    """
    runs = list(runs)
    status = []
    if is_failing(runs, now, window=policy.failure_window, threshold=policy.failure_threshold):
        status.append(FAILING)
    if is_late(policy.tag.schedule, last_success, now, policy.grace, policy.run_records):
        status.append(LATE)
    if is_overlapping(runs, now, window=policy.overlap_window):
        status.append(OVERLAPPING)
    return tuple(status)


V = TypeVar("V")


def _per_job(registry: TagRegistry, value: V | Mapping[str, V] | None) -> tuple[V | None, dict[str, V]]:
    """Split an argument into a value for every job and per-job overrides (keyed by tag name)."""
    if value is None or not isinstance(value, Mapping):
        return value, {}
    overrides: dict[str, V] = {}
    for key, item in value.items():
        tag = registry.resolve(key)  # UnknownJobError names the known jobs
        overrides[tag.name] = item
    return None, overrides


def alert_policies(
    registry: TagRegistry,
    *,
    grace: timedelta | Mapping[str, timedelta] | None = None,
    failure_threshold: int | Mapping[str, int] | None = None,
    failure_window: timedelta | Mapping[str, timedelta] | None = None,
    run_records: Mapping[str | JobTag, RunRecordPolicy] | None = None,
) -> dict[str, AlertPolicy]:
    """Each job's alert numbers, by tag name, from the defaults and the overrides.

    ``grace``, ``failure_threshold`` and ``failure_window`` are each ``None``
    (the defaults: :func:`default_grace`, :func:`default_failure_threshold`,
    :func:`default_failure_window`), one value for every job, or a mapping
    from tag name or job id to a value for that job (the others keep the
    default). ``run_records`` is what the application passes to
    ``otel_jobtags.scheduler.connect(run_records=...)``: policies by job id,
    tag name or tag; other jobs get :func:`~otel_jobtags.scheduler.default_run_record_policy`.

    Raises:
        UnknownJobError: a mapping names a job the registry does not have.
        ConfigError: a grace is negative, a window not positive or a threshold below 1.
    """
    all_grace, grace_for = _per_job(registry, grace)
    all_threshold, threshold_for = _per_job(registry, failure_threshold)
    all_window, window_for = _per_job(registry, failure_window)
    records_for = {registry.resolve(key).name: policy for key, policy in (run_records or {}).items()}
    policies = {}
    for tag in registry:
        g = grace_for.get(tag.name, all_grace)
        g = default_grace(tag.schedule) if g is None else g
        if not isinstance(g, timedelta) or g < timedelta(0):
            raise ConfigError(f"Invalid grace {g!r} for {tag.name}: give a timedelta of 0 s or more")
        w = window_for.get(tag.name, all_window)
        w = default_failure_window(tag.schedule, g) if w is None else w
        if not isinstance(w, timedelta) or w < timedelta(seconds=1):
            raise ConfigError(f"Invalid failure_window {w!r} for {tag.name}: give a timedelta of 1 s or more")
        t = threshold_for.get(tag.name, all_threshold)
        t = default_failure_threshold(tag.schedule, w) if t is None else t
        if not isinstance(t, int) or isinstance(t, bool) or t < 1:
            raise ConfigError(
                f"Invalid failure_threshold {t!r} for {tag.name}: give a whole number, 1 or more"
            )
        recorded = records_for.get(tag.name) or default_run_record_policy(tag.schedule)
        policies[tag.name] = AlertPolicy(tag, g, t, w, recorded)
    return policies
