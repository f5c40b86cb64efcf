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

import inspect
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

try:
    from apscheduler.events import (
        EVENT_EXECUTOR_ADDED,
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_MISSED,
        EVENT_SCHEDULER_SHUTDOWN,
        EVENT_SCHEDULER_START,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "otel_jobtags.scheduler needs APScheduler 3.x: pip install 'otel-jobtags[scheduler]'"
    ) from exc

from ..errors import ConfigError, JobTagsError, UntaggedJobError
from ..tags import JobTag, TagRegistry
from ._checks import (
    ScheduleMismatch,
    schedule_mismatches,
    unscheduled_tags,
    untagged_jobs,
)
from ._hostlock import RunningMark
from ._lines import APSchedulerLines, SchedulerLinesFilter, add_filter, resolve_apscheduler_lines
from ._recorder import Recorder, RunSpec
from ._runs import (
    RunRecordPolicy,
    RunRecords,
    default_run_record_policy,
)
from ._wrapping import Cursor, RunTimes, TaggedJob

__all__ = ["SchedulerConnection", "connect"]

_log = logging.getLogger("otel_jobtags.scheduler")

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
        apscheduler_lines: APSchedulerLines = "debug",
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
        self._lines_filter = SchedulerLinesFilter(
            self._id, registry, records=self._records, lower=resolve_apscheduler_lines(apscheduler_lines)
        )
        self._filtered_loggers: list[logging.Logger] = []
        self._running_mark = RunningMark(registry)
        self._recorder = Recorder(clock)
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
        self._unfilter_lines()
        self._running_mark.unmark()
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

    def _spec(self, job_id: str) -> RunSpec | None:
        tag = self._tag(job_id)
        if tag is None:
            # Only reached by jobs that bypassed add_job (e.g. loaded from a persistent
            # job store when the scheduler started): they run, untagged, in either mode.
            self._warn_untagged(job_id)
            return None
        policy = (self._policies.get(job_id) or default_run_record_policy(tag)) if self._records else None
        return RunSpec(tag, policy, self._id, self._recorder)

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
            # The executor's logger is named after its alias once it has started.
            self._filter_lines_of(getattr(executor, "_logger", None))
            self._filter_lines_of(getattr(self.scheduler, "_logger", None))
            cursor = Cursor()
            return original(TaggedJob(job, spec, cursor), RunTimes(run_times, cursor, spec))

        executor.submit_job = submit_job
        self._wrapped_executors.append((executor, submit_job))

    def _filter_lines_of(self, logger: Any) -> None:
        with self._lock:
            added = add_filter(logger, self._lines_filter) if self._active else None
            if added is not None:
                self._filtered_loggers.append(added)

    def _unfilter_lines(self) -> None:
        with self._lock:
            for logger in self._filtered_loggers:
                logger.removeFilter(self._lines_filter)
            self._filtered_loggers.clear()

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
        elif code == EVENT_SCHEDULER_START:
            self._running_mark.mark()
        elif code == EVENT_SCHEDULER_SHUTDOWN:
            self._running_mark.unmark()
            self._recorder.flush()
            # Off the global loggers until the next submission (a restart) puts it back.
            self._unfilter_lines()
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
    apscheduler_lines: APSchedulerLines = "debug",
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
        apscheduler_lines: APScheduler's own per-run lines (``Running job``,
            ``executed successfully``, ``raised an exception``, missed and
            skipped runs) always carry their run's job and ``job.run_id``.
            ``"debug"`` logs them at DEBUG for jobs with run records, the
            failure line without its traceback (the run record has it): a
            run is said once at INFO, a failure once with its traceback.
            ``"keep"`` leaves them at APScheduler's levels.
        clock: the monotonic clock success summaries are timed with (tests).

    Returns:
        The connection; its :meth:`~SchedulerConnection.disconnect` undoes everything.

    Raises:
        UntaggedJobError: strict mode and the scheduler holds untagged job ids.
        UnknownJobError: ``run_records`` names a job the registry does not know.
        ConfigError: ``run_records`` or ``apscheduler_lines`` is not one of the accepted forms.
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
            scheduler,
            registry,
            strict=strict,
            run_records=run_records,
            clock=clock,
            apscheduler_lines=apscheduler_lines,
        )
        connection._check_existing()  # before changing anything: a refused connect leaves no trace
        _connected[scheduler] = connection
    connection._wrap_add_job()
    connection._filter_lines_of(getattr(scheduler, "_logger", None))
    scheduler.add_listener(
        connection._on_event,
        EVENT_EXECUTOR_ADDED
        | EVENT_JOB_MISSED
        | EVENT_JOB_MAX_INSTANCES
        | EVENT_SCHEDULER_START
        | EVENT_SCHEDULER_SHUTDOWN,
    )
    if getattr(scheduler, "running", False):
        connection._running_mark.mark()
    # A scheduler creates its default executor in start(): that arrives as EVENT_EXECUTOR_ADDED.
    for executor in list(scheduler._executors.values()):
        connection._wrap_executor(executor)
    return connection
