"""Triggers for cron schedules written with names, and the forms APScheduler cannot follow."""

from __future__ import annotations

from datetime import datetime

import pytest

from otel_jobtags import ConfigError
from otel_jobtags.schedule import parse_schedule
from otel_jobtags.scheduler import compare_schedule, trigger_for


@pytest.mark.parametrize("text", ["0 9 * * mon-fri", "30 6 1 jan,jul *", "@weekly", "0 0 13 * fri"])
def test_a_cron_with_names_or_an_alias_gets_a_trigger_that_follows_it(text: str) -> None:
    schedule = parse_schedule(text)
    trigger = trigger_for(schedule)
    assert compare_schedule(schedule, trigger) is None
    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 30, 12).astimezone())
    assert fire.replace(tzinfo=None) == schedule.next_after(datetime(2026, 11, 30, 12))


def test_a_last_day_cron_has_no_trigger_and_says_what_to_do() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^Cannot follow cron expression '0 0 l \* \*' with an APScheduler trigger: L, 5L and 5#2 "
        r"have no exact CronTrigger form; add the job with a trigger of your own \(CronTrigger\(day='last'\), "
        r"day_of_week='last fri', \.\.\.\)$",
    ):
        trigger_for(parse_schedule("0 0 L * *"))
