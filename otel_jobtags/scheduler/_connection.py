"""APScheduler 3.x integration: every job runs in its job context, and every run leaves a record.

One call connects a scheduler to a tag registry::

    from otel_jobtags.scheduler import connect

    scheduler = BackgroundScheduler()
    scheduler.add_job(rebalance, "cron", minute=17, id="auto_rebalance")
    connection = connect(scheduler, JOBS)      # checks the job ids now and on every add_job
    scheduler.start()

From then on every run of a tagged job -- added before or after ``connect`` --
runs inside :func:`~otel_jobtags.job_context` with a fresh run id, so every
record the job or the libraries it calls log carries ``job.tag``, ``job.id``,
``job.run_id`` and the ``[TAG]`` prefix, without a change to the job's code.
Each run also leaves a *run record* on the ``otel_jobtags.runs`` logger (see
:class:`RunRecordPolicy`).

How it works (see ``docs/scheduler.md`` for the reasons):

* Each executor's ``submit_job`` is wrapped. It hands the executor a stand-in
  for the job whose ``func`` sets the job context around the real function;
  the job itself, in its job store, is never changed, so persistent job stores
  keep importable function references. Thread pools, the asyncio executor
  (coroutine jobs included) and process pools all run the stand-in; for a
  process pool it is pickled and sets the context in the child process.
* ``scheduler.add_job`` is wrapped so that, in strict mode, a job id without a
  tag is refused before the job is added (``EVENT_JOB_ADDED`` arrives after
  the fact, and on another thread).
* Missed runs and runs skipped because ``max_instances`` was reached never
  reach an executor: their records come from scheduler listeners, keyed by
  ``event.job_id``.

APScheduler is an optional dependency (``pip install 'otel-jobtags[scheduler]'``);
only this module imports it.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import copy
import inspect
import logging
import secrets
import threading
import time
import traceback
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from datetime import timezone as dt_timezone
from types import TracebackType
from typing import Any

try:
    from apscheduler.events import (
        EVENT_EXECUTOR_ADDED,
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_MISSED,
        EVENT_SCHEDULER_SHUTDOWN,
    )
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger
    from apscheduler.util import iscoroutinefunction_partial
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "otel_jobtags.scheduler needs APScheduler 3.x: pip install 'otel-jobtags[scheduler]'"
    ) from exc

from .. import context as _context
from ..context import ActiveJob, job_context
from ..errors import ConfigError, JobTagsError, UntaggedJobError
from ..handler import _report_internal_error
from ..schedule import Cron, Interval, Manual, Schedule
from ..tags import JobTag, TagRegistry
from ._runs import (
    ATTR_JOB_DURATION_MS,
    ATTR_JOB_OUTCOME,
    ATTR_JOB_RUNS,
    ATTR_JOB_SCHEDULED_TIME,
    FREQUENT_PERIOD,
    RUNS_LOGGER,
    RunRecordPolicy,
    RunRecords,
    default_run_record_policy,
)
from ._summary import PeriodicSummary, SummarySnapshot, duration_text

__all__ = [
    "ATTR_JOB_DURATION_MS",
    "ATTR_JOB_OUTCOME",
    "ATTR_JOB_RUNS",
    "ATTR_JOB_SCHEDULED_TIME",
    "FREQUENT_PERIOD",
    "RUNS_LOGGER",
    "RunRecordPolicy",
    "ScheduleMismatch",
    "SchedulerConnection",
    "compare_schedule",
    "connect",
    "default_run_record_policy",
    "schedule_mismatches",
    "trigger_for",
    "unscheduled_tags",
    "untagged_jobs",
]

_runs_log = logging.getLogger(RUNS_LOGGER)
_log = logging.getLogger("otel_jobtags.scheduler")


def _new_run_id() -> str:
    return secrets.token_hex(8)


# ---------------------------------------------------------------------------
# What runs in the executor: a stand-in job whose func sets the job context.
# ---------------------------------------------------------------------------


class _Cursor:
    """The run time ``run_job`` is at, for the stand-in's ``func`` to read."""

    __slots__ = ("run_time",)

    def __init__(self) -> None:
        self.run_time: datetime | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Cursor, ())


