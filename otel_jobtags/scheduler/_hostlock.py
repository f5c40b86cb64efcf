"""One running scheduler per host, across the worker processes of gunicorn or uWSGI.

Every worker of a pre-forking server imports the application, and an
application that starts its scheduler at import starts one per worker: each
job then runs once per worker at every tick. :func:`start_once_per_host`
starts the scheduler in exactly one of them::

    scheduler = BackgroundScheduler()
    scheduler.add_job(rebalance, "cron", minute=17, id="auto_rebalance")
    connect(scheduler, JOBS)
    start_once_per_host(scheduler, JOBS)      # instead of scheduler.start()

Each process takes an exclusive ``flock`` on one lock file; the one that gets
it starts the scheduler, the others wait in a background thread, trying again
every ``retry_every`` seconds. The kernel releases a ``flock`` when its holder
ends in any way (exit, crash, ``SIGKILL``), so a waiting process takes over
within ``retry_every`` seconds and starts its own scheduler.

A ``flock`` belongs to an open file, which a forked child shares: the child
of a holder would hold the lock too. So a child forked after this call (a
gunicorn worker forked from a ``--preload`` master) closes its copy and takes
no part: call :func:`start_once_per_host` in each worker after the fork
(gunicorn's ``post_worker_init`` hook), or let the master hold it (see
``docs/scheduler.md``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from .. import _diagnostics, _fork
from ..errors import ConfigError
from ..tags import TagRegistry

__all__ = ["LOCK_PATH_VARIABLE", "RunningMark", "SchedulerLock", "default_lock_path", "start_once_per_host"]

LOCK_PATH_VARIABLE = "OTEL_JOBTAGS_SCHEDULER_LOCK"
"""The environment variable naming the lock file, when ``lock_path`` is not given."""

DEFAULT_RETRY_EVERY = 1.0
"""Seconds between two attempts of a waiting process: how soon it takes over."""

_log = logging.getLogger("otel_jobtags.scheduler")


def _write_owner(fd: int) -> None:
    # Overwrite, then cut to length: a reader never sees the file empty, and
    # its first word is always a whole pid (truncating first left a window
    # in which another process read an empty owner).
    owner = f"{os.getpid()} {socket.gethostname()}\n".encode()
    os.pwrite(fd, owner, 0)
    os.ftruncate(fd, len(owner))


def default_lock_path(registry: TagRegistry) -> Path:
    """The lock file processes of one application on one host share, by default.

    ``$XDG_RUNTIME_DIR`` (else the temporary directory) /
    ``otel-jobtags-<user id>-<digest>.lock``, the digest being made of the
    registry's job ids, ``OTEL_SERVICE_NAME`` and the working directory: the
    workers of one application share it, two applications on one host (or
    two checkouts of one) do not.
    """
    source = "\n".join(
        [*sorted(registry.job_ids), os.environ.get("OTEL_SERVICE_NAME", ""), os.getcwd()]
    ).encode()
    digest = hashlib.sha256(source).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(runtime) / f"otel-jobtags-{os.getuid()}-{digest}.lock"


def _resolve_path(lock_path: str | os.PathLike[str] | None, registry: TagRegistry) -> Path:
    if lock_path is not None:
        return Path(lock_path)
    value = os.environ.get(LOCK_PATH_VARIABLE)
    if value is not None:
        if not value.strip():
            raise ConfigError(f"Invalid {LOCK_PATH_VARIABLE}={value!r}: give the path of a lock file")
        return Path(value)
    return default_lock_path(registry)


class SchedulerLock:
    """The lock that lets one process on this host run a scheduler; see :func:`start_once_per_host`.

    Also a context manager that calls :meth:`release` on exit.
    """

    def __init__(self, scheduler: Any, path: Path, *, retry_every: float, paused: bool) -> None:
        self.scheduler = scheduler
        """The scheduler started once the lock is held."""
        self.path = path
        """The lock file."""
        self.retry_every = retry_every
        """Seconds between attempts while another process holds the lock."""
        self._paused = paused
        self._held = threading.Event()
        self._stop = threading.Event()
        self._pid = os.getpid()
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"Cannot open the scheduler lock {str(path)!r}: {exc.strerror}; give a lock_path "
                f"(or {LOCK_PATH_VARIABLE}) in a directory this process can write"
            ) from exc
        self._thread = threading.Thread(
            target=self._wait_and_start, name="otel-jobtags-scheduler-lock", daemon=True
        )
        _fork.register_at_fork(after_in_child=self._after_fork_in_child)
        self._thread.start()

    @property
    def held(self) -> bool:
        """Whether this process holds the lock (and so runs the scheduler)."""
        return self._held.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until this process holds the lock, at most ``timeout`` seconds; returns :attr:`held`."""
        return self._held.wait(timeout)

    def holder(self) -> str:
        """What the lock file says about its holder, e.g. ``"pid 4102 on web-1"`` (may be stale)."""
        try:
            words = self.path.read_text(encoding="utf-8").split()
        except OSError:
            return "unknown"
        return f"pid {words[0]} on {words[1]}" if len(words) == 2 else "unknown"

    def release(self, *, wait: bool = True) -> None:
        """Stop waiting; if this process holds the lock, shut the scheduler down and let the lock go.

        Another process waiting for the lock then starts its scheduler.
        ``wait`` is passed to the scheduler's ``shutdown``. Safe to call twice.
        """
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        if self._held.is_set():
            self._held.clear()
            if getattr(self.scheduler, "running", False):
                self.scheduler.shutdown(wait=wait)
        self._close()

    def __enter__(self) -> SchedulerLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else ("released" if self._fd is None else "waiting")
        return f"<SchedulerLock {str(self.path)!r} {state}>"

    # -- the machinery ------------------------------------------------------

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # the last descriptor of the open file: the flock goes with it

    def _try_lock(self) -> bool:
        fd = self._fd
        if fd is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def _wait_and_start(self) -> None:
        said_waiting = False
        try:
            while not self._stop.is_set():
                if self._try_lock():
                    self._start()
                    return
                if not said_waiting:
                    said_waiting = True
                    _log.info(
                        "The scheduler lock %s is held by %s: this process (pid %d) waits, and starts "
                        "the scheduler if that one ends",
                        self.path,
                        self.holder(),
                        os.getpid(),
                    )
                self._stop.wait(self.retry_every)
        except Exception as exc:  # a lock that cannot work must say so, not die silently
            _diagnostics.report(f"the scheduler lock {str(self.path)!r} failed, no scheduler runs here", exc)
            self._close()

    def _start(self) -> None:
        fd = self._fd
        assert fd is not None
        _write_owner(fd)
        _log.info(
            "This process (pid %d) holds the scheduler lock %s: the scheduler runs here",
            os.getpid(),
            self.path,
        )
        try:
            self.scheduler.start(paused=self._paused)
        except Exception:
            self._close()  # let another process try
            raise
        self._held.set()

    def _after_fork_in_child(self) -> None:
        # The child shares the parent's open file, and with it any flock: it must
        # neither unlock it (that would unlock the parent) nor keep it open (the
        # parent's death would not free the lock). It takes no part.
        if os.getpid() != self._pid:
            self._stop.set()
            self._held.clear()
            self._close()


