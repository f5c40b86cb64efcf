"""Job log records and the level and time values that select them."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..context import active_registry
from ..errors import ConfigError
from ..tags import JobTag, TagRegistry

__all__ = [
    "LogEntry",
    "Selection",
    "align_time",
    "asctime_bytes",
    "level_number",
    "parse_level",
    "parse_time",
    "resolve_registry",
]


# --------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class LogEntry:
    """One job log record, from a file or from Loki.

    ``str(entry)`` renders it in the default format, continuation lines included.
    """

    time: datetime
    """When it was logged. From a file: the time as written (naive, the writer's
    local time, unless :class:`LineFormat` was given a ``tz``); from Loki: aware, UTC."""
    level: str
    """Level name as Python logging spells it, e.g. ``"WARNING"``."""
    tag: str
    """Tag name without brackets, e.g. ``"AUTO_REBAL"``."""
    message: str
    """The first line of the message, after the ``[TAG] `` prefix."""
    continuation: tuple[str, ...] = ()
    """The lines that follow the first one: a multi-line message, a traceback."""
    job_id: str | None = None
    """The scheduler's job id, when the registry knows the tag."""
    source: str = ""
    """Where it was read: a file path, or the Loki URL."""

    @property
    def levelno(self) -> int:
        """The numeric level (``logging.WARNING`` for ``"WARNING"``, 0 when unknown)."""
        return level_number(self.level)

    @property
    def lines(self) -> list[str]:
        """The record's text lines: ``[TAG] message`` then the continuation lines."""
        return [f"[{self.tag}] {self.message}", *self.continuation]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``time`` in ISO 8601)."""
        return {
            "time": self.time.isoformat(),
            "level": self.level,
            "tag": self.tag,
            "job_id": self.job_id,
            "message": self.message,
            "continuation": list(self.continuation),
            "source": self.source,
        }

    def __str__(self) -> str:
        moment = self.time
        if moment.tzinfo is not None:
            moment = moment.astimezone().replace(tzinfo=None)
        stamp = f"{moment:%Y-%m-%d %H:%M:%S},{moment.microsecond // 1000:03d}"
        return "\n".join([f"{stamp} {self.level}: [{self.tag}] {self.message}", *self.continuation])


# --------------------------------------------------------------------------
# Levels and times


def level_number(name: str) -> int:
    value = _LEVELS.get(name)
    if value is not None:
        return value
    registered = logging.getLevelName(name)  # custom levels added with addLevelName
    if isinstance(registered, int):
        return registered
    if name.startswith("Level ") and name[6:].isdigit():  # how logging names unnamed levels
        return int(name[6:])
    return 0


_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.CRITICAL,
}


def parse_level(level: int | str | None) -> int | None:
    """A minimum level as a number: a name (any case: ``"warning"``, ``"warn"``) or a number.

    The one reading of a level the package has: ``install(level=...)``, the
    file filter, the Loki query and the CLI's ``--level`` all use it. Names
    are the standard ones, their aliases and levels added with
    :func:`logging.addLevelName`; numbers are written in ASCII digits.

    Raises:
        ConfigError: not a level (the message lists what is accepted).
    """
    if level is None or isinstance(level, int):
        return level
    text = level.strip()
    if text.isascii() and text.isdigit():  # "²" and "٣" are digits to str.isdigit, not to int()
        return int(text)
    value = _LEVELS.get(text.upper())
    if value is None:
        registered = logging.getLevelName(text.upper())
        if isinstance(registered, int):
            return registered
        raise ConfigError(f"Invalid level {level!r}: use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number")
    return value


_RELATIVE_RE = re.compile(r"^(\d+)\s*(s|sec|m|min|h|d|w)$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time from text: ISO 8601, or a duration ago (``15m``, ``2h``, ``1d``).

    ``"2025-10-23"``, ``"2025-10-23 14:30"``, ``"2025-10-23T14:30:45+09:00"``;
    a time without an offset is local time. ``"90s"``, ``"15m"``, ``"2h"``,
    ``"1d"``, ``"1w"`` mean that long before ``now``. ``"now"`` is now.

    Raises:
        ConfigError: neither form.
    """
    value = text.strip()
    current = now if now is not None else datetime.now().astimezone()
    if value.lower() == "now":
        return current
    m = _RELATIVE_RE.match(value)
    if m:
        return current - timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    try:
        return datetime.fromisoformat(value.replace(",", "."))
    except ValueError:
        raise ConfigError(
            f"Invalid time {text!r}: use ISO 8601 ('2025-10-23', '2025-10-23 14:30:00', "
            "'2025-10-23T14:30:00+09:00') or a duration ago ('15m', '2h', '1d')"
        ) from None


def align_time(moment: datetime, aware: bool) -> datetime:
    """``moment`` comparable with naive local (``aware=False``) or aware times."""
    if aware:
        return moment if moment.tzinfo is not None else moment.astimezone()
    return moment if moment.tzinfo is None else moment.astimezone().replace(tzinfo=None)


def asctime_bytes(moment: datetime) -> bytes:
    """``moment`` as the default asctime text, rounded up to the millisecond."""
    if moment.microsecond % 1000:
        moment += timedelta(microseconds=1000 - moment.microsecond % 1000)
    if not 1000 <= moment.year <= 9999:
        return b"0000" if moment.year < 1000 else b"9999~"
    return f"{moment:%Y-%m-%d %H:%M:%S},{moment.microsecond // 1000:03d}".encode()


def resolve_registry(registry: TagRegistry | None) -> TagRegistry:
    if registry is not None:
        return registry
    active = active_registry()
    if active is None:
        raise ConfigError(
            "No tag registry to resolve jobs against: pass registry=..., or call "
            "otel_jobtags.install(registry=...) or otel_jobtags.context.use_registry(...)"
        )
    return active


@dataclass(frozen=True)
class Selection:
    """Which records a :class:`~otel_jobtags.logfiles.LogFilter` keeps."""

    tag: JobTag | None
    min_level: int | None
    since: datetime | None
    until: datetime | None
    contains: str | None
    ignore_case: bool