class _RunTimes(list):  # type: ignore[type-arg]
    """A submission's run times; iterating moves the cursor along.

    APScheduler's ``run_job`` iterates the run times, skips missed ones and
    calls ``job.func`` once for each of the others, all on one thread; so
    when the stand-in's ``func`` is called the cursor holds exactly the run
    time it is called for.
    """

    def __init__(self, run_times: Iterable[datetime], cursor: _Cursor) -> None:
        super().__init__(run_times)
        self.cursor = cursor

    def __iter__(self) -> Iterator[datetime]:
        for run_time in super().__iter__():
            self.cursor.run_time = run_time
            yield run_time


@dataclass
class _RunSpec:
    """What a run of one tagged job needs to know; pickled into process pools."""

    tag: JobTag
    policy: RunRecordPolicy | None
    """``None``: no run records."""
    connection_id: str
    recorder: _Recorder | None = field(default=None, compare=False)
    """The connection's recorder; ``None`` after pickling, i.e. in a child process."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The recorder holds locks and a clock: a child process uses its own.
        return (_RunSpec, (self.tag, self.policy, self.connection_id))

    def get_recorder(self) -> _Recorder:
        if self.recorder is not None:
            return self.recorder
        return _process_recorder(self.connection_id)


class _TaggedJob:
    """Stands in for an APScheduler ``Job`` inside an executor.

    Everything is read from the real job except ``func``, which runs the real
    function inside the job context. The real job is left untouched.
    """

    __slots__ = ("_cursor", "_job", "_spec")

    def __init__(self, job: Any, spec: _RunSpec, cursor: _Cursor) -> None:
        self._job = job
        self._spec = spec
        self._cursor = cursor

    @property
    def func(self) -> Callable[..., Any]:
        return _in_context(self._job.func, self._spec, self._cursor)

    @property
    def _jobstore_alias(self) -> Any:
        return self._job._jobstore_alias

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_TaggedJob, (self._job, self._spec, self._cursor))

    def __str__(self) -> str:
        return str(self._job)

    def __repr__(self) -> str:
        return repr(self._job)


class _Run:
    """One run of a tagged job: its context, run id and timing."""

    __slots__ = ("run_id", "scheduled", "spec", "started", "token")

    def __init__(self, spec: _RunSpec, cursor: _Cursor) -> None:
        self.spec = spec
        self.scheduled = cursor.run_time
        self.run_id = _new_run_id()
        self.token = _context._current.set(ActiveJob(spec.tag, self.run_id))
        self.started = time.perf_counter()

    def end(self, exc_info: tuple[type[BaseException], BaseException, TracebackType] | None) -> None:
        """Write the run record, still inside the job context; never raises."""
        duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        if self.spec.policy is None:
            return
        try:
            recorder = self.spec.get_recorder()
            if exc_info is None:
                recorder.succeeded(self.spec, self.run_id, self.scheduled, duration_ms)
            else:
                recorder.failed(self.spec, self.scheduled, duration_ms, exc_info)
        except Exception as exc:  # a run record must never change the job's outcome
            _report_internal_error("could not write a run record", exc)

    def close(self) -> None:
        _context._current.reset(self.token)

    def __enter__(self) -> _Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The run record is written inside the job context, which ends after it.
        try:
            self.end(None if exc_type is None else (exc_type, exc, tb))  # type: ignore[arg-type]
        finally:
            self.close()


def _in_context(func: Callable[..., Any], spec: _RunSpec, cursor: _Cursor) -> Callable[..., Any]:
    """``func`` wrapped to run in a fresh run of the job; a coroutine function stays one."""
    if iscoroutinefunction_partial(func):

        async def run_coroutine(*args: Any, **kwargs: Any) -> Any:
            with _Run(spec, cursor):
                return await func(*args, **kwargs)

        return run_coroutine

    def run_function(*args: Any, **kwargs: Any) -> Any:
        with _Run(spec, cursor):
            return func(*args, **kwargs)

    return run_function


# ---------------------------------------------------------------------------
# Run records.
# ---------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _attributes(outcome: str, scheduled: datetime | None, **more: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {ATTR_JOB_OUTCOME: outcome}
    if scheduled is not None:
        attributes[ATTR_JOB_SCHEDULED_TIME] = scheduled.isoformat()
    attributes.update({f"job.{name}": value for name, value in more.items()})
    return attributes


@dataclass
class _Successes:
    """The successes of one job waiting for their summary."""

    tag: JobTag
    summary: PeriodicSummary
    last_run_id: str | None = None
    last_scheduled: datetime | None = None


class _Recorder:
    """Writes the run records of one connection (in one process)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._successes: dict[str, _Successes] = {}

    def succeeded(self, spec: _RunSpec, run_id: str, scheduled: datetime | None, duration_ms: float) -> None:
        policy = spec.policy
        if policy is None or policy.successes == "off":
            return
        if policy.successes == "each":
            _runs_log.info(
                "run finished in %.1f ms",
                duration_ms,
                extra=_attributes("success", scheduled, duration_ms=duration_ms),
            )
            return
        job_id = spec.tag.job_id
        snapshot: SummarySnapshot | None = None
        with self._lock:
            pending = self._successes.get(job_id)
            first = pending is None or pending.summary.every != policy.every
            if first:
                pending = _Successes(spec.tag, PeriodicSummary("runs", policy.every, clock=self._clock))
                self._successes[job_id] = pending
            else:
                assert pending is not None
                pending.summary.record(duration_ms=duration_ms)
                pending.last_run_id, pending.last_scheduled = run_id, scheduled
                snapshot = pending.summary.take()
        if first:
            _runs_log.info(
                "run finished in %.1f ms; further successful runs are summarised every %s",
                duration_ms,
                duration_text(policy.every.total_seconds()),
                extra=_attributes("success", scheduled, duration_ms=duration_ms),
            )
        elif snapshot is not None:
            self._log_summary(snapshot, scheduled)

    @staticmethod
    def _log_summary(snapshot: SummarySnapshot, scheduled: datetime | None) -> None:
        runs = snapshot.updates
        mean = round(snapshot.totals.get("duration_ms", 0.0) / runs, 3)
        _runs_log.info(
            "%d %s finished in the last %s, %.1f ms on average",
            runs,
            "run" if runs == 1 else "runs",
            duration_text(snapshot.elapsed),
            mean,
            extra=_attributes("success", scheduled, duration_ms=mean, runs=runs),
        )

    def failed(
        self,
        spec: _RunSpec,
        scheduled: datetime | None,
        duration_ms: float,
        exc_info: tuple[type[BaseException], BaseException, TracebackType],
    ) -> None:
        error = traceback.format_exception_only(exc_info[0], exc_info[1])[-1].strip()
        if not isinstance(exc_info[1], Exception):
            # Cancelled (asyncio cancellation on shutdown), interrupted or exiting:
            # the job did not fail, so a "failing" alert must not count it.
            _runs_log.warning(
                "run cancelled after %.1f ms: %s",
                duration_ms,
                error,
                extra=_attributes("cancelled", scheduled, duration_ms=duration_ms),
            )
            return
        _runs_log.error(
            "run failed after %.1f ms: %s",
            duration_ms,
            error,
            exc_info=exc_info,
            extra=_attributes("error", scheduled, duration_ms=duration_ms),
        )

    @staticmethod
    def missed(tag: JobTag, scheduled: datetime | None) -> None:
        with job_context(tag, run_id=_new_run_id()):
            _runs_log.warning(
                "run missed: it was due at %s and could not start within its misfire grace time",
                _iso(scheduled),
                extra=_attributes("missed", scheduled),
            )

    @staticmethod
    def skipped(tag: JobTag, scheduled: datetime | None) -> None:
        with job_context(tag, run_id=_new_run_id()):
            _runs_log.warning(
                "run skipped: it was due at %s while earlier runs were still going (max_instances reached)",
                _iso(scheduled),
                extra=_attributes("skipped", scheduled),
            )

    def flush(self) -> None:
        """Write the summaries that are waiting, due or not."""
        with self._lock:
            pending = list(self._successes.values())
        for successes in pending:
            snapshot = successes.summary.take(force=True)
            if snapshot is not None:
                with job_context(successes.tag, run_id=successes.last_run_id):
                    self._log_summary(snapshot, successes.last_scheduled)


