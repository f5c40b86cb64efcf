"""Machine-readable job schedules.

A schedule is one of three kinds:

* :class:`Interval` -- every N seconds (``"every 30 s"``, ``"every 5 min"``);
* :class:`Cron` -- a five-field cron expression (minute hour day month
  day-of-week), rendered the way the seed's job table words it when it can be
  (``"daily 09:00"``, ``"hourly at minute 17"``);
* :class:`Manual` -- run by hand or by an external trigger, no period.

:func:`parse_schedule` accepts the human text and returns the schedule;
``str(schedule)`` gives the text back, so the seed's table can be generated.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import TagError

__all__ = ["Cron", "Interval", "Manual", "Schedule", "parse_schedule"]

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}

_EVERY_RE = re.compile(r"^every\s+(\d+)\s*([a-z]+)$")
_DAILY_RE = re.compile(r"^daily\s+(?:at\s+)?(\d{1,2}):(\d{2})$")
_HOURLY_RE = re.compile(r"^hourly\s+at\s+minute\s+(\d{1,2})$")
_CRON_PREFIX_RE = re.compile(r"^cron:?\s+(.+)$")

_SCHEDULE_HELP = (
    "write 'every 30 s', 'every 5 min', 'daily 09:00', 'hourly at minute 17', 'cron: 17 * * * *' or 'manual'"
)


@dataclass(frozen=True)
class Interval:
    """Runs every ``seconds`` seconds."""

    seconds: int

    def __post_init__(self) -> None:
        if not isinstance(self.seconds, int) or isinstance(self.seconds, bool) or self.seconds <= 0:
            raise TagError(f"Invalid interval {self.seconds!r}: use a whole number of seconds greater than 0")

    @property
    def period(self) -> timedelta:
        """The longest expected gap between two runs."""
        return timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        s = self.seconds
        if s % 3600 == 0:
            return f"every {s // 3600} h"
        if s % 60 == 0:
            return f"every {s // 60} min"
        return f"every {s} s"


# (name, low, high) for the five cron fields.
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)


def _parse_cron_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"bad step {step_text!r} in the {name} field")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, _, b = part.partition("-")
            if not (a.isdigit() and b.isdigit()):
                raise ValueError(f"bad range {part!r} in the {name} field")
            start, end = int(a), int(b)
        elif part.isdigit():
            start = int(part)
            end = high if step > 1 else start
        else:
            raise ValueError(f"bad value {part!r} in the {name} field")
        top = 7 if name == "day of week" else high  # 7 is Sunday too, as in cron
        if not (low <= start <= top and low <= end <= top and start <= end):
            raise ValueError(f"{part!r} is outside {low}-{top} in the {name} field")
        values.update(v % 7 if name == "day of week" else v for v in range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """Runs at the times a five-field cron expression matches (local time).

    Fields: minute, hour, day of month, month, day of week (0 or 7 = Sunday).
    Each field takes ``*``, numbers, ranges ``a-b``, lists ``a,b`` and steps
    ``*/n``. As in cron, when both day fields are restricted a day matches
    if either does.
    """

    expression: str

    def __post_init__(self) -> None:
        fields = self.expression.split()
        if len(fields) != 5:
            raise TagError(
                f"Invalid cron expression {self.expression!r}: it needs 5 fields "
                "(minute hour day month day-of-week), e.g. '17 * * * *'"
            )
        try:
            parsed = tuple(
                _parse_cron_field(text, name, low, high)
                for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True)
            )
        except ValueError as exc:
            raise TagError(f"Invalid cron expression {self.expression!r}: {exc}; e.g. '17 * * * *'") from None
        object.__setattr__(self, "expression", " ".join(fields))
        object.__setattr__(self, "_fields", parsed)
        object.__setattr__(self, "_dom_any", fields[2] == "*")
        object.__setattr__(self, "_dow_any", fields[4] == "*")

    @property
    def fields(self) -> tuple[frozenset[int], ...]:
        """The expanded values of the five fields."""
        return self._fields  # type: ignore[attr-defined, no-any-return]

    def _day_matches(self, day: datetime) -> bool:
        _, _, dom, month, dow = self.fields
        if day.month not in month:
            return False
        dom_ok = day.day in dom
        dow_ok = (day.isoweekday() % 7) in dow
        if self._dom_any or self._dow_any:  # type: ignore[attr-defined]
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after ``moment`` the expression matches."""
        minutes, hours = sorted(self.fields[0]), sorted(self.fields[1])
        t = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 5):  # a matching day exists within any 5 years
            if self._day_matches(t):
                for h in hours:
                    if h < t.hour:
                        continue
                    for m in minutes:
                        if h == t.hour and m < t.minute:
                            continue
                        return t.replace(hour=h, minute=m)
            t = (t + timedelta(days=1)).replace(hour=0, minute=0)
        raise TagError(f"Cron expression {self.expression!r} never matches")

    @functools.cached_property
    def period(self) -> timedelta:
        """The longest gap between two consecutive matches, over a year (computed once).

        Alert rules use it as "the job should have run by now"; a year covers
        every month length and weekday pattern.
        """
        start = datetime(2025, 1, 1)
        end = start + timedelta(days=400)
        longest = timedelta(0)
        previous = self.next_after(start - timedelta(minutes=1))
        count = 0
        while previous < end and count < 20_000:
            nxt = self.next_after(previous)
            longest = max(longest, nxt - previous)
            previous = nxt
            count += 1
        return longest

    def __str__(self) -> str:
        minute, hour, dom, month, dow = self.expression.split()
        if minute.isdigit() and dom == month == dow == "*":
            if hour == "*":
                return f"hourly at minute {int(minute)}"
            if hour.isdigit():
                return f"daily {int(hour):02d}:{int(minute):02d}"
        return f"cron: {self.expression}"


