"""Machine-readable schedules: parsing, rendering, periods, cron matching."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from otel_jobtags import Cron, Interval, Manual, TagError, parse_schedule


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
            "Invalid cron expression '61 * * * *': '61' is outside 0-59 in the minute field",
        ),
        ("cron: * * * *", "Invalid schedule 'cron: * * * *': write"),
        ("cron: x * * * *", "Invalid cron expression 'x * * * *': bad value 'x' in the minute field"),
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
