"""Checks of a scheduler against a registry, and triggers compared with tag schedules."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from datetime import timezone as dt_timezone
from typing import Any

try:
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "otel_jobtags.scheduler needs APScheduler 3.x: pip install 'otel-jobtags[scheduler]'"
    ) from exc

from ..errors import ConfigError
from ..schedule import Cron, Interval, Manual, Schedule
from ..tags import JobTag, TagRegistry

__all__ = [
    "ScheduleMismatch",
    "compare_schedule",
    "schedule_mismatches",
    "trigger_for",
    "unscheduled_tags",
    "untagged_jobs",
]


def _jobs(scheduler: Any) -> list[Any]:
    # Pending jobs before start(), the job stores' jobs after it.
    return list(scheduler.get_jobs())


def untagged_jobs(scheduler: Any, registry: TagRegistry) -> tuple[str, ...]:
    """The scheduler's job ids that have no tag, in the scheduler's order."""
    tagged = registry.job_tag_map
    return tuple(dict.fromkeys(job.id for job in _jobs(scheduler) if job.id not in tagged))


def unscheduled_tags(
    scheduler: Any, registry: TagRegistry, *, include_manual: bool = False
) -> tuple[JobTag, ...]:
    """Registered tags whose job id the scheduler does not hold, in definition order.

    Tags with a ``manual`` schedule are expected to be missing (they run by
    hand or from outside) and are left out unless ``include_manual``.
    """
    scheduled = {job.id for job in _jobs(scheduler)}
    return tuple(
        tag
        for tag in registry
        if tag.job_id not in scheduled and (include_manual or not isinstance(tag.schedule, Manual))
    )


@dataclass(frozen=True)
class ScheduleMismatch:
    """A tagged job whose trigger does not follow its tag's schedule."""

    tag: JobTag
    """The job's tag."""
    expected: Schedule
    """The tag's schedule."""
    actual: str
    """The scheduler's trigger, as APScheduler prints it, e.g. ``cron[hour='9', minute='5']``."""
    reason: str
    """How they differ, e.g. ``it runs at 09:05 instead of 09:00``."""

    @property
    def job_id(self) -> str:
        """The job id."""
        return self.tag.job_id

    def __str__(self) -> str:
        return (
            f"{self.tag} {self.job_id}: the tag says '{self.expected}', "
            f"the scheduler has {self.actual}; {self.reason}"
        )


def schedule_mismatches(scheduler: Any, registry: TagRegistry) -> list[ScheduleMismatch]:
    """Compare each scheduled, tagged job's trigger with its tag's schedule.

    Jobs without a tag and tags without a job are not reported here (see
    :func:`untagged_jobs` and :func:`unscheduled_tags`). See
    :func:`compare_schedule` for what counts as a match.
    """
    triggers = {job.id: job.trigger for job in _jobs(scheduler)}
    mismatches = []
    for tag in registry:
        if tag.job_id not in triggers:
            continue
        trigger = triggers[tag.job_id]
        reason = compare_schedule(tag.schedule, trigger)
        if reason is not None:
            mismatches.append(ScheduleMismatch(tag, tag.schedule, str(trigger), reason))
    return mismatches


def compare_schedule(schedule: Schedule, trigger: Any) -> str | None:
    """How an APScheduler trigger differs from a schedule; ``None`` when it follows it.

    * :class:`~otel_jobtags.schedule.Interval` matches an ``IntervalTrigger`` of the
      same length.
    * :class:`~otel_jobtags.schedule.Cron` matches a ``CronTrigger`` (or an
      ``OrTrigger`` of them, as :func:`trigger_for` builds for cron's
      day-of-month *or* day-of-week rule) that fires at the same wall-clock
      times: compared over four years, day by day, and by time of day. This
      catches the 3.x ``CronTrigger.from_crontab`` pitfall, where day of week
      ``1`` is Tuesday, not Monday. Time zones are not compared.
    * :class:`~otel_jobtags.schedule.Manual` matches no trigger or a one-off ``DateTrigger``.
    """
    if isinstance(schedule, Manual):
        if trigger is None or isinstance(trigger, DateTrigger):
            return None
        return "the tag's schedule is manual, but the scheduler runs it on a trigger"
    if isinstance(schedule, Interval):
        if not isinstance(trigger, IntervalTrigger):
            return (
                f"the tag's schedule is an interval ({schedule}), but the trigger is not an interval trigger"
            )
        seconds = trigger.interval.total_seconds()
        if seconds == schedule.seconds:
            return None
        every = (
            str(Interval(int(seconds))) if seconds == int(seconds) and seconds > 0 else f"every {seconds:g} s"
        )
        return f"it runs {every}, not {schedule}"
    probe = _probe(trigger)
    if probe is None:
        return (
            f"the tag's schedule is a cron expression ({schedule.expression}), "
            "but the trigger is not a cron trigger"
        )
    return _compare_cron(schedule, probe)


# Four years starting on 1 January, one of them a leap year: every day of
# the year, both kinds of February and every weekday of every date.
_WINDOW_START = datetime(2025, 1, 1)
_WINDOW_END = datetime(2029, 1, 1)