def start_once_per_host(
    scheduler: Any,
    registry: TagRegistry,
    *,
    lock_path: str | os.PathLike[str] | None = None,
    retry_every: float = DEFAULT_RETRY_EVERY,
    paused: bool = False,
) -> SchedulerLock:
    """Start ``scheduler`` in exactly one process of this host; the others wait to take over.

    Call it instead of ``scheduler.start()`` in code every worker runs (the
    application module without ``--preload``, or gunicorn's
    ``post_worker_init`` hook). It returns at once; a background thread
    takes the lock, now or when the holder ends, and then starts the
    scheduler.

    Args:
        scheduler: an APScheduler 3.x ``BackgroundScheduler`` that is not
            started (the start happens on the lock's thread, where a
            blocking or asyncio scheduler cannot run).
        registry: the jobs; it names the default lock file.
        lock_path: the lock file; else ``OTEL_JOBTAGS_SCHEDULER_LOCK``, else
            :func:`default_lock_path`. Every process of the application must
            use the same one.
        retry_every: seconds between attempts while another process holds it.
        paused: start the scheduler paused (``scheduler.start(paused=True)``).

    Returns:
        The lock: :attr:`~SchedulerLock.held`, :meth:`~SchedulerLock.wait`,
        :meth:`~SchedulerLock.release`.

    Raises:
        ConfigError: the lock file cannot be opened, or ``retry_every`` is not positive.
    """
    if isinstance(retry_every, bool) or not isinstance(retry_every, int | float) or not retry_every > 0:
        raise ConfigError(f"Invalid retry_every={retry_every!r}: give a positive number of seconds, e.g. 1.0")
    return SchedulerLock(
        scheduler, _resolve_path(lock_path, registry), retry_every=float(retry_every), paused=paused
    )


_warned_twice: set[Path] = set()


class RunningMark:
    """Tells the processes of this host that this one runs a scheduler for a registry's jobs.

    A connected scheduler that starts takes an exclusive ``flock`` on
    ``<default lock path>.running`` (without waiting) and holds it while it
    runs. When another process already holds it, two schedulers run the same
    jobs here -- every job once per process, the gunicorn-workers pitfall --
    and this is said once on stderr. With :func:`start_once_per_host` only
    the holder starts a scheduler, so this never fires. Best effort: a
    directory it cannot write means no check, never an error.
    """

    def __init__(self, registry: TagRegistry) -> None:
        self.path = default_lock_path(registry).with_suffix(".running")
        self._fd: int | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        _fork.register_at_fork(after_in_child=self._after_fork_in_child)

    def mark(self) -> None:
        """Take the mark, or say once that another process of this host holds it."""
        with self._lock:
            if self._fd is not None:
                return
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                if holder != os.getpid():
                    self._warn(holder)
                return
            with contextlib.suppress(OSError):
                _write_owner(fd)
            self._fd = fd

    def unmark(self) -> None:
        """Let the mark go (the scheduler has shut down, or the connection is closed)."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _warn(self, holder: int | None) -> None:
        if self.path in _warned_twice:
            return
        _warned_twice.add(self.path)
        who = f"pid {holder}" if holder is not None else "another process"
        _diagnostics.write(
            f"{who} on this host already runs a scheduler for the same jobs, and this "
            f"process (pid {os.getpid()}) starts another: every job now runs once per process. In "
            "gunicorn/uWSGI workers start it with otel_jobtags.scheduler.start_once_per_host(scheduler, "
            "registry) instead of scheduler.start() (said once)"
        )

    def _after_fork_in_child(self) -> None:
        # As for SchedulerLock: the child's copy of the open file must not keep the mark alive.
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            fd, self._fd = self._fd, None
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _read_holder(fd: int) -> int | None:
    try:
        words = os.pread(fd, 100, 0).split()
        return int(words[0]) if words else None
    except (OSError, ValueError):
        return None