_process_recorders: dict[str, _Recorder] = {}
_process_recorders_lock = threading.Lock()


def _process_recorder(connection_id: str) -> _Recorder:
    # In a process-pool worker: one recorder per connection, living as long as the worker.
    with _process_recorders_lock:
        recorder = _process_recorders.get(connection_id)
        if recorder is None:
            recorder = _process_recorders[connection_id] = _Recorder(time.monotonic)
        return recorder


# ---------------------------------------------------------------------------
# The connection.
# ---------------------------------------------------------------------------

_connected: weakref.WeakKeyDictionary[Any, SchedulerConnection] = weakref.WeakKeyDictionary()
_connected_lock = threading.Lock()


class SchedulerConnection:
    """A scheduler connected to a registry by :func:`connect`; :meth:`disconnect` undoes it.

    Also a context manager that disconnects on exit.
    """

    def __init__(
        self,
        scheduler: Any,
        registry: TagRegistry,
        *,
        strict: bool,
        run_records: RunRecords,
        clock: Callable[[], float],
    ) -> None:
        self.scheduler = scheduler
        """The connected scheduler."""
        self.registry = registry
        """The tags jobs are looked up in, by job id."""
        self.strict = strict
        """Whether untagged job ids are refused."""
        self._records = run_records is not False
        self._policies: dict[str, RunRecordPolicy] = {}
        if isinstance(run_records, Mapping):
            for key, policy in run_records.items():
                if not isinstance(policy, RunRecordPolicy):
                    raise ConfigError(
                        f"Invalid run_records[{key!r}]={policy!r}: give a RunRecordPolicy, "
                        "e.g. RunRecordPolicy('summary')"
                    )
                self._policies[registry.resolve(key).job_id] = policy
        elif not isinstance(run_records, bool):
            raise ConfigError(
                f"Invalid run_records={run_records!r}: give True, False or a mapping of job id "
                "to RunRecordPolicy"
            )
        self._id = uuid.uuid4().hex
        self._recorder = _Recorder(clock)
        self._active = True
        self._lock = threading.Lock()
        self._warned: set[str | None] = set()
        self._wrapped_executors: list[tuple[Any, Callable[..., Any]]] = []
        self._add_job: Callable[..., Any] | None = None

    # -- the public surface -------------------------------------------------

    @property
    def connected(self) -> bool:
        """False once :meth:`disconnect` has run."""
        return self._active

    def policy_for(self, job: JobTag | str) -> RunRecordPolicy | None:
        """The run-record policy of a job (by tag, job id or name); ``None`` when run records are off."""
        tag = self.registry.resolve(job)
        if not self._records:
            return None
        return self._policies.get(tag.job_id) or default_run_record_policy(tag)

    def unscheduled_tags(self, *, include_manual: bool = False) -> tuple[JobTag, ...]:
        """Registered tags whose job id the scheduler does not hold; see :func:`unscheduled_tags`."""
        return unscheduled_tags(self.scheduler, self.registry, include_manual=include_manual)

    def untagged_jobs(self) -> tuple[str, ...]:
        """Job ids the scheduler holds that have no tag; see :func:`untagged_jobs`."""
        return untagged_jobs(self.scheduler, self.registry)

    def schedule_mismatches(self) -> list[ScheduleMismatch]:
        """Tagged jobs whose trigger disagrees with the tag's schedule; see :func:`schedule_mismatches`."""
        return schedule_mismatches(self.scheduler, self.registry)

    def flush(self) -> None:
        """Write the success summaries that are waiting (also done on disconnect and scheduler shutdown)."""
        self._recorder.flush()

    def disconnect(self) -> None:
        """Stop tagging: restore ``add_job`` and the executors, remove the listener, flush summaries.

        Runs already in progress finish inside their job context. Safe to call twice.
        """
        with self._lock:
            if not self._active:
                return
            self._active = False
        scheduler = self.scheduler
        scheduler.remove_listener(self._on_event)
        if self._add_job is not None and scheduler.__dict__.get("add_job") is self._add_job:
            del scheduler.add_job
        for executor, wrapper in self._wrapped_executors:
            if executor.__dict__.get("submit_job") is wrapper:
                del executor.submit_job
        # A wrapper someone else has wrapped again stays in place, and passes through now.
        self._wrapped_executors.clear()
        with _connected_lock:
            if _connected.get(scheduler) is self:
                del _connected[scheduler]
        self._recorder.flush()

    def __enter__(self) -> SchedulerConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        state = "connected" if self._active else "disconnected"
        return f"<SchedulerConnection {type(self.scheduler).__name__} {self.registry!r} {state}>"

    # -- the machinery ------------------------------------------------------

    def _tag(self, job_id: str) -> JobTag | None:
        return self.registry.job_tag_map.get(job_id)

    def _warn_untagged(self, job_id: str | None) -> None:
        with self._lock:
            if job_id in self._warned:
                return
            self._warned.add(job_id)
        known = ", ".join(self.registry.job_ids) or "none: the registry is empty"
        if job_id is None:
            _log.warning(
                "A job was added without an id: it gets a random one, which no tag can name, "
                "so its records are not tagged; add it with id='<a tagged job id>' (tagged job ids: %s)",
                known,
            )
        else:
            _log.warning(
                "Job id %r has no tag: its records are not tagged; define one with "
                "registry.define('NAME', %r, ...) (tagged job ids: %s)",
                job_id,
                job_id,
                known,
            )

    def _check_existing(self) -> None:
        untagged = untagged_jobs(self.scheduler, self.registry)
        if untagged and self.strict:
            raise UntaggedJobError(untagged, self.registry.job_ids)
        for job_id in untagged:
            self._warn_untagged(job_id)

    def _check_new(self, job_id: Any) -> None:
        if job_id is not None and self._tag(job_id) is not None:
            return
        if self.strict:
            raise UntaggedJobError(() if job_id is None else (job_id,), self.registry.job_ids)
        self._warn_untagged(job_id)

    def _spec(self, job_id: str) -> _RunSpec | None:
        tag = self._tag(job_id)
        if tag is None:
            # Only reached by jobs that bypassed add_job (e.g. loaded from a persistent
            # job store when the scheduler started): they run, untagged, in either mode.
            self._warn_untagged(job_id)
            return None
        policy = (self._policies.get(job_id) or default_run_record_policy(tag)) if self._records else None
        return _RunSpec(tag, policy, self._id, self._recorder)

    def _wrap_add_job(self) -> None:
        original = self.scheduler.add_job
        signature = inspect.signature(original)

        def add_job(*args: Any, **kwargs: Any) -> Any:
            if self._active:
                try:
                    bound = signature.bind(*args, **kwargs)
                except TypeError:
                    pass  # let APScheduler report the bad call in its own words
                else:
                    self._check_new(bound.arguments.get("id"))
            return original(*args, **kwargs)

        add_job.__doc__ = original.__doc__
        add_job.__wrapped__ = original  # type: ignore[attr-defined]
        self.scheduler.add_job = add_job
        self._add_job = add_job

    def _wrap_executor(self, executor: Any) -> None:
        with self._lock:  # connect() and the executor-added listener may race
            if any(executor is wrapped for wrapped, _ in self._wrapped_executors):
                return
            self._wrap_submit_job(executor)

    def _wrap_submit_job(self, executor: Any) -> None:
        original = executor.submit_job

        def submit_job(job: Any, run_times: list[datetime]) -> Any:
            spec = self._spec(job.id) if self._active else None
            if spec is None:
                return original(job, run_times)
            cursor = _Cursor()
            return original(_TaggedJob(job, spec, cursor), _RunTimes(run_times, cursor))

        executor.submit_job = submit_job
        self._wrapped_executors.append((executor, submit_job))

    def _on_event(self, event: Any) -> None:
        # Listeners run on whichever thread finished (or refused) the job: use
        # event.job_id, never the context.
        if not self._active:
            return
        code = event.code
        if code == EVENT_EXECUTOR_ADDED:
            executor = self.scheduler._executors.get(event.alias)
            if executor is not None:
                self._wrap_executor(executor)
        elif code == EVENT_SCHEDULER_SHUTDOWN:
            self._recorder.flush()
        elif self._records:
            tag = self._tag(event.job_id)
            if tag is None:
                return
            if code == EVENT_JOB_MISSED:
                self._recorder.missed(tag, event.scheduled_run_time)
            elif code == EVENT_JOB_MAX_INSTANCES:
                for run_time in event.scheduled_run_times:
                    self._recorder.skipped(tag, run_time)