@dataclass(frozen=True)
class Manual:
    """Not scheduled: run by hand or by an outside trigger."""

    @property
    def period(self) -> None:
        """A manual job has no expected gap between runs."""
        return None

    def __str__(self) -> str:
        return "manual"


Schedule = Interval | Cron | Manual
"""Any of the schedule kinds."""


def parse_schedule(value: str | Schedule) -> Schedule:
    """Turn the human text of a schedule into a :data:`Schedule`.

    Accepts ``"every 30 s"``, ``"every 5 min"``, ``"every 2 h"``,
    ``"daily 09:00"``, ``"hourly at minute 17"``, ``"cron: 17 * * * *"`` (or a
    bare five-field expression) and ``"manual"``/``"none"``. A schedule object
    is returned unchanged.

    Raises:
        TagError: the text matches none of these forms.
    """
    if isinstance(value, Interval | Cron | Manual):
        return value
    if not isinstance(value, str):
        raise TagError(f"Invalid schedule {value!r}: {_SCHEDULE_HELP}")
    text = " ".join(value.strip().lower().split())
    if text in ("manual", "none", ""):
        return Manual()
    if m := _EVERY_RE.match(text):
        unit = _UNITS.get(m.group(2))
        if unit is None:
            raise TagError(f"Invalid schedule {value!r}: unknown unit {m.group(2)!r}; {_SCHEDULE_HELP}")
        return Interval(int(m.group(1)) * unit)
    if m := _DAILY_RE.match(text):
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            raise TagError(f"Invalid schedule {value!r}: the time must be 00:00-23:59")
        return Cron(f"{minute} {hour} * * *")
    if m := _HOURLY_RE.match(text):
        minute = int(m.group(1))
        if minute > 59:
            raise TagError(f"Invalid schedule {value!r}: the minute must be 0-59")
        return Cron(f"{minute} * * * *")
    m = _CRON_PREFIX_RE.match(text)
    expression = m.group(1) if m else text
    if len(expression.split()) == 5:
        return Cron(expression)
    raise TagError(f"Invalid schedule {value!r}: {_SCHEDULE_HELP}")
