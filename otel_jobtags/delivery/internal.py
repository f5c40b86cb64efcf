"""Marks the threads that run export code, so what they log is never exported.

Exporting the pipeline's own records would feed its trouble back into it (a
failing export logs a warning, which is exported, which fails...). The handler
diverts records logged on a marked thread to stderr.
"""

from __future__ import annotations

import threading

__all__ = ["exporting", "is_exporting", "state"]

state = threading.local()
"""``state.active`` is true on a thread while it runs exporter code."""


def is_exporting() -> bool:
    """True on a thread that runs export code now."""
    return getattr(state, "active", False)


class exporting:  # noqa: N801 - a context manager used like a statement
    """Mark the current thread as running export code: records it logs are internal."""

    __slots__ = ("_previous",)

    def __enter__(self) -> None:
        self._previous = getattr(state, "active", False)
        state.active = True

    def __exit__(self, *exc: object) -> None:
        state.active = self._previous