def connect(
    scheduler: Any,
    registry: TagRegistry,
    *,
    strict: bool = True,
    run_records: RunRecords = True,
    clock: Callable[[], float] = time.monotonic,
) -> SchedulerConnection:
    """Run every job of an APScheduler 3.x scheduler in its job context, and record every run.

    Works with the background, blocking and asyncio schedulers (others too, as
    long as their executors use APScheduler's ``run_job``), before or after
    ``start()``, for jobs added before or after the call.

    Args:
        scheduler: the scheduler.
        registry: the tags; jobs are matched by exact job id.
        strict: refuse job ids without a tag -- those already in the scheduler
            now, later ones when ``add_job`` is called (the job is not added).
            With ``strict=False`` such jobs run untagged and a WARNING is
            logged once per id on ``otel_jobtags.scheduler``.
        run_records: ``True`` for run records with the default policies
            (:func:`default_run_record_policy`), ``False`` for none, or a
            mapping of job id (or tag, or tag name) to :class:`RunRecordPolicy`
            overriding the defaults for those jobs.
        clock: the monotonic clock success summaries are timed with (tests).

    Returns:
        The connection; its :meth:`~SchedulerConnection.disconnect` undoes everything.

    Raises:
        UntaggedJobError: strict mode and the scheduler holds untagged job ids.
        UnknownJobError: ``run_records`` names a job the registry does not know.
        ConfigError: ``run_records`` is not one of the accepted forms.
        JobTagsError: the scheduler is already connected.

    Jobs loaded from a persistent job store at ``start()`` are not seen before
    it: connect after ``start(paused=True)`` to have them checked too.
    """
    with _connected_lock:
        previous = _connected.get(scheduler)
        if previous is not None:
            raise JobTagsError(
                f"{type(scheduler).__name__} is already connected to {previous.registry!r}: "
                "call disconnect() on that connection first"
            )
        connection = SchedulerConnection(
            scheduler, registry, strict=strict, run_records=run_records, clock=clock
        )
        connection._check_existing()  # before changing anything: a refused connect leaves no trace
        _connected[scheduler] = connection
    connection._wrap_add_job()
    scheduler.add_listener(
        connection._on_event,
        EVENT_EXECUTOR_ADDED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_SCHEDULER_SHUTDOWN,
    )
    # A scheduler creates its default executor in start(): that arrives as EVENT_EXECUTOR_ADDED.
    for executor in list(scheduler._executors.values()):
        connection._wrap_executor(executor)
    return connection


