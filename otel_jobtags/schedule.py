"""Machine-readable job schedules.

A schedule is one of three kinds:

* :class:`Interval` -- every N seconds (``"every 30 s"``, ``"every 5 min"``);
* :class:`Cron` -- a five-field cron expression (minute hour day month
  day-of-week), rendered the way a job table words it when it can be
  (``"daily 09:00"``, ``"hourly at minute 17"``);
* :class:`Manual` -- run by hand or by an external trigger, no period.

:func:`parse_schedule` accepts the human text and returns the schedule;
``str(schedule)`` gives the text back, so the job table can be generated.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cronsim import CronSim, CronSimError

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


_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_CRON_FIELD_FORMS = {
    "minute": "0-59",
    "hour": "0-23",
    "day of month": "1-31 or L",
    "month": "1-12 or jan-dec",
    "day of week": "0-7 (0 and 7 are Sunday) or sun-sat, 5L, 5#2",
}
_CRONSIM_FIELDS = {
    "Bad minute": "minute",
    "Bad hour": "hour",
    "Bad day-of-month": "day of month",
    "Bad month": "month",
    "Bad day-of-week": "day of week",
}
_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_EXAMPLE = "e.g. '17 * * * *', '0 9 * * mon-fri' or '@daily'"
# Two leap-year cycles: every day pattern a cron can express shows its longest
# gap within them ("0 0 29 2 *" fires every 4 years).
_PERIOD_WINDOW = (datetime(2024, 1, 1), datetime(2032, 1, 1))


def _cron_error(expression: str, fields: list[str], exc: CronSimError) -> TagError:
    name = _CRONSIM_FIELDS.get(str(exc))
    if name is None:
        return TagError(f"Invalid cron expression {expression!r}: {exc}; {_CRON_EXAMPLE}")
    if name == "day of month":
        # cronsim refuses a day no named month has: say so rather than "bad day".
        try:
            CronSim(" ".join([*fields[:3], "*", fields[4]]), _PERIOD_WINDOW[0])
        except CronSimError:
            pass
        else:
            return TagError(
                f"Invalid cron expression {expression!r}: it never fires (no month it names has day "
                f"{fields[2]}); {_CRON_EXAMPLE}"
            )
    text = fields[_CRON_FIELDS.index(name)]
    return TagError(
        f"Invalid cron expression {expression!r}: {text!r} is not a valid {name} "
        f"({_CRON_FIELD_FORMS[name]}, '*', ranges a-b, lists a,b, steps */n); {_CRON_EXAMPLE}"
    )


@dataclass(frozen=True)
class Cron:
    """Runs at the times a five-field cron expression matches (local time).

    Fields: minute, hour, day of month, month, day of week, as Debian's cron
    reads them (evaluated by `cronsim <https://pypi.org/project/cronsim/>`_):
    numbers, names (``jan``, ``mon-fri``), ranges ``a-b``, lists ``a,b``,
    steps ``*/n``, ``L`` (last day of the month), ``5L`` (last Friday),
    ``5#2`` (second Friday), 0 and 7 for Sunday, and the aliases ``@hourly``,
    ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``. As in cron, when both
    day fields are restricted a day matches if either does.

    Raises:
        TagError: the expression is invalid, or never fires (``"0 0 31 2 *"``).
    """

    expression: str

    def __post_init__(self) -> None:
        text = " ".join(str(self.expression).lower().split())
        text = _CRON_ALIASES.get(text, text)
        fields = text.split()
        if len(fields) != 5:
            raise TagError(
                f"Invalid cron expression {self.expression!r}: it needs 5 fields "
                f"(minute hour day month day-of-week); {_CRON_EXAMPLE}"
            )
        try:
            parsed = CronSim(text, _PERIOD_WINDOW[0])
        except CronSimError as exc:
            raise _cron_error(self.expression, fields, exc) from None
        object.__setattr__(self, "expression", text)
        object.__setattr__(self, "_parsed", parsed)

    @property
    def fields(self) -> tuple[frozenset[int], ...]:
        """The expanded values of the five fields (day of week: 0 is Sunday).

        ``L``, ``5L`` and ``5#2`` items are not numbers and are left out: see
        :attr:`plain`.
        """
        parsed: CronSim = self._parsed  # type: ignore[attr-defined]
        weekdays = {d % 7 for d in parsed.weekdays if isinstance(d, int)}
        days = {d for d in parsed.days if isinstance(d, int) and d > 0}
        return (
            frozenset(parsed.minutes),
            frozenset(parsed.hours),
            frozenset(days),
            frozenset(parsed.months),
            frozenset(weekdays),
        )

    @property
    def plain(self) -> bool:
        """Whether :attr:`fields` says it all: no ``L``, ``5L`` or ``5#2`` items."""
        parsed: CronSim = self._parsed  # type: ignore[attr-defined]
        return all(isinstance(d, int) and d > 0 for d in parsed.days) and all(
            isinstance(d, int) for d in parsed.weekdays
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after ``moment`` the expression matches."""
        return next(CronSim(self.expression, moment))

    def _days(self, start: datetime, end: datetime) -> list[date]:
        """The days in ``[start, end)`` the expression fires on."""
        parsed: CronSim = self._parsed  # type: ignore[attr-defined]
        if not self.plain:
            day_fields = " ".join(self.expression.split()[2:])
            found = []
            for moment in CronSim(f"0 0 {day_fields}", start - timedelta(seconds=1)):
                if moment >= end:
                    break
                found.append(moment.date())
            return found
        _, _, dom, months, dow = self.fields
        out = []
        day = start.date()
        while day < end.date():
            if day.month in months:
                dom_ok, dow_ok = day.day in dom, day.isoweekday() % 7 in dow
                if (dom_ok and dow_ok) if parsed.day_and else (dom_ok or dow_ok):
                    out.append(day)
            day += timedelta(days=1)
        return out

    @functools.cached_property
    def period(self) -> timedelta:
        """The longest gap between two consecutive matches (computed once).

        Alert rules use it as "the job should have run by now". It is taken
        over two leap-year cycles, so a job on February 29 has a period of
        four years.
        """
        minutes, hours = sorted(self.fields[0]), sorted(self.fields[1])
        times = [timedelta(hours=h, minutes=m) for h in hours for m in minutes]
        longest = max((b - a for a, b in itertools.pairwise(times)), default=timedelta(0))
        days = self._days(*_PERIOD_WINDOW)
        span = times[-1] - times[0]
        for a, b in itertools.pairwise(days):
            longest = max(longest, (b - a) - span)
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
    if len(expression.split()) == 5 or expression.startswith("@"):
        return Cron(expression)
    raise TagError(f"Invalid schedule {value!r}: {_SCHEDULE_HELP}")
