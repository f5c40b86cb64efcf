"""Which job is running: a context variable that every log record reads.

Inside ``with job_context(tag):`` (or a function decorated with it) every
record from any logger -- the job's own and those of the libraries it calls --
is attributed to the job. The state lives in a :class:`contextvars.ContextVar`,
so it nests, stays apart between asyncio tasks and threads, and is restored on
exit even when the block raises.

Threads do not inherit context variables. To carry the job into a thread or an
executor the job starts, wrap the callable with :func:`bind`::

    with job_context("auto_rebalance"):
        pool.submit(bind(work), item)      # work() logs as AUTO_REBAL

(``asyncio.to_thread`` copies the context by itself.)

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from .errors import ConfigError
from .tags import JobTag, TagRegistry

__all__ = [
    "ActiveJob",
    "active_registry",
    "bind",
    "current_job",
    "current_job_var",
    "job_context",
    "use_registry",
]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ActiveJob:
    """The job a piece of code runs in."""

    tag: JobTag
    """The job's tag."""
    run_id: str | None = None
    """Identifies one run of the job, when the runner assigns one."""


current_job_var: ContextVar[ActiveJob | None] = ContextVar("otel_jobtags.current_job", default=None)
"""The job context :func:`current_job` reads; hot paths read it directly (``.get()``)."""
_registry: TagRegistry | None = None


def use_registry(registry: TagRegistry | None) -> TagRegistry | None:
    """Make ``registry`` the one that job ids, tag names and ``[TAG]`` prefixes resolve against.

    :func:`otel_jobtags.install` calls this; call it yourself when you use
    :class:`~otel_jobtags.JobTagFilter` without ``install``. Returns the
    registry that was active before, so it can be restored.
    """
    global _registry
    previous, _registry = _registry, registry
    return previous


def active_registry() -> TagRegistry | None:
    """The registry set by :func:`use_registry` (or ``install``), if any."""
    return _registry


def current_job() -> ActiveJob | None:
    """The job the calling code runs in, or ``None`` outside any job."""
    return current_job_var.get()


def _resolve(job: JobTag | str, registry: TagRegistry | None) -> JobTag:
    if isinstance(job, JobTag):
        return job
    registry = registry if registry is not None else _registry
    if registry is None:
        raise ConfigError(
            f"Cannot resolve job {job!r}: no tag registry is active; pass registry=..., "
            "call otel_jobtags.install(registry=...) or otel_jobtags.context.use_registry(...)"
        )
    return registry.resolve(job)


class job_context:  # noqa: N801 - used like contextlib's lower-case context managers
    """Attribute every record logged inside to a job.

    Use it as a context manager (``with``/``async with``) or as a decorator of
    sync and async functions. ``job`` is a :class:`~otel_jobtags.JobTag`, a job
    id or a tag name (bare or bracketed); strings resolve against ``registry``
    or, by default, the active registry.

    Args:
        job: which job.
        registry: where to look up a string ``job``.
        run_id: an identifier of this run, exported as ``job.run_id``.

    Raises:
        UnknownJobError: ``job`` is a string the registry does not know.
    """

    __slots__ = ("_job", "_lock", "_registry", "_run_id", "_tokens")

    def __init__(
        self,
        job: JobTag | str,
        *,
        registry: TagRegistry | None = None,
        run_id: str | None = None,
    ) -> None:
        self._job = job
        self._registry = registry
        self._run_id = run_id
        self._tokens: list[Token[ActiveJob | None]] = []
        self._lock = threading.Lock()
        if isinstance(job, JobTag) or registry is not None or _registry is not None:
            self._job = _resolve(job, registry)  # fail early where we can

    @property
    def job(self) -> ActiveJob:
        """The job this context activates.

        Re-entering the job that is already active keeps its run id, so a job
        function that wraps itself in ``job_context`` still logs under the run
        a scheduler started.
        """
        tag = _resolve(self._job, self._registry)
        run_id = self._run_id
        if run_id is None and (outer := current_job_var.get()) is not None and outer.tag == tag:
            run_id = outer.run_id
        return ActiveJob(tag, run_id)

    def __enter__(self) -> ActiveJob:
        active = self.job
        token = current_job_var.set(active)
        with self._lock:
            self._tokens.append(token)
        return active

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # One instance may be entered from several threads or tasks at once;
        # each exit resets the token made in its own context.
        with self._lock:
            for i in range(len(self._tokens) - 1, -1, -1):
                try:
                    current_job_var.reset(self._tokens[i])
                except (ValueError, RuntimeError):  # made in another context, or used
                    continue
                del self._tokens[i]
                return

    async def __aenter__(self) -> ActiveJob:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @overload
    def __call__(self, func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        job, registry, run_id = self._job, self._registry, self._run_id

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                with job_context(job, registry=registry, run_id=run_id):
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            with job_context(job, registry=registry, run_id=run_id):
                return func(*args, **kwargs)

        return wrapper


def bind(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``func`` so that it runs in the caller's current job, wherever it is called.

    Use it to hand work to a thread or an executor from inside a job. The job
    is captured when ``bind`` is called; the wrapper can be called many times
    and from several threads at once. Outside any job it returns a wrapper that
    runs ``func`` outside any job too.
    """
    captured = current_job_var.get()

    @functools.wraps(func)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        token = current_job_var.set(captured)
        try:
            return func(*args, **kwargs)
        finally:
            current_job_var.reset(token)

    return bound