# ---------------------------------------------------------------------------
# Checks: scheduler against registry.
# ---------------------------------------------------------------------------


def _jobs(scheduler: Any) -> list[Any]:
    # Pending jobs before start(), the job stores' jobs after it.
    return list(scheduler.get_jobs())


def untagged_jobs(scheduler: Any, registry: TagRegistry) -> tuple[str, ...]:
    """The scheduler's job ids that have no tag, in the scheduler's order."""
    tagged = registry.job_tag_map
    return tuple(dict.fromkeys(job.id for job in _jobs(scheduler) if job.id not in tagged))


def unscheduled_tags(
    scheduler: Any, registry: TagRegistry, *, include_manual: bool = False
) -> tuple[JobTag, ...]:
    """Registered tags whose job id the scheduler does not hold, in definition order.

    Tags with a ``manual`` schedule are expected to be missing (they run by
    hand or from outside) and are left out unless ``include_manual``.
    """
    scheduled = {job.id for job in _jobs(scheduler)}
    return tuple(
        tag
        for tag in registry
        if tag.job_id not in scheduled and (include_manual or not isinstance(tag.schedule, Manual))
    )


@dataclass(frozen=True)
class ScheduleMismatch:
    """A tagged job whose trigger does not follow its tag's schedule."""

    tag: JobTag
    """The job's tag."""
    expected: Schedule
    """The tag's schedule."""
    actual: str
    """The scheduler's trigger, as APScheduler prints it, e.g. ``cron[hour='9', minute='5']``."""
    reason: str
    """How they differ, e.g. ``it runs at 09:05 instead of 09:00``."""

    @property
    def job_id(self) -> str:
        """The job id."""
        return self.tag.job_id

    def __str__(self) -> str:
        return (
            f"{self.tag} {self.job_id}: the tag says '{self.expected}', "
            f"the scheduler has {self.actual}; {self.reason}"
        )


