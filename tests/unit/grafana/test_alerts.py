"""Alert rules: what they compute (proven on simulated run histories) and what they are written as."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.grafana import REPO, parse_duration, range_of, rule_queries, small_registry

from otel_jobtags import ConfigError, JobTag, PeriodicSummary, TagRegistry, UnknownJobError
from otel_jobtags.demo import JOBS
from otel_jobtags.grafana import (
    ALERT_RULES_FILE,
    JOB_DASHBOARD_UID,
    RUNS_PANEL_ID,
    AlertPolicy,
    Run,
    alert_policies,
    default_failure_threshold,
    default_failure_window,
    default_grace,
    generate_alert_rules,
    generate_dashboards,
    is_failing,
    is_late,
    is_overlapping,
    late_window,
    logql_duration,
    render_alert_rules,
    stale_alert_rules,
    success_gap,
    write_alert_rules,
)
from otel_jobtags.schedule import Cron, Interval, Schedule, parse_schedule
from otel_jobtags.scheduler import FREQUENT_PERIOD, RunRecordPolicy, default_run_record_policy

S = timedelta(seconds=1)
US = timedelta(microseconds=1)
MONDAY = datetime(2026, 3, 2)  # 00:00 on a Monday
EACH = RunRecordPolicy("each")  # every successful run leaves a record

# Every schedule kind, with how long to simulate it.
SCHEDULES = [
    ("every 1 s", timedelta(minutes=10)),
    ("every 5 s", timedelta(hours=1)),
    ("every 29 s", timedelta(hours=3)),
    ("every 5 min", timedelta(days=1)),
    ("every 2 h", timedelta(days=10)),
    ("hourly at minute 17", timedelta(days=4)),
    ("hourly at minute 0", timedelta(days=4)),
    ("daily 09:00", timedelta(days=60)),
    ("cron: 0 9 * * 1-5", timedelta(weeks=8)),  # weekdays
    ("cron: */15 8-17 * * 1-5", timedelta(weeks=2)),  # business hours
    ("cron: 30 2 1 * *", timedelta(days=400)),  # monthly
]
SCHEDULE_IDS = [text for text, _ in SCHEDULES]


def scheduled_times(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """When the scheduler starts the job, in [start, end)."""
    if isinstance(schedule, Interval):
        step = timedelta(seconds=schedule.seconds)
        return [start + i * step for i in range((end - start) // step)]
    assert isinstance(schedule, Cron)
    times, t = [], schedule.next_after(start - timedelta(minutes=1))
    while t < end:
        times.append(t)
        t = schedule.next_after(t)
    return times


def history(
    schedule: Schedule,
    span: timedelta,
    *,
    max_lag: timedelta = timedelta(0),
    seed: int = 0,
    outcome: Any = None,
) -> list[Run]:
    """Run records of a job that runs at every scheduled time.

    Each record is logged between 0 and ``max_lag`` after its scheduled time
    (the run's duration, scheduler jitter, export delay); ``outcome(i)`` is
    the outcome of the i-th run (success by default).
    """
    rng = random.Random(seed)
    runs = [
        Run(t + rng.uniform(0, max_lag.total_seconds()) * S, outcome(i) if outcome else "success")
        for i, t in enumerate(scheduled_times(schedule, MONDAY, MONDAY + span))
    ]
    return sorted(runs)


def last_success(runs: Iterable[Run], now: datetime) -> datetime | None:
    return max((run.time for run in runs if run.outcome == "success" and run.time <= now), default=None)


def first_late(
    schedule: Schedule,
    runs: list[Run],
    end: datetime,
    grace: timedelta,
    run_records: RunRecordPolicy = EACH,
) -> datetime | None:
    """The first instant the late rule fires, checking where "now - last success" peaks.

    Between two successes "now - last success" only grows, so checking just
    before each success arrives, and at the end, finds every firing.
    """
    successes = [run.time for run in runs if run.outcome == "success"]
    moments = [t - US for t in successes[1:]] + [end]
    for moment, last in zip(moments, successes, strict=True):  # last: the success before it
        if is_late(schedule, last, moment, grace, run_records):
            return moment
    return None


# ---------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    ("schedule", "grace", "window"),
    [
        # Every success recorded (the default for jobs slower than every 5 s).
        ("every 1 s", 60 * S, 61 * S),
        ("every 30 s", 60 * S, 90 * S),
        ("every 5 min", 60 * S, 360 * S),
        ("every 1234 s", 124 * S, 1358 * S),  # 10% rounded up to whole seconds
        ("hourly at minute 17", timedelta(minutes=6), timedelta(minutes=66)),
        ("daily 09:00", timedelta(hours=2, minutes=24), timedelta(hours=26, minutes=24)),
        ("cron: 0 9 * * 1-5", timedelta(hours=7, minutes=12), timedelta(hours=79, minutes=12)),
        ("manual", 60 * S, None),
    ],
)
def test_default_grace_is_a_tenth_of_the_period_and_at_least_a_minute(
    schedule: str, grace: timedelta, window: timedelta | None
) -> None:
    parsed = parse_schedule(schedule)
    assert default_grace(parsed) == grace
    assert late_window(parsed, grace, EACH) == window


@pytest.mark.parametrize(
    ("schedule", "window", "threshold"),
    [
        ("every 1 s", timedelta(minutes=15), 3),
        ("every 5 min", timedelta(minutes=15), 3),
        ("every 10 min", timedelta(minutes=15), 1),
        ("hourly at minute 17", timedelta(minutes=66), 1),
        ("daily 09:00", timedelta(hours=26, minutes=24), 1),
        ("manual", timedelta(hours=1), 1),
    ],
)
def test_default_failure_policy(schedule: str, window: timedelta, threshold: int) -> None:
    parsed = parse_schedule(schedule)
    assert default_failure_window(parsed, default_grace(parsed)) == window
    assert default_failure_threshold(parsed, window) == threshold


# ---------------------------------------------------------------- is_late, proven on histories


@pytest.mark.parametrize(("text", "span"), SCHEDULES, ids=SCHEDULE_IDS)
@pytest.mark.parametrize("lag", ["none", "up to the grace"])
def test_a_healthy_job_is_never_late(text: str, span: timedelta, lag: str) -> None:
    schedule = parse_schedule(text)
    grace = default_grace(schedule)
    max_lag = timedelta(0) if lag == "none" else grace - S
    runs = history(schedule, span, max_lag=max_lag, seed=len(text))
    assert len(runs) > 10
    assert first_late(schedule, runs, MONDAY + span, grace) is None


@pytest.mark.parametrize(("text", "span"), SCHEDULES, ids=SCHEDULE_IDS)
def test_a_record_later_than_the_grace_after_the_longest_gap_makes_the_job_late(
    text: str, span: timedelta
) -> None:
    schedule = parse_schedule(text)
    grace, period = default_grace(schedule), schedule.period
    assert period is not None
    times = scheduled_times(schedule, MONDAY, MONDAY + span)
    i = next(i for i in range(1, len(times)) if times[i] - times[i - 1] == period)

    def with_lag(lag: timedelta) -> list[Run]:
        return [Run(t + (lag if j == i else timedelta(0)), "success") for j, t in enumerate(times)]

    on_time, late = with_lag(grace - S), with_lag(grace + S)
    assert first_late(schedule, on_time, MONDAY + span, grace) is None
    assert first_late(schedule, late, MONDAY + span, grace) == times[i] + grace + S - US


@pytest.mark.parametrize(("text", "span"), SCHEDULES, ids=SCHEDULE_IDS)
def test_a_stopped_job_is_late_period_plus_grace_after_its_last_success_and_stays_late(
    text: str, span: timedelta
) -> None:
    schedule = parse_schedule(text)
    grace, period = default_grace(schedule), schedule.period
    assert period is not None
    times = scheduled_times(schedule, MONDAY, MONDAY + span)
    stop = len(times) // 2  # the application is gone from here on: no record at all
    runs = [Run(t, "success") for t in times[:stop]]
    last = runs[-1].time
    just_before = last + period + grace - US
    assert not is_late(schedule, last_success(runs, just_before), just_before, grace, EACH)
    for later in (period + grace, period + grace + timedelta(days=1), timedelta(days=400)):
        assert is_late(schedule, last_success(runs, last + later), last + later, grace, EACH)
    # Counted from the first run that never happened: period + grace, less the gap before it.
    fires = times[stop] + period + grace - (times[stop] - times[stop - 1])
    assert not is_late(schedule, last_success(runs, fires - US), fires - US, grace, EACH)
    assert is_late(schedule, last_success(runs, fires), fires, grace, EACH)


@pytest.mark.parametrize(
    ("text", "missed", "late"),
    [
        # k consecutive runs missing leave a gap of (k + 1) periods: late once k * period > grace.
        ("every 1 s", range(100, 160), False),
        ("every 1 s", range(100, 161), True),
        ("every 30 s", range(10, 12), False),
        ("every 30 s", range(10, 13), True),
        ("every 5 min", range(10, 11), True),
        ("hourly at minute 17", range(10, 11), True),
        ("daily 09:00", range(10, 11), True),
        # Weekdays at 09:00, from a Monday: runs 5..9 are the second week's Monday..Friday.
        # The period is the weekend's 72 h, so mid-week a single missed day goes unnoticed.
        ("cron: 0 9 * * 1-5", range(6, 7), False),  # Tuesday: Monday -> Wednesday is 48 h
        ("cron: 0 9 * * 1-5", range(6, 8), False),  # Tuesday, Wednesday: 72 h
        ("cron: 0 9 * * 1-5", range(6, 9), True),  # Tuesday to Thursday: 96 h
        ("cron: 0 9 * * 1-5", range(9, 10), True),  # Friday: Thursday -> Monday is 96 h
        ("cron: 0 9 * * 1-5", range(5, 6), True),  # Monday: Friday -> Tuesday is 96 h
    ],
)
def test_how_many_missed_runs_make_a_job_late(text: str, missed: range, late: bool) -> None:
    schedule = parse_schedule(text)
    grace = default_grace(schedule)
    assert schedule.period is not None
    times = scheduled_times(schedule, MONDAY, MONDAY + 300 * schedule.period)  # some 300 runs
    runs = [Run(t, "success") for i, t in enumerate(times) if i not in missed]
    assert (first_late(schedule, runs, runs[-1].time, grace) is not None) is late


def summarised(runs: list[Run], every: timedelta) -> list[Run]:
    """The success records the scheduler writes for ``runs`` under a summary policy.

    As the scheduler's run recorder does: the first success is recorded and
    starts a :class:`PeriodicSummary`; each later success is counted in it,
    and a record is written whenever the summary hands over a snapshot.
    """
    now = MONDAY

    def clock() -> float:
        return (now - MONDAY).total_seconds()

    summary: PeriodicSummary | None = None
    records: list[Run] = []
    for run in runs:
        now = run.time
        if summary is None:
            summary = PeriodicSummary("runs", every, clock=clock)
            records.append(run)
            continue
        summary.record(duration_ms=1.0)
        if summary.take() is not None:
            records.append(run)
    return records


FREQUENT = [(text, span) for text, span in SCHEDULES if parse_schedule(text).period <= FREQUENT_PERIOD]  # type: ignore[operator]


@pytest.mark.parametrize(("text", "span"), FREQUENT, ids=[text for text, _ in FREQUENT])
def test_frequent_jobs_summarise_successes_by_default_and_the_window_allows_for_it(
    text: str, span: timedelta
) -> None:
    schedule = parse_schedule(text)
    policy = default_run_record_policy(schedule)
    assert (policy.successes, policy.every) == ("summary", timedelta(minutes=5))
    grace = default_grace(schedule)
    assert late_window(schedule, grace) == schedule.period + timedelta(minutes=5) + grace  # type: ignore[operator]
    runs = history(schedule, span, max_lag=grace - S, seed=3)
    records = summarised(runs, policy.every)
    assert len(records) < len(runs) / 50
    assert first_late(schedule, records, MONDAY + span, grace, policy) is None
    # Recording each success, the same gaps between records would make the job late.
    assert first_late(schedule, records, MONDAY + span, grace, EACH) is not None
    # Stopped: late a success gap + grace after the last summary.
    last = records[-1].time
    fires = last + schedule.period + policy.every + grace  # type: ignore[operator]
    assert not is_late(schedule, last, fires - US, grace, policy)
    assert is_late(schedule, last, fires, grace, policy)


def test_default_run_records_summarise_only_jobs_running_every_5_s_or_faster() -> None:
    schedules = [tag.schedule for tag in JOBS] + [parse_schedule(t) for t, _ in SCHEDULES]
    for schedule in [*schedules, parse_schedule("manual"), parse_schedule("every 6 s")]:
        by_schedule = default_run_record_policy(schedule)
        assert default_run_record_policy(JobTag("X", "x", "", schedule)) == by_schedule
        frequent = schedule.period is not None and schedule.period <= FREQUENT_PERIOD
        assert by_schedule == RunRecordPolicy("summary" if frequent else "each"), schedule


def test_jobs_whose_successes_are_not_recorded_have_no_late_rule() -> None:
    off = RunRecordPolicy("off")
    schedule = parse_schedule("every 5 min")
    assert success_gap(schedule, off) is None
    assert not is_late(schedule, None, MONDAY, 60 * S, off)
    document = generate_alert_rules(small_registry(), run_records={"auto_rebalance": off})
    titles = [rule["title"] for rule in document["groups"][0]["rules"]]
    assert titles == [
        "AUTO_REBAL failing",
        "AUTO_REBAL overlapping",
        "PRICE_CACHE late",
        "PRICE_CACHE failing",
        "PRICE_CACHE overlapping",
        "REPORT failing",
        "REPORT overlapping",
    ]


def test_run_records_given_for_a_job_set_its_window() -> None:
    policies = alert_policies(
        small_registry(), run_records={"PRICE_CACHE": RunRecordPolicy("summary", timedelta(minutes=1))}
    )
    assert policies["PRICE_CACHE"].success_gap == 65 * S
    assert policies["PRICE_CACHE"].late_window == 125 * S
    assert policies["AUTO_REBAL"].run_records.successes == "each"


def test_failed_runs_are_not_successes_so_a_job_failing_every_time_is_late() -> None:
    schedule = parse_schedule("hourly at minute 17")
    grace = default_grace(schedule)
    runs = history(schedule, timedelta(days=1), outcome=lambda i: "success" if i < 5 else "error")
    last = last_success(runs, MONDAY + timedelta(days=1))
    assert last == MONDAY + timedelta(hours=4, minutes=17)
    fires = last + timedelta(hours=1, minutes=6)
    assert not is_late(schedule, last_success(runs, fires - US), fires - US, grace)
    assert is_late(schedule, last_success(runs, fires), fires, grace)


def test_a_job_that_never_succeeded_is_late_and_a_manual_job_never_is() -> None:
    now = MONDAY + timedelta(days=3)
    assert is_late(parse_schedule("every 5 min"), None, now, 60 * S)
    assert not is_late(parse_schedule("manual"), None, now, 60 * S)
    assert not is_late(parse_schedule("manual"), MONDAY, now, 60 * S)


# ---------------------------------------------------------------- is_failing, proven on histories


def policy_of(text: str) -> AlertPolicy:
    jobs = TagRegistry()
    jobs.define("JOB", "job", "", text)
    return alert_policies(jobs)["JOB"]


@pytest.mark.parametrize(("text", "span"), SCHEDULES, ids=SCHEDULE_IDS)
def test_failing_fires_at_the_threshold_th_failure_and_recovers_at_the_next_success(
    text: str, span: timedelta
) -> None:
    policy = policy_of(text)
    n, window = policy.failure_threshold, policy.failure_window
    first_error = 10
    errors = range(first_error, first_error + n)
    runs = history(parse_schedule(text), span, outcome=lambda i: "error" if i in errors else "success")
    check = {"window": window, "threshold": n}
    nth, recovery = runs[first_error + n - 1], runs[first_error + n]
    assert nth.outcome == "error" and recovery.outcome == "success"
    assert not is_failing(runs, nth.time - US, **check)
    assert is_failing(runs, nth.time, **check)
    assert is_failing(runs, recovery.time - US, **check)
    assert not is_failing(runs, recovery.time, **check)  # recovered
    # Only then: never before, never after.
    moments = [run.time for run in runs] + [run.time - US for run in runs]
    firing = [t for t in moments if is_failing(runs, t, **check)]
    assert min(firing) == nth.time and max(firing) == recovery.time - US


# Schedules whose default threshold is above 1 (with 1, "fewer" means none).
SEVERAL_FAILURES = [(text, span) for text, span in SCHEDULES if policy_of(text).failure_threshold > 1]


@pytest.mark.parametrize(("text", "span"), SEVERAL_FAILURES, ids=[text for text, _ in SEVERAL_FAILURES])
def test_fewer_failures_than_the_threshold_never_fire(text: str, span: timedelta) -> None:
    policy = policy_of(text)
    n = policy.failure_threshold
    # Streaks of n - 1 failures, each followed by enough successes to push it out of the window.
    per_cycle = (n - 1) + int(policy.failure_window / parse_schedule(text).period) + 1  # type: ignore[operator]
    runs = history(
        parse_schedule(text), span, outcome=lambda i: "error" if i % per_cycle < n - 1 else "success"
    )
    assert any(run.outcome == "error" for run in runs)
    check = {"window": policy.failure_window, "threshold": n}
    assert not any(is_failing(runs, run.time, **check) for run in runs)


def test_failures_older_than_the_window_do_not_count() -> None:
    now = MONDAY + timedelta(hours=1)
    window = timedelta(minutes=15)
    runs = [
        Run(now - window, "error"),  # on the boundary: outside (the window is (now - 15m, now])
        Run(now - window + US, "error"),
        Run(now - 5 * S, "error"),
    ]
    assert not is_failing(runs, now, window=window, threshold=3)
    assert is_failing(runs, now, window=window, threshold=2)


def test_a_job_failing_every_other_run_recovers_at_every_success() -> None:
    schedule = parse_schedule("every 30 s")
    runs = history(schedule, timedelta(hours=1), outcome=lambda i: "error" if i % 2 else "success")
    check = {"window": timedelta(minutes=15), "threshold": 3}
    assert not any(is_failing(runs, run.time, **check) for run in runs if run.outcome == "success")
    firing = [run for run in runs if is_failing(runs, run.time, **check)]
    assert firing == [run for run in runs[5:] if run.outcome == "error"]  # from the third error on


def test_missed_and_skipped_runs_are_not_failures() -> None:
    now = MONDAY + timedelta(hours=1)
    runs = [Run(now - i * S, outcome) for i, outcome in enumerate(["missed", "skipped", "missed", "skipped"])]
    assert not is_failing(runs, now, window=timedelta(minutes=15), threshold=1)


# ---------------------------------------------------------------- policies and overrides


def test_overrides_apply_per_job_by_tag_name_or_job_id() -> None:
    policies = alert_policies(
        small_registry(),
        grace={"price_cache": 20 * S},
        failure_threshold={"AUTO_REBAL": 2},
        failure_window=timedelta(hours=2),
    )
    assert {
        name: (p.grace, p.late_window, p.failure_threshold, p.failure_window) for name, p in policies.items()
    } == {
        "AUTO_REBAL": (timedelta(minutes=6), timedelta(minutes=66), 2, timedelta(hours=2)),
        # Its successes are summarised every 5 minutes: 5 s + 5 min + 20 s.
        "PRICE_CACHE": (20 * S, 325 * S, 3, timedelta(hours=2)),
        "REPORT": (60 * S, None, 1, timedelta(hours=2)),
    }


def test_one_grace_for_every_job() -> None:
    policies = alert_policies(small_registry(), grace=timedelta(minutes=2))
    assert [p.late_window for p in policies.values()] == [timedelta(minutes=62), 425 * S, None]


def test_overrides_must_name_known_jobs() -> None:
    with pytest.raises(
        UnknownJobError, match=r"^Unknown job 'nope': known jobs are auto_rebalance, price_cache"
    ):
        alert_policies(small_registry(), grace={"nope": S})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grace": -S}, r"^Invalid grace datetime.timedelta\(days=-1, seconds=86399\) for AUTO_REBAL: "),
        ({"grace": {"REPORT": 5}}, r"^Invalid grace 5 for REPORT: give a timedelta of 0 s or more$"),
        (
            {"failure_window": timedelta(0)},
            r"^Invalid failure_window datetime.timedelta\(0\) for AUTO_REBAL: ",
        ),
        (
            {"failure_threshold": 0},
            r"^Invalid failure_threshold 0 for AUTO_REBAL: give a whole number, 1 or more$",
        ),
        ({"failure_threshold": True}, r"^Invalid failure_threshold True for AUTO_REBAL: "),
    ],
)
def test_invalid_policy_values_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        alert_policies(small_registry(), **kwargs)


# ---------------------------------------------------------------- the rules, exactly

STAMP = "label_format run_time_ms=`{{ __timestamp__ | unixEpochMillis }}` | unwrap run_time_ms"


def test_generated_queries_for_a_small_registry() -> None:
    document = generate_alert_rules(small_registry(), grace={"price_cache": 20 * S})

    def sel(tag: str) -> str:
        return f'{{service_name=~".+", job_tag="{tag}"}}'

    def failing(tag: str, window: str) -> list[tuple[str, str]]:
        return [
            (
                f"{tag} failing",
                f'sum(count_over_time({sel(tag)} | job_outcome="error" [{window}])) or vector(0)',
            ),
            (
                f"{tag} failing",
                f'max(max_over_time({sel(tag)} | job_outcome="error" | {STAMP} [{window}])) or vector(0)',
            ),
            (
                f"{tag} failing",
                f'max(max_over_time({sel(tag)} | job_outcome="success" | {STAMP} [{window}])) or vector(0)',
            ),
        ]

    def overlapping(tag: str, window: str) -> tuple[str, str]:
        processes = f'sum by (service_instance_id) (count_over_time({sel(tag)} | job_outcome!="" [{window}]))'
        return (f"{tag} overlapping", f"count({processes}) or vector(0)")

    assert rule_queries(document) == [
        (
            "AUTO_REBAL late",
            f'sum(count_over_time({sel("AUTO_REBAL")} | job_outcome="success" [1h6m])) or vector(0)',
        ),
        *failing("AUTO_REBAL", "1h6m"),
        overlapping("AUTO_REBAL", "1h6m"),
        (
            "PRICE_CACHE late",
            f'sum(count_over_time({sel("PRICE_CACHE")} | job_outcome="success" [5m25s])) or vector(0)',
        ),
        *failing("PRICE_CACHE", "15m"),
        overlapping("PRICE_CACHE", "5m25s"),
        *failing("REPORT", "1h"),  # manual: no late rule; overlap over the failure window
        overlapping("REPORT", "1h"),
    ]


def test_generated_queries_with_job_tag_as_structured_metadata() -> None:
    document = generate_alert_rules(small_registry(), job_tag_as="structured_metadata", service="web")
    assert rule_queries(document)[0] == (
        "AUTO_REBAL late",
        'sum(count_over_time({service_name=~"web"} | job_tag="AUTO_REBAL" | job_outcome="success" [1h6m])) '
        "or vector(0)",
    )


def test_late_rule_exactly() -> None:
    rule = generate_alert_rules(small_registry())["groups"][0]["rules"][0]
    expr = (
        'sum(count_over_time({service_name=~".+", job_tag="AUTO_REBAL"} | job_outcome="success" [1h6m])) '
        "or vector(0)"
    )
    expression = {"type": "__expr__", "uid": "__expr__"}
    assert rule == {
        "uid": "otel-jobtags-late-AUTO_REBAL",
        "title": "AUTO_REBAL late",
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "queryType": "instant",
                "relativeTimeRange": {"from": 3960, "to": 0},
                "datasourceUid": "loki",
                "model": {
                    "datasource": {"type": "loki", "uid": "loki"},
                    "editorMode": "code",
                    "expr": expr,
                    "instant": True,
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                    "queryType": "instant",
                    "refId": "A",
                },
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "datasource": expression,
                    "refId": "B",
                    "expression": "A",
                    "reducer": "last",
                    "type": "reduce",
                },
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "datasource": expression,
                    "refId": "C",
                    "expression": "B",
                    "type": "threshold",
                    "conditions": [{"evaluator": {"params": [1], "type": "lt"}}],
                },
            },
        ],
        "noDataState": "Alerting",
        "dashboardUid": "otel-jobtags-job",
        "panelId": 6,
        "execErrState": "Error",
        "for": "0s",
        "labels": {
            "job_tag": "AUTO_REBAL",
            "job_id": "auto_rebalance",
            "job_alert": "late",
            "severity": "critical",
        },
        "isPaused": False,
        "annotations": {
            "summary": (
                "[AUTO_REBAL] auto_rebalance (automatic portfolio rebalancing): "
                "no successful run in the last 1h6m"
            ),
            "description": (
                "AUTO_REBAL runs hourly at minute 17; at most 1h should pass between two records of a "
                "successful run, plus 6m grace. None was recorded in the last 1h6m: the job fails every "
                "time, hangs, is no longer scheduled, or the application is down. Resolves at the next "
                "successful run."
            ),
            "runbook_url": "/d/otel-jobtags-job?var-job=AUTO_REBAL",
        },
    }


def test_failing_rule_compares_counts_and_times() -> None:
    rule = generate_alert_rules(small_registry())["groups"][0]["rules"][1]
    assert (rule["uid"], rule["title"], rule["condition"], rule["noDataState"]) == (
        "otel-jobtags-failing-AUTO_REBAL",
        "AUTO_REBAL failing",
        "G",
        "OK",
    )
    models = {item["refId"]: item["model"] for item in rule["data"]}
    assert [(ref, m.get("expression"), m.get("reducer"), m.get("type")) for ref, m in models.items()] == [
        ("A", None, None, None),
        ("B", None, None, None),
        ("C", None, None, None),
        ("D", "A", "last", "reduce"),
        ("E", "B", "last", "reduce"),
        ("F", "C", "last", "reduce"),
        ("G", "$D >= 1 && $E > $F", None, "math"),
    ]
    assert rule["labels"] == {
        "job_tag": "AUTO_REBAL",
        "job_id": "auto_rebalance",
        "job_alert": "failing",
        "severity": "warning",
    }
    assert rule["annotations"]["summary"] == (
        "[AUTO_REBAL] auto_rebalance (automatic portfolio rebalancing): 1 failed run in the last 1h6m, "
        "none succeeded since"
    )


def test_overlapping_rule_exactly() -> None:
    rule = generate_alert_rules(small_registry())["groups"][0]["rules"][2]
    expr = (
        'count(sum by (service_instance_id) (count_over_time({service_name=~".+", job_tag="AUTO_REBAL"} '
        '| job_outcome!="" [1h6m]))) or vector(0)'
    )
    expression = {"type": "__expr__", "uid": "__expr__"}
    assert rule == {
        "uid": "otel-jobtags-overlapping-AUTO_REBAL",
        "title": "AUTO_REBAL overlapping",
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "queryType": "instant",
                "relativeTimeRange": {"from": 3960, "to": 0},
                "datasourceUid": "loki",
                "model": {
                    "datasource": {"type": "loki", "uid": "loki"},
                    "editorMode": "code",
                    "expr": expr,
                    "instant": True,
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                    "queryType": "instant",
                    "refId": "A",
                },
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "datasource": expression,
                    "refId": "B",
                    "expression": "A",
                    "reducer": "last",
                    "type": "reduce",
                },
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "datasource": expression,
                    "refId": "C",
                    "expression": "B",
                    "type": "threshold",
                    "conditions": [{"evaluator": {"params": [1], "type": "gt"}}],
                },
            },
        ],
        "noDataState": "OK",
        "dashboardUid": "otel-jobtags-job",
        "panelId": 6,
        "execErrState": "Error",
        "for": "1h6m",
        "labels": {
            "job_tag": "AUTO_REBAL",
            "job_id": "auto_rebalance",
            "job_alert": "overlapping",
            "severity": "warning",
        },
        "isPaused": False,
        "annotations": {
            "summary": (
                "[AUTO_REBAL] auto_rebalance (automatic portfolio rebalancing): two or more processes run it, "
                "each at every tick"
            ),
            "description": (
                "AUTO_REBAL (runs hourly at minute 17) was recorded by two or more processes "
                "(service.instance.id) in every 1h6m for the last 1h6m: each runs its own scheduler, so every "
                "run happens once per process. Typical cause: a scheduler started in every gunicorn/uWSGI "
                "worker or replica; start it with otel_jobtags.scheduler.start_once_per_host. The processes "
                "are on the job's dashboard (Runs by process). Resolves when one process is left."
            ),
            "runbook_url": "/d/otel-jobtags-job?var-job=AUTO_REBAL",
        },
    }


def test_provisioned_text_escapes_dollars_from_grafanas_environment_expansion() -> None:
    jobs = TagRegistry()
    jobs.define("PAY", "pay$out", "", "every 1 min")
    assert generate_alert_rules(jobs)["groups"][0]["rules"][0]["labels"]["job_id"] == "pay$$out"


# ---------------------------------------------------------------- rules <-> evaluator


@pytest.mark.parametrize("registry", [JOBS, small_registry()], ids=["demo", "small"])
def test_each_rule_encodes_the_evaluators_numbers(registry: TagRegistry) -> None:
    policies = alert_policies(registry)
    rules = {rule["title"]: rule for rule in generate_alert_rules(registry)["groups"][0]["rules"]}
    now = MONDAY + timedelta(days=30)
    for name, policy in policies.items():
        schedule = policy.tag.schedule
        failing = rules.pop(f"{name} failing")
        if policy.late_window is None:
            assert f"{name} late" not in rules
        else:
            late = rules.pop(f"{name} late")
            (expr,) = [q["model"]["expr"] for q in late["data"] if q["datasourceUid"] == "loki"]
            window = parse_duration(range_of(expr))
            assert window == policy.late_window
            assert late["data"][0]["relativeTimeRange"] == {"from": window.total_seconds(), "to": 0}
            assert late["data"][2]["model"]["conditions"] == [{"evaluator": {"params": [1], "type": "lt"}}]
            # The rule fires when no success is in (now - window, now]; so does the evaluator.
            assert is_late(schedule, now - window, now, policy.grace, policy.run_records)
            assert not is_late(schedule, now - window + US, now, policy.grace, policy.run_records)
        exprs = [q["model"]["expr"] for q in failing["data"] if q["datasourceUid"] == "loki"]
        window = parse_duration(range_of(" ".join(exprs)))
        assert window == policy.failure_window
        (math,) = [q["model"]["expression"] for q in failing["data"] if q["model"].get("type") == "math"]
        threshold = int(re.fullmatch(r"\$D >= (\d+) && \$E > \$F", math).group(1))  # type: ignore[union-attr]
        assert threshold == policy.failure_threshold
        errors = [Run(now - i * S, "error") for i in range(threshold)]
        assert is_failing(errors, now, window=window, threshold=policy.failure_threshold)
        assert not is_failing(errors[1:], now, window=window, threshold=policy.failure_threshold)
        assert not is_failing([*errors, Run(now, "success")], now, window=window, threshold=threshold)
        overlapping = rules.pop(f"{name} overlapping")
        (expr,) = [q["model"]["expr"] for q in overlapping["data"] if q["datasourceUid"] == "loki"]
        window = parse_duration(range_of(expr))
        assert window == policy.overlap_window == parse_duration(overlapping["for"])
        assert overlapping["data"][2]["model"]["conditions"] == [{"evaluator": {"params": [1], "type": "gt"}}]
        # Two processes, each with a record every window: the rule fires after one window, and so
        # does the evaluator; a record of the second one a moment later than that and it does not yet.
        both = [Run(now - k * window, "success", w) for k in range(3) for w in ("w1", "w2")]
        assert is_overlapping(both, now, window=window)
        late_second = [r for r in both if r.instance == "w1" or r.time > now - window]
        assert not is_overlapping(late_second, now, window=window)
    assert rules == {}


# ---------------------------------------------------------------- provisioning file


def _check_provisioning(document: dict[str, Any], dashboards: dict[str, Any]) -> None:
    assert document["apiVersion"] == 1
    assert isinstance(document["groups"], list) and document["groups"]
    uids = set()
    for group in document["groups"]:
        assert isinstance(group["orgId"], int)
        assert isinstance(group["name"], str) and group["name"].strip()
        assert isinstance(group["folder"], str) and group["folder"].strip()
        interval = parse_duration(group["interval"])
        assert interval.total_seconds() % 10 == 0  # Grafana's base evaluation interval
        assert group["rules"]
        for rule in group["rules"]:
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", rule["uid"]) and rule["uid"] not in uids
            uids.add(rule["uid"])
            assert isinstance(rule["title"], str) and rule["title"]
            refs = [item["refId"] for item in rule["data"]]
            assert len(set(refs)) == len(refs) and rule["condition"] in refs
            for item in rule["data"]:
                assert isinstance(item["model"], dict) and item["model"]["refId"] == item["refId"]
                if item["datasourceUid"] == "__expr__":
                    assert item["model"]["type"] in ("reduce", "threshold", "math")
                    for ref in re.findall(r"\$(\w+)", item["model"]["expression"]) or [
                        item["model"]["expression"]
                    ]:
                        assert ref in refs[: refs.index(item["refId"])]
                else:
                    assert item["datasourceUid"] == "loki"
                    assert isinstance(item["model"]["expr"], str) and item["model"]["expr"]
                    span = item["relativeTimeRange"]
                    assert span["from"] > span["to"] == 0
            assert rule["noDataState"] in ("Alerting", "NoData", "OK", "KeepLast")
            assert rule["execErrState"] in ("Alerting", "Error", "OK", "KeepLast")
            assert parse_duration(rule["for"]) >= timedelta(0)
            assert all(isinstance(v, str) for v in rule["labels"].values())
            tag_name = rule["labels"]["job_tag"]
            tag = JOBS.by_name(tag_name) if tag_name in JOBS else None
            summary = rule["annotations"]["summary"]
            assert f"[{tag_name}]" in summary and rule["labels"]["job_id"] in summary
            if tag is not None:
                assert tag.description in summary
            assert rule["annotations"]["runbook_url"] == f"/d/{JOB_DASHBOARD_UID}?var-job={tag_name}"
            assert rule["dashboardUid"] in dashboards
            assert RUNS_PANEL_ID in [panel["id"] for panel in dashboards[rule["dashboardUid"]]["panels"]]


def test_rules_have_the_structure_grafana_provisions() -> None:
    _check_provisioning(generate_alert_rules(JOBS), generate_dashboards(JOBS))


def test_the_yaml_reads_back_as_the_document() -> None:
    document = generate_alert_rules(JOBS)
    text = render_alert_rules(document)
    assert text.startswith("# Grafana alert rules for the background jobs of the tag registry.\n")
    assert yaml.safe_load(text) == document


def test_the_demo_registry_has_39_rules_but_none_late_for_manual_jobs() -> None:
    titles = [rule["title"] for rule in generate_alert_rules(JOBS)["groups"][0]["rules"]]
    assert len(titles) == 39
    assert titles[:3] == ["PRECISION_CACHE late", "PRECISION_CACHE failing", "PRECISION_CACHE overlapping"]


def test_write_alert_rules_then_nothing_is_stale(tmp_path: Path) -> None:
    assert write_alert_rules(small_registry(), tmp_path) == [tmp_path / ALERT_RULES_FILE]
    assert write_alert_rules(small_registry(), tmp_path) == []
    assert stale_alert_rules(small_registry(), tmp_path) == []
    assert stale_alert_rules(small_registry(), tmp_path, job_tag_as="structured_metadata") == [
        tmp_path / ALERT_RULES_FILE
    ]


def test_empty_registry_has_no_rules() -> None:
    with pytest.raises(ConfigError, match=r"^The registry has no tags: define the jobs before generating"):
        generate_alert_rules(TagRegistry())


def test_committed_rules_match_the_demo_registry() -> None:
    path = REPO / "grafana" / "provisioning" / "alerting"
    assert stale_alert_rules(JOBS, path) == [], "regenerate with: otel-jobtags alerts"
    _check_provisioning(
        yaml.safe_load((path / ALERT_RULES_FILE).read_text(encoding="utf-8")), generate_dashboards(JOBS)
    )


def test_logql_duration_is_whole_seconds_rounded_up() -> None:
    assert [
        logql_duration(d) for d in (S, 61 * S, timedelta(hours=26, minutes=24), timedelta(milliseconds=1500))
    ] == ["1s", "1m1s", "26h24m", "2s"]
    with pytest.raises(ConfigError, match=r"^Invalid duration 0:00:00: it must be longer than 0 s$"):
        logql_duration(timedelta(0))


def test_a_leap_day_job_gets_rules_that_wait_four_years() -> None:
    jobs = TagRegistry()
    jobs.define("LEAP_REPORT", "leap_report", "report on the leap day", "0 0 29 2 *")
    policy = alert_policies(jobs)["LEAP_REPORT"]
    four_years = timedelta(days=1461)
    assert (policy.grace, policy.failure_threshold, policy.failure_window) == (
        timedelta(days=146, seconds=8640),
        1,
        four_years + timedelta(days=146, seconds=8640),
    )
    assert policy.late_window == four_years + timedelta(days=146, seconds=8640)
    rules = generate_alert_rules(jobs)["groups"][0]["rules"]
    assert [rule["title"] for rule in rules] == [
        "LEAP_REPORT late",
        "LEAP_REPORT failing",
        "LEAP_REPORT overlapping",
    ]
