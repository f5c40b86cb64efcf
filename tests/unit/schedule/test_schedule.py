"""Machine-readable schedules: parsing, rendering, periods, cron matching."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from otel_jobtags import TagError, TagRegistry
from otel_jobtags.schedule import Cron, Interval, Manual, parse_schedule


@pytest.mark.parametrize(
    ("text", "schedule", "rendered"),
    [
        ("every 30 s", Interval(30), "every 30 s"),
        ("every 5 min", Interval(300), "every 5 min"),
        ("Every 2 hours", Interval(7200), "every 2 h"),
        ("every 90 seconds", Interval(90), "every 90 s"),
        ("daily 09:00", Cron("0 9 * * *"), "daily 09:00"),
        ("daily at 9:05", Cron("5 9 * * *"), "daily 09:05"),
        ("hourly at minute 17", Cron("17 * * * *"), "hourly at minute 17"),
        ("cron: 0 9 * * 1-5", Cron("0 9 * * 1-5"), "cron: 0 9 * * 1-5"),
        ("*/15 * * * *", Cron("*/15 * * * *"), "cron: */15 * * * *"),
        ("manual", Manual(), "manual"),
        ("none", Manual(), "manual"),
    ],
)
def test_schedule_text_parses_and_renders_back(text: str, schedule: object, rendered: str) -> None:
    parsed = parse_schedule(text)
    assert parsed == schedule
    assert str(parsed) == rendered
    assert parse_schedule(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sometimes",
            "Invalid schedule 'sometimes': write 'every 30 s', 'every 5 min', 'daily 09:00', "
            "'hourly at minute 17', 'cron: 17 * * * *' or 'manual'",
        ),
        ("every 5 fortnights", "Invalid schedule 'every 5 fortnights': unknown unit 'fortnights'; write"),
        ("every 0 s", "Invalid interval 0: use a whole number of seconds greater than 0"),
        ("daily 25:00", "Invalid schedule 'daily 25:00': the time must be 00:00-23:59"),
        ("hourly at minute 60", "Invalid schedule 'hourly at minute 60': the minute must be 0-59"),
        (
            "cron: 61 * * * *",
            "Invalid cron expression '61 * * * *': '61' is not a valid minute (0-59, '*', ranges a-b, "
            "lists a,b, steps */n); e.g. '17 * * * *', '0 9 * * mon-fri' or '@daily'",
        ),
        ("cron: * * * *", "Invalid schedule 'cron: * * * *': write"),
        (
            "cron: x * * * *",
            "Invalid cron expression 'x * * * *': 'x' is not a valid minute (0-59, '*', ranges a-b, "
            "lists a,b, steps */n); e.g. '17 * * * *', '0 9 * * mon-fri' or '@daily'",
        ),
        (
            "cron: 0 0 * * 8",
            "Invalid cron expression '0 0 * * 8': '8' is not a valid day of week (0-7 (0 and 7 are "
            "Sunday) or sun-sat, 5L, 5#2, '*', ranges a-b, lists a,b, steps */n); e.g.",
        ),
        (
            "@reboot",
            "Invalid cron expression '@reboot': it needs 5 fields (minute hour day month day-of-week)",
        ),
    ],
)
def test_invalid_schedules_fail_with_the_fix(text: str, message: str) -> None:
    with pytest.raises(TagError, match="^" + __import__("re").escape(message)):
        parse_schedule(text)


@pytest.mark.parametrize(
    ("schedule", "period"),
    [
        (Interval(30), timedelta(seconds=30)),
        (Cron("17 * * * *"), timedelta(hours=1)),
        (Cron("0 9 * * *"), timedelta(days=1)),
        (Cron("0 9 * * 1-5"), timedelta(days=3)),  # Friday 09:00 to Monday 09:00
        (Cron("*/15 * * * *"), timedelta(minutes=15)),
        (Cron("0 0 1 * *"), timedelta(days=31)),
    ],
)
def test_period_is_the_longest_gap_between_runs(schedule: Interval | Cron, period: timedelta) -> None:
    assert schedule.period == period


def test_manual_schedule_has_no_period() -> None:
    assert Manual().period is None


def test_cron_next_after_finds_the_next_match() -> None:
    cron = Cron("17 * * * *")
    assert cron.next_after(datetime(2026, 1, 1, 10, 17)) == datetime(2026, 1, 1, 11, 17)
    assert cron.next_after(datetime(2026, 1, 1, 10, 16, 59)) == datetime(2026, 1, 1, 10, 17)
    weekdays = Cron("0 9 * * 1-5")
    assert weekdays.next_after(datetime(2026, 11, 27, 9, 0)) == datetime(2026, 11, 30, 9, 0)  # Fri -> Mon


def test_cron_with_both_day_fields_matches_either_as_cron_does() -> None:
    cron = Cron("0 0 13 * 5")  # the 13th, or any Friday
    assert cron.next_after(datetime(2026, 11, 26)) == datetime(2026, 11, 27)  # a Friday
    assert cron.next_after(datetime(2026, 12, 12, 1)) == datetime(2026, 12, 13)  # the 13th, a Sunday


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("0 9 * * 1-7", {0, 1, 2, 3, 4, 5, 6}),
        ("0 9 * * 5-7", {0, 5, 6}),
        ("0 9 * * 7", {0}),
        ("0 9 * * 0", {0}),
    ],
)
def test_seven_is_sunday_in_day_of_week_ranges_too(expression: str, days: set[int]) -> None:
    assert Cron(expression).fields[4] == frozenset(days)


def test_a_cron_that_never_fires_is_refused_when_it_is_defined() -> None:
    with pytest.raises(
        TagError,
        match=r"^Invalid cron expression '0 0 31 2 \*': it never fires \(no month it names has day 31\); "
        r"e\.g\. '17 \* \* \* \*', '0 9 \* \* mon-fri' or '@daily'$",
    ):
        parse_schedule("0 0 31 2 *")
    registry = TagRegistry()
    with pytest.raises(TagError, match=r"^Invalid cron expression '0 0 30 2 \*': it never fires"):
        registry.define("FEB_30", "feb_30", "never", "cron: 0 0 30 2 *")


def test_a_leap_day_job_has_a_period_of_four_years() -> None:
    leap_day = parse_schedule("0 0 29 2 *")
    assert leap_day.period == timedelta(days=4 * 365 + 1)
    assert leap_day.next_after(datetime(2026, 11, 30)) == datetime(2028, 2, 29)


@pytest.mark.parametrize(
    ("text", "expression", "rendered", "period"),
    [
        ("cron: 0 9 * * mon-fri", "0 9 * * 1-5", "cron: 0 9 * * mon-fri", timedelta(days=3)),
        ("0 6 1 jan *", "0 6 1 1 *", "cron: 0 6 1 jan *", timedelta(days=366)),
        ("@daily", "0 0 * * *", "daily 00:00", timedelta(days=1)),
        ("@hourly", "0 * * * *", "hourly at minute 0", timedelta(hours=1)),
        ("cron: 0 0 L * *", "0 0 L * *", "cron: 0 0 l * *", timedelta(days=31)),
        ("cron: 0 9 * * 5#2", "0 9 * * 5#2", "cron: 0 9 * * 5#2", timedelta(days=35)),
    ],
)
def test_names_aliases_and_last_days_are_accepted_as_cron_reads_them(
    text: str, expression: str, rendered: str, period: timedelta
) -> None:
    parsed = parse_schedule(text)
    assert isinstance(parsed, Cron)
    moment = datetime(2026, 11, 30, 12)
    assert parsed.next_after(moment) == Cron(expression).next_after(moment)
    assert str(parsed) == rendered
    assert parsed.period == period