def schedule_mismatches(scheduler: Any, registry: TagRegistry) -> list[ScheduleMismatch]:
    """Compare each scheduled, tagged job's trigger with its tag's schedule.

    Jobs without a tag and tags without a job are not reported here (see
    :func:`untagged_jobs` and :func:`unscheduled_tags`). See
    :func:`compare_schedule` for what counts as a match.
    """
    triggers = {job.id: job.trigger for job in _jobs(scheduler)}
    mismatches = []
    for tag in registry:
        if tag.job_id not in triggers:
            continue
        trigger = triggers[tag.job_id]
        reason = compare_schedule(tag.schedule, trigger)
        if reason is not None:
            mismatches.append(ScheduleMismatch(tag, tag.schedule, str(trigger), reason))
    return mismatches


def compare_schedule(schedule: Schedule, trigger: Any) -> str | None:
    """How an APScheduler trigger differs from a schedule; ``None`` when it follows it.

    * :class:`~otel_jobtags.Interval` matches an ``IntervalTrigger`` of the
      same length.
    * :class:`~otel_jobtags.Cron` matches a ``CronTrigger`` (or an
      ``OrTrigger`` of them, as :func:`trigger_for` builds for cron's
      day-of-month *or* day-of-week rule) that fires at the same wall-clock
      times: compared over four years, day by day, and by time of day. This
      catches the 3.x ``CronTrigger.from_crontab`` pitfall, where day of week
      ``1`` is Tuesday, not Monday. Time zones are not compared.
    * :class:`~otel_jobtags.Manual` matches no trigger or a one-off ``DateTrigger``.
    """
    if isinstance(schedule, Manual):
        if trigger is None or isinstance(trigger, DateTrigger):
            return None
        return "the tag's schedule is manual, but the scheduler runs it on a trigger"
    if isinstance(schedule, Interval):
        if not isinstance(trigger, IntervalTrigger):
            return (
                f"the tag's schedule is an interval ({schedule}), but the trigger is not an interval trigger"
            )
        seconds = trigger.interval.total_seconds()
        if seconds == schedule.seconds:
            return None
        every = (
            str(Interval(int(seconds))) if seconds == int(seconds) and seconds > 0 else f"every {seconds:g} s"
        )
        return f"it runs {every}, not {schedule}"
    probe = _probe(trigger)
    if probe is None:
        return (
            f"the tag's schedule is a cron expression ({schedule.expression}), "
            "but the trigger is not a cron trigger"
        )
    return _compare_cron(schedule, probe)


