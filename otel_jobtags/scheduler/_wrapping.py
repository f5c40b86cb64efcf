"""What runs in the executor: a stand-in job whose ``func`` sets the job context."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any

try:
    from apscheduler.util import iscoroutinefunction_partial
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "otel_jobtags.scheduler needs APScheduler 3.x: pip install 'otel-jobtags[scheduler]'"
    ) from exc

from .. import _diagnostics
from ..context import job_context
from ._recorder import RunSpec, new_run_id

__all__ = ["Cursor", "RunTimes", "TaggedJob"]


class Cursor:
    """The run ``run_job`` is at (its run time and run id), for the stand-in's ``func`` to read."""

    __slots__ = ("run_id", "run_time")

    def __init__(self) -> None:
        self.run_time: datetime | None = None
        self.run_id: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (Cursor, ())


class RunTimes(list):  # type: ignore[type-arg]
    """A submission's run times; iterating moves the cursor along and opens each run.

    APScheduler's ``run_job`` iterates the run times, skips missed ones and
    calls ``job.func`` once for each of the others, all on one thread (or in
    one task); so when the stand-in's ``func`` is called the cursor holds
    exactly the run time it is called for. Each step of the iteration runs in
    the job's context with a fresh run id, so what ``run_job`` logs around
    the call (``Running job ...``, ``... executed successfully``, ``... raised
    an exception``, ``Run time of job ... was missed``) belongs to the run.
    """

    def __init__(self, run_times: Iterable[datetime], cursor: Cursor, spec: RunSpec) -> None:
        super().__init__(run_times)
        self.cursor = cursor
        self.spec = spec

    def __iter__(self) -> Iterator[datetime]:
        cursor = self.cursor
        for run_time in super().__iter__():
            cursor.run_time = run_time
            cursor.run_id = new_run_id()
            context = job_context(self.spec.tag, run_id=cursor.run_id)
            context.__enter__()
            try:
                yield run_time
            finally:
                # run_job resumes (or closes) the iteration where the step began;
                # a reset from anywhere else is ignored by job_context.
                context.__exit__(None, None, None)
                cursor.run_id = None


class TaggedJob:
    """Stands in for an APScheduler ``Job`` inside an executor.

    Everything is read from the real job except ``func``, which runs the real
    function inside the job context. The real job is left untouched.
    """

    __slots__ = ("_cursor", "_job", "_spec")

    def __init__(self, job: Any, spec: RunSpec, cursor: Cursor) -> None:
        self._job = job
        self._spec = spec
        self._cursor = cursor

    @property
    def func(self) -> Callable[..., Any]:
        return _in_context(self._job.func, self._spec, self._cursor)

    @property
    def spec(self) -> RunSpec:
        """What the runs of this job need: its tag, run-record policy and connection."""
        return self._spec

    @property
    def _jobstore_alias(self) -> Any:
        return self._job._jobstore_alias

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaggedJob, (self._job, self._spec, self._cursor))

    def __str__(self) -> str:
        return str(self._job)

    def __repr__(self) -> str:
        return repr(self._job)


class _Run:
    """One run of a tagged job: its context, run id and timing."""

    __slots__ = ("context", "run_id", "scheduled", "spec", "started")

    def __init__(self, spec: RunSpec, cursor: Cursor) -> None:
        self.spec = spec
        self.scheduled = cursor.run_time
        # The run the iteration opened, or a new one when func is called on its own.
        self.run_id = cursor.run_id or new_run_id()
        self.context = job_context(spec.tag, run_id=self.run_id)
        self.context.__enter__()
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
            _diagnostics.report("could not write a run record", exc)

    def close(self) -> None:
        self.context.__exit__(None, None, None)

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


def _in_context(func: Callable[..., Any], spec: RunSpec, cursor: Cursor) -> Callable[..., Any]:
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
