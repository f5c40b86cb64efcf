"""The package's one path to stderr: its own trouble, said as ``otel-jobtags: ...`` lines.

The package's own trouble (a collector that is down, records dropped past the
queue bound, a record that could not be attributed) must stay visible to the
operator, but never be exported (that feeds the trouble back into the
pipeline), never raise into a log call and never flood stderr: :func:`warn`
lets one line per kind of problem through per interval, with a count of what
was held back; :func:`write` and :func:`report` say one thing once.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from . import _fork

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_THROTTLE", "Throttle", "report", "warn", "write"]

DEFAULT_INTERVAL = 10.0
"""Seconds between two stderr lines about the same kind of problem."""


class Throttle:
    """Lets one message per key through every ``interval`` seconds, counting the rest."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self._state: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        _fork.register_at_fork(after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def allow(self, key: str) -> int | None:
        """``None`` to hold the message back, else how many were held back before it."""
        now = time.monotonic()
        with self._lock:
            last, held = self._state.get(key, (-1e18, 0))
            if now - last < self.interval:
                self._state[key] = (last, held + 1)
                return None
            self._state[key] = (now, 0)
            return held

    def warn(self, key: str, message: str) -> bool:
        """Write ``otel-jobtags: <message>`` to stderr unless throttled; ``True`` if written."""
        held = self.allow(key)
        if held is None:
            return False
        if held:
            message += f" ({held} similar message{'s' if held != 1 else ''} held back)"
        write(message)
        return True


def write(message: str) -> None:
    """Write one line to the current ``sys.stderr``; never raises."""
    with contextlib.suppress(Exception):  # stderr may be closed at exit
        stream = sys.stderr
        if stream is not None:
            stream.write(f"otel-jobtags: {message}\n")
            stream.flush()


def report(what: str, exc: BaseException) -> None:
    """Write ``otel-jobtags: <what>: <ErrorType>: <error>``; never raises."""
    write(f"{what}: {type(exc).__name__}: {exc}")


DEFAULT_THROTTLE = Throttle()
"""The process-wide throttle :func:`warn` uses."""


def warn(key: str, message: str) -> bool:
    """Throttled warning through the process-wide :class:`Throttle`."""
    return DEFAULT_THROTTLE.warn(key, message)
