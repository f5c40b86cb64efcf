"""Severity levels: how OpenTelemetry severity numbers group into the five Python levels."""

from __future__ import annotations

from ..errors import StoreQueryError

__all__ = ["LEVELS", "level_of", "severity_number_of"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The level buckets counted per job, lowest first."""

# OpenTelemetry severity numbers (log data model): TRACE 1-4, DEBUG 5-8, INFO 9-12,
# WARN 13-16, ERROR 17-20, FATAL 21-24. TRACE counts as DEBUG, FATAL as CRITICAL.
_LEVEL_BY_NUMBER: tuple[str, ...] = ("INFO",) + ("DEBUG",) * 8 + ("INFO",) * 4 + ("WARNING",) * 4
_LEVEL_BY_NUMBER += ("ERROR",) * 4 + ("CRITICAL",) * 4
_FIRST_NUMBER = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "WARNING": 13, "ERROR": 17}
_FIRST_NUMBER |= {"FATAL": 21, "CRITICAL": 21}


def level_of(severity_number: int) -> str:
    """The level bucket of an OpenTelemetry severity number (0, unspecified, counts as INFO)."""
    if 0 <= severity_number < len(_LEVEL_BY_NUMBER):
        return _LEVEL_BY_NUMBER[severity_number]
    return "CRITICAL" if severity_number > 0 else "INFO"


def severity_number_of(level: str | int) -> int:
    """The lowest OpenTelemetry severity number of a level name or number.

    ``"ERROR"``, ``"error"``, ``"WARN"`` and ``"17"`` all work; a Python level
    number (``logging.ERROR``, 40) is not accepted: give the name.

    Raises:
        StoreQueryError: the level is not known.
    """
    if isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 24:
        return level
    text = str(level).strip()
    if text.isdigit() and 0 <= int(text) <= 24:
        return int(text)
    number = _FIRST_NUMBER.get(text.upper())
    if number is None:
        raise StoreQueryError(
            f"Invalid level {level!r}: use a level name (TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL) "
            "or an OpenTelemetry severity number 0-24"
        )
    return number
