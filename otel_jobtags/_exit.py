"""Exit hooks that also run where ``atexit`` does not: at the end of a ``multiprocessing`` child.

A child that ``multiprocessing`` starts by forking (a ``Process`` or a
``Pool`` worker with the ``fork`` or ``forkserver`` start method) ends through
``os._exit`` once its target returns, so ``atexit`` callbacks never run there
and whatever the child logged was lost with its queue. ``multiprocessing``
runs its own finalizers (``multiprocessing.util.Finalize``) at that point,
so the hook is one of those too: in the process that registers it, and again
in every child ``multiprocessing`` forks from it (``register_after_fork``),
since such a child starts with its finalizers cleared.

Nothing runs in a process forked with a bare ``os.fork()`` and ended with
``os._exit()``, or killed by a signal (``Pool.terminate()`` sends SIGTERM):
there only a spool keeps what was written to it.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
from collections.abc import Callable

__all__ = ["ExitHook"]

_EXIT_PRIORITY = -100
"""Run after multiprocessing's own finalizers (which may log): they run highest first."""


class ExitHook:
    """Call ``callback`` when the process ends normally, ``multiprocessing`` children included.

    Args:
        callback: called at most once per process; it should do nothing the second time.
    """

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._finalizer: multiprocessing.util.Finalize | None = None
        self._cancelled = False
        atexit.register(callback)
        self._finalize_here()
        # Weakly held by multiprocessing: the hook goes when its owner does.
        multiprocessing.util.register_after_fork(self, ExitHook._finalize_here)

    def _finalize_here(self) -> None:
        if not self._cancelled:
            self._finalizer = multiprocessing.util.Finalize(None, self._callback, exitpriority=_EXIT_PRIORITY)

    def cancel(self) -> None:
        """Undo: ``callback`` is not called at exit (in this process and children forked later)."""
        self._cancelled = True
        atexit.unregister(self._callback)
        if self._finalizer is not None:
            self._finalizer.cancel()
            self._finalizer = None
