"""The pattern for high-frequency jobs: quiet exit, and a summary at most every few minutes.

A job that runs every second cannot log every run: the log would be nothing
but that job. The rule is to return without logging when there is
nothing to do, and to log a status summary at most once every 5 minutes when
there is. :class:`PeriodicSummary` keeps the counts and the clock, so a job
needs no hand-written timestamps::

    status = PeriodicSummary("📊 status summary")

    def queue_rebalancer() -> None:
        moved = rebalance()
        if not moved:
            return                      # quiet exit
        status.record(moved=moved)      # adds up until the next summary
        status.maybe_log(log)           # logs at most every 5 minutes

which logs, at most every 5 minutes and only when something happened::

    INFO: [QUEUE_REBAL] 📊 status summary - moved: 42 (17 updates in the last 5 min)

It is thread-safe, and its clock can be replaced for tests.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from ..errors import ConfigError

__all__ = ["PeriodicSummary", "SummarySnapshot"]

DEFAULT_EVERY = timedelta(minutes=5)
"""The summary interval for high-frequency jobs."""


def _seconds(every: timedelta | float, name: str) -> float:
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigError(
            f"Invalid {name}={every!r}: give a positive timedelta or number of seconds, "
            "e.g. timedelta(minutes=5)"
        )
    return float(seconds)


def duration_text(seconds: float) -> str:
    """A short human text for a span of time: ``"12 s"``, ``"5 min"``, ``"1 h 2 min"``."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.0f} s" if seconds >= 1 or seconds == 0 else f"{seconds:.1f} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] if hours else []
    if minutes:
        parts.append(f"{minutes} min")
    if secs and not hours:
        parts.append(f"{secs} s")
    return " ".join(parts)


def _number_text(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class SummarySnapshot:
    """What happened between two summaries."""

    updates: int
    """How many times :meth:`PeriodicSummary.record` was called."""
    totals: Mapping[str, float] = field(default_factory=dict)
    """Each recorded amount, summed, in the order the names first appeared."""
    elapsed: float = 0.0
    """Seconds since the previous summary (or since the summary was created)."""

    def text(self, title: str) -> str:
        """The summary line, e.g. ``"📊 status summary - moved: 42 (17 updates in the last 5 min)"``."""
        noun = "update" if self.updates == 1 else "updates"
        window = f"{self.updates} {noun} in the last {duration_text(self.elapsed)}"
        if not self.totals:
            return f"{title} - {window}"
        amounts = ", ".join(f"{name}: {_number_text(value)}" for name, value in self.totals.items())
        return f"{title} - {amounts} ({window})"

    def attributes(self) -> dict[str, float]:
        """The numbers as record attributes: ``summary.updates``, ``summary.window_s``, ``summary.<name>``."""
        attributes: dict[str, float] = {
            "summary.updates": self.updates,
            "summary.window_s": round(self.elapsed, 3),
        }
        attributes.update({f"summary.{name}": value for name, value in self.totals.items()})
        return attributes


class PeriodicSummary:
    """Counts what a frequent job did, and logs it at most once per interval.

    Call :meth:`record` when a run did something (never when it did nothing:
    that is the quiet exit), and :meth:`maybe_log` right after; a summary is
    logged when the interval has passed since the previous one and something
    was recorded in between. The summary reports the number of updates and
    the sum of each recorded amount since the previous summary, then starts
    counting afresh.

    Args:
        title: the start of the summary line, e.g. ``"📊 status summary"``.
        every: the shortest time between two summaries (default 5 minutes).
        clock: seconds as a float, monotonic; ``time.monotonic`` by default.
            Tests pass a fake one.

    Raises:
        ConfigError: ``every`` is not a positive duration.
    """

    def __init__(
        self,
        title: str = "📊 status summary",
        every: timedelta | float = DEFAULT_EVERY,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self.every = timedelta(seconds=_seconds(every, "every"))
        self._every_s = self.every.total_seconds()
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._updates = 0
        self._totals: dict[str, float] = {}

    def record(self, **amounts: float) -> None:
        """Count one update, adding each amount to its total, e.g. ``record(moved=3, failed=0)``."""
        with self._lock:
            self._updates += 1
            for name, value in amounts.items():
                self._totals[name] = self._totals.get(name, 0) + value

    @property
    def pending(self) -> int:
        """Updates recorded since the previous summary."""
        with self._lock:
            return self._updates

    def due(self) -> bool:
        """True when the interval has passed since the previous summary."""
        with self._lock:
            return self._clock() - self._start >= self._every_s

    def take(self, *, force: bool = False) -> SummarySnapshot | None:
        """Hand over what was recorded and start a new interval, if a summary is due.

        Returns ``None`` (and changes nothing) when nothing was recorded, or
        when the interval has not passed yet and ``force`` is false.
        """
        with self._lock:
            now = self._clock()
            if not self._updates or (not force and now - self._start < self._every_s):
                return None
            snapshot = SummarySnapshot(self._updates, MappingProxyType(dict(self._totals)), now - self._start)
            self._start = now
            self._updates = 0
            self._totals = {}
        return snapshot

    def maybe_log(
        self, logger: logging.Logger | logging.LoggerAdapter[logging.Logger], level: int = logging.INFO
    ) -> bool:
        """Log the summary if one is due; returns whether it logged.

        The record's attributes carry the numbers (``summary.updates``,
        ``summary.window_s``, ``summary.<name>``), next to the job's tag.
        """
        return self._log(self.take(), logger, level)

    def flush(
        self, logger: logging.Logger | logging.LoggerAdapter[logging.Logger], level: int = logging.INFO
    ) -> bool:
        """Log what was recorded now, due or not (e.g. at shutdown); returns whether it logged."""
        return self._log(self.take(force=True), logger, level)

    def _log(
        self,
        snapshot: SummarySnapshot | None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        level: int,
    ) -> bool:
        if snapshot is None:
            return False
        # No arguments, so a '%' in the title is never taken for a format.
        logger.log(level, snapshot.text(self.title), extra=snapshot.attributes())
        return True

    def __repr__(self) -> str:
        return f"PeriodicSummary({self.title!r}, every={self.every!r}, pending={self.pending})"
