"""How the view writes values: escaped text, times in UTC, durations and ages in words."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone

__all__ = ["ago_text", "duration_ms_text", "esc", "iso", "span_text", "time_text"]


def esc(value: object) -> str:
    """Text for HTML element content or a quoted attribute value."""
    return html.escape(str(value), quote=True)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC, to the second."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def time_text(moment: datetime, span: timedelta, *, seconds: bool = False) -> str:
    """A time in UTC as precise as ``span`` needs: with the date when it spans days."""
    utc = moment.astimezone(timezone.utc)
    clock = utc.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{utc:%b %d} {clock}" if span >= timedelta(days=1) else clock


_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def span_text(span: timedelta) -> str:
    """A length of time in its two largest units: ``1 min 30 s``, ``26 h 5 min``, ``2 d 9 h``."""
    seconds = round(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    parts = []
    units = (
        (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
        if seconds >= 172800
        else (("h", 3600), ("min", 60), ("s", 1))
    )
    for unit, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
        if len(parts) == 2:
            break
    return " ".join(parts)


def ago_text(moment: datetime | None, now: datetime) -> str:
    """How long before ``now`` (``never`` for ``None``)."""
    if moment is None:
        return "never"
    age = now - moment
    if age < timedelta(seconds=1):
        return "just now"
    return f"{span_text(age)} ago"


def duration_ms_text(ms: float) -> str:
    """A run's duration: ``850 ms``, ``12.3 s``, ``4 min 10 s``."""
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return span_text(timedelta(milliseconds=ms))