def _probe(trigger: Any) -> Any:
    """A copy of a cron trigger that computes wall-clock times in UTC: no DST jumps, no bounds."""
    if isinstance(trigger, CronTrigger):
        probe = copy.copy(trigger)
        probe.timezone = dt_timezone.utc
        probe.start_date = probe.end_date = probe.jitter = None
        return probe
    if isinstance(trigger, OrTrigger):
        parts = [_probe(part) for part in trigger.triggers]
        if parts and all(part is not None for part in parts):
            return OrTrigger(parts)
    return None


def _time_text(moment: dtime) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


def _times_text(times: set[dtime]) -> str:
    ordered = sorted(times)
    if not ordered:
        return "no time"
    text = ", ".join(_time_text(t) for t in ordered[:4])
    return f"{text}, ... ({len(ordered)} times a day)" if len(ordered) > 4 else text


def _compare_cron(schedule: Cron, probe: Any) -> str | None:
    utc = dt_timezone.utc
    # Times of day: cron fields are independent, so one firing day shows them all.
    first = probe.get_next_fire_time(None, _WINDOW_START.replace(tzinfo=utc))
    trigger_times: set[dtime] = set()
    fire = first
    while fire is not None and fire.date() == first.date() and len(trigger_times) <= 24 * 60:
        trigger_times.add(fire.time().replace(tzinfo=None))
        fire = probe.get_next_fire_time(fire, fire)
    expected_times = {dtime(h, m) for h in schedule.fields[1] for m in schedule.fields[0]}
    if first is not None and trigger_times != expected_times:
        if len(trigger_times) > 24 * 60:
            return "it runs more than once a minute, all day long"
        return f"it runs at {_times_text(trigger_times)} instead of {_times_text(expected_times)}"
    # Days: every day either fires on, over the window.
    expected_days: set[date] = set()
    moment = schedule.next_after(_WINDOW_START - timedelta(minutes=1))
    while moment < _WINDOW_END:
        expected_days.add(moment.date())
        moment = schedule.next_after(datetime.combine(moment.date(), dtime(23, 59)))
    trigger_days: set[date] = set()
    fire = first
    while fire is not None and fire.replace(tzinfo=None) < _WINDOW_END:
        trigger_days.add(fire.date())
        next_day = datetime.combine(fire.date() + timedelta(days=1), dtime(0), tzinfo=utc)
        fire = probe.get_next_fire_time(None, next_day)
    if trigger_days == expected_days:
        return None
    day = min(trigger_days ^ expected_days)
    if day in trigger_days:
        return f"it runs on {day:%a %Y-%m-%d}, where the tag's schedule does not"
    return f"it does not run on {day:%a %Y-%m-%d}, where the tag's schedule does"


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def trigger_for(schedule: Schedule | JobTag, *, timezone: Any = None) -> Any:
    """The APScheduler trigger that follows a schedule; ``None`` for a manual one.

    Use it rather than ``CronTrigger.from_crontab``, which in 3.x reads day of
    week ``0`` as Monday where cron means Sunday. A cron expression whose day
    of month and day of week are both restricted matches a day when either
    does (cron's rule); that becomes an ``OrTrigger`` of two cron triggers.

    Args:
        schedule: a schedule, or a tag whose schedule to use.
        timezone: the trigger's time zone; by default APScheduler's, the local
            one (a trigger object does not take the scheduler's).

    Raises:
        ConfigError: the cron expression uses ``L``, ``5L`` or ``5#2``.
    """
    if isinstance(schedule, JobTag):
        schedule = schedule.schedule
    if isinstance(schedule, Manual):
        return None
    if isinstance(schedule, Interval):
        return IntervalTrigger(seconds=schedule.seconds, timezone=timezone)
    if not schedule.plain:
        raise ConfigError(
            f"Cannot follow cron expression {schedule.expression!r} with an APScheduler trigger: "
            "L, 5L and 5#2 have no exact CronTrigger form; add the job with a trigger of your own "
            "(CronTrigger(day='last'), day_of_week='last fri', ...)"
        )
    minute, hour, dom, month, dow = schedule.expression.split()
    fields = schedule.fields

    def cron(**days: str) -> Any:
        # Only the restricted fields, so the trigger prints like a hand-written one;
        # minute always, or APScheduler would default it to 0 after a given hour.
        given = {name: text for name, text in {"month": month, **days, "hour": hour}.items() if text != "*"}
        given["minute"] = minute
        try:
            return CronTrigger(**given, timezone=timezone)
        except ValueError:  # a form APScheduler reads differently: spell out the values
            expanded = {"minute": fields[0], "hour": fields[1], "day": fields[2], "month": fields[3]}
            return CronTrigger(
                **{
                    name: text if text == "*" or name == "day_of_week" else _values(expanded[name])
                    for name, text in given.items()
                },
                timezone=timezone,
            )

    dow_names = "*" if dow == "*" else ",".join(_WEEKDAYS[d] for d in sorted(fields[4]))
    if dom != "*" and dow != "*":
        return OrTrigger([cron(day=dom), cron(day_of_week=dow_names)])
    return cron(day=dom, day_of_week=dow_names)


def _values(values: frozenset[int]) -> str:
    return ",".join(str(v) for v in sorted(values))