# Four years starting on 1 January, one of them a leap year: every day of
# the year, both kinds of February and every weekday of every date.
_WINDOW_START = datetime(2025, 1, 1)
_WINDOW_END = datetime(2029, 1, 1)


def _probe(trigger: Any) -> Any:
    """A copy of a cron trigger that computes wall-clock times in UTC: no DST jumps, no bounds."""
    if isinstance(trigger, CronTrigger):
        probe = copy.copy(trigger)
        probe.timezone = dt_timezone.utc
        probe.start_date = probe.end_date = probe.jitter = None
        return probe
    if isinstance(trigger, OrTrigger):
        parts = [_probe(part) for part in trigger.triggers]
        if parts and all(part is not None for part in parts):
            return OrTrigger(parts)
    return None


def _time_text(moment: dtime) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


def _times_text(times: set[dtime]) -> str:
    ordered = sorted(times)
    if not ordered:
        return "no time"
    text = ", ".join(_time_text(t) for t in ordered[:4])
    return f"{text}, ... ({len(ordered)} times a day)" if len(ordered) > 4 else text


def _compare_cron(schedule: Cron, probe: Any) -> str | None:
    utc = dt_timezone.utc
    # Times of day: cron fields are independent, so one firing day shows them all.
    first = probe.get_next_fire_time(None, _WINDOW_START.replace(tzinfo=utc))
    trigger_times: set[dtime] = set()
    fire = first
    while fire is not None and fire.date() == first.date() and len(trigger_times) <= 24 * 60:
        trigger_times.add(fire.time().replace(tzinfo=None))
        fire = probe.get_next_fire_time(fire, fire)
    expected_times = {dtime(h, m) for h in schedule.fields[1] for m in schedule.fields[0]}
    if first is not None and trigger_times != expected_times:
        if len(trigger_times) > 24 * 60:
            return "it runs more than once a minute, all day long"
        return f"it runs at {_times_text(trigger_times)} instead of {_times_text(expected_times)}"
    # Days: every day either fires on, over the window.
    expected_days: set[date] = set()
    moment = schedule.next_after(_WINDOW_START - timedelta(minutes=1))
    while moment < _WINDOW_END:
        expected_days.add(moment.date())
        moment = schedule.next_after(datetime.combine(moment.date(), dtime(23, 59)))
    trigger_days: set[date] = set()
    fire = first
    while fire is not None and fire.replace(tzinfo=None) < _WINDOW_END:
        trigger_days.add(fire.date())
        next_day = datetime.combine(fire.date() + timedelta(days=1), dtime(0), tzinfo=utc)
        fire = probe.get_next_fire_time(None, next_day)
    if trigger_days == expected_days:
        return None
    day = min(trigger_days ^ expected_days)
    if day in trigger_days:
        return f"it runs on {day:%a %Y-%m-%d}, where the tag's schedule does not"
    return f"it does not run on {day:%a %Y-%m-%d}, where the tag's schedule does"


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def trigger_for(schedule: Schedule | JobTag, *, timezone: Any = None) -> Any:
    """The APScheduler trigger that follows a schedule; ``None`` for a manual one.

    Use it rather than ``CronTrigger.from_crontab``, which in 3.x reads day of
    week ``0`` as Monday where cron means Sunday. A cron expression whose day
    of month and day of week are both restricted matches a day when either
    does (cron's rule); that becomes an ``OrTrigger`` of two cron triggers.

    Args:
        schedule: a schedule, or a tag whose schedule to use.
        timezone: the trigger's time zone; by default APScheduler's, the local
            one (a trigger object does not take the scheduler's).
    """
    if isinstance(schedule, JobTag):
        schedule = schedule.schedule
    if isinstance(schedule, Manual):
        return None
    if isinstance(schedule, Interval):
        return IntervalTrigger(seconds=schedule.seconds, timezone=timezone)
    minute, hour, dom, month, dow = schedule.expression.split()
    fields = schedule.fields

    def cron(**days: str) -> Any:
        # Only the restricted fields, so the trigger prints like a hand-written one;
        # minute always, or APScheduler would default it to 0 after a given hour.
        given = {name: text for name, text in {"month": month, **days, "hour": hour}.items() if text != "*"}
        given["minute"] = minute
        try:
            return CronTrigger(**given, timezone=timezone)
        except ValueError:  # a form APScheduler reads differently: spell out the values
            expanded = {"minute": fields[0], "hour": fields[1], "day": fields[2], "month": fields[3]}
            return CronTrigger(
                **{
                    name: text if text == "*" or name == "day_of_week" else _values(expanded[name])
                    for name, text in given.items()
                },
                timezone=timezone,
            )

    dow_names = "*" if dow == "*" else ",".join(_WEEKDAYS[d] for d in sorted(fields[4]))
    if dom != "*" and dow != "*":
        return OrTrigger([cron(day=dom), cron(day_of_week=dow_names)])
    return cron(day=dom, day_of_week=dow_names)


def _values(values: frozenset[int]) -> str:
    return ",".join(str(v) for v in sorted(values))
