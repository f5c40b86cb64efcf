"""One run of a job function outside a scheduler, exactly as the scheduler integration runs it.

:func:`run_job` gives the call what :func:`~otel_jobtags.scheduler.connect`
gives every scheduled run -- the job context with a fresh ``job.run_id`` and a
run record on ``otel_jobtags.runs`` -- and returns what happened as a
:class:`JobRun`. Use it for a job started by hand (a ``manual`` job from a
command or an admin page) and, through :func:`otel_jobtags.testing.run_job`,
in an application's own tests. No APScheduler needed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import _diagnostics
from ..context import job_context
from ..errors import ConfigError
from ..tags import JobTag
from ._recorder import Recorder, RunSpec, new_run_id
from ._runs import RunRecordPolicy, default_run_record_policy

__all__ = ["JobRun", "arun_job", "run_job"]


@dataclass(frozen=True)
class JobRun:
    """What one run of a job did."""

    tag: JobTag
    """The job's tag."""
    run_id: str
    """The run's ``job.run_id``, on every record it logged and on its run record."""
    outcome: str
    """``"success"``, ``"error"`` (it raised an ``Exception``) or ``"cancelled"``."""
    duration_ms: float
    """How long the function ran."""
    value: Any = None
    """What the function returned (``None`` when it raised)."""
    error: BaseException | None = None
    """What it raised, if it did."""

    @property
    def ok(self) -> bool:
        """Whether the run succeeded."""
        return self.outcome == "success"


def _policy(tag: JobTag, run_records: RunRecordPolicy | bool) -> RunRecordPolicy | None:
    if run_records is True:
        return default_run_record_policy(tag)
    if run_records is False:
        return None
    if isinstance(run_records, RunRecordPolicy):
        return run_records
    raise ConfigError(
        f"Invalid run_records={run_records!r}: give True, False or a RunRecordPolicy, "
        "e.g. RunRecordPolicy('each')"
    )


class _Run:
    def __init__(self, tag: JobTag, run_records: RunRecordPolicy | bool, scheduled: datetime | None) -> None:
        if not isinstance(tag, JobTag):
            raise ConfigError(f"Invalid job {tag!r}: give its JobTag (registry.resolve(job_id) finds it)")
        self.tag = tag
        self.spec = RunSpec(tag, _policy(tag, run_records), "run_job", Recorder(time.monotonic))
        self.scheduled = scheduled
        self.run_id = new_run_id()
        self.context = job_context(tag, run_id=self.run_id)

    def finish(self, started: float, value: Any, error: BaseException | None) -> JobRun:
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        outcome = "success" if error is None else ("error" if isinstance(error, Exception) else "cancelled")
        if self.spec.policy is not None:
            try:
                recorder = self.spec.get_recorder()
                if error is None:
                    recorder.succeeded(self.spec, self.run_id, self.scheduled, duration_ms)
                else:
                    recorder.failed(
                        self.spec, self.scheduled, duration_ms, (type(error), error, error.__traceback__)
                    )
            except Exception as exc:  # a run record must never change the job's outcome
                _diagnostics.report("could not write a run record", exc)
        return JobRun(self.tag, self.run_id, outcome, duration_ms, value, error)


def run_job(
    tag: JobTag,
    func: Callable[..., Any],
    /,
    *args: Any,
    run_records: RunRecordPolicy | bool = True,
    scheduled: datetime | None = None,
    **kwargs: Any,
) -> JobRun:
    """Call ``func(*args, **kwargs)`` as one run of the job ``tag``; never raises what the job raises.

    Inside the call every record is attributed to the job with a fresh
    ``job.run_id``; when it returns or raises, its run record is written
    (the policy's rules, as :func:`connect` writes them; a fresh recorder, so
    under a ``"summary"`` policy every call is a first run and recorded). An
    ``Exception`` the function raises is recorded once, with its traceback,
    and returned in :attr:`JobRun.error`; anything else (``KeyboardInterrupt``,
    ``SystemExit``) is recorded as cancelled and raised again.

    Args:
        tag: the job.
        func: the job function (not a coroutine function: see :func:`arun_job`).
        args, kwargs: its arguments.
        run_records: ``True`` for the job's default policy
            (:func:`default_run_record_policy`), ``False`` for no run record,
            or a :class:`RunRecordPolicy`.
        scheduled: the run's ``job.scheduled_time``, if it had one.

    Raises:
        ConfigError: ``tag`` is not a JobTag, ``func`` is a coroutine function
            or ``run_records`` is not one of the accepted forms.
    """
    if inspect.iscoroutinefunction(func):
        raise ConfigError(f"{func!r} is a coroutine function: use 'await arun_job(...)'")
    run = _Run(tag, run_records, scheduled)
    with run.context:
        started = time.perf_counter()
        try:
            value = func(*args, **kwargs)
        except BaseException as exc:
            result = run.finish(started, None, exc)
            if not isinstance(exc, Exception):
                raise
            return result
        return run.finish(started, value, None)


async def arun_job(
    tag: JobTag,
    func: Callable[..., Awaitable[Any]],
    /,
    *args: Any,
    run_records: RunRecordPolicy | bool = True,
    scheduled: datetime | None = None,
    **kwargs: Any,
) -> JobRun:
    """:func:`run_job` for a coroutine function: ``await arun_job(tag, func, ...)``."""
    run = _Run(tag, run_records, scheduled)
    with run.context:
        started = time.perf_counter()
        try:
            value = await func(*args, **kwargs)
        except BaseException as exc:
            result = run.finish(started, None, exc)
            if not isinstance(exc, Exception):
                raise
            return result
        return run.finish(started, value, None)
