"""The job status model: overlapping processes, runs at once, and the three verdicts as the web view shows them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from otel_jobtags import TagRegistry
from otel_jobtags.grafana import (
    FAILING,
    LATE,
    OVERLAPPING,
    Run,
    RunSpan,
    alert_policies,
    is_overlapping,
    job_status,
    overlapping_instances,
    overlapping_runs,
)

T0 = datetime(2026, 3, 2, 9, 0)
S = timedelta(seconds=1)
HOUR = timedelta(hours=1)


def span(start: float, end: float, instance: str) -> RunSpan:
    return RunSpan(T0 + start * S, T0 + end * S, instance)


def test_runs_of_two_processes_that_intersect_overlap() -> None:
    a, b = span(0, 10, "worker-1"), span(5, 12, "worker-2")
    assert overlapping_runs([b, a], T0 + 20 * S, window=HOUR) == [(a, b)]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(span(0, 10, "w1"), span(10, 20, "w2"), id="one-ends-when-the-other-starts"),
        pytest.param(span(0, 10, "w1"), span(11, 20, "w2"), id="one-after-the-other"),
        pytest.param(span(0, 10, "w1"), span(5, 12, "w1"), id="same-process"),
    ],
)
def test_runs_that_do_not_overlap(first: RunSpan, second: RunSpan) -> None:
    assert overlapping_runs([first, second], T0 + 30 * S, window=HOUR) == []


def test_a_long_run_overlaps_every_run_of_another_process_it_spans() -> None:
    long = span(0, 100, "w1")
    short = [span(10, 11, "w2"), span(50, 51, "w2"), span(99, 100, "w1"), span(100, 101, "w3")]
    assert overlapping_runs([*short, long], T0 + 200 * S, window=HOUR) == [
        (long, short[0]),
        (long, short[1]),
    ]


MINUTE = timedelta(minutes=1)
WINDOW = timedelta(seconds=66)  # a job every minute: period + 6 s grace


def every_minute(instance: str, first: float, last: float) -> list[Run]:
    """Run records of one process, every 60 s from ``first`` to ``last`` (seconds after T0)."""
    return [Run(T0 + at * S, "success", instance) for at in range(int(first), int(last) + 1, 60)]


def verdicts(runs: list[Run], until: float) -> list[float]:
    """The moments (every 10 s from T0 to ``until``) at which the overlap rule holds."""
    return [at for at in range(0, int(until) + 1, 10) if is_overlapping(runs, T0 + at * S, window=WINDOW)]


def test_two_processes_that_keep_running_a_job_overlap_one_window_after_the_second_starts() -> None:
    # Their runs never run at the same instant: 20 s apart, and 1 s long.
    runs = every_minute("w1", 0, 600) + every_minute("w2", 320, 600)
    held = verdicts(runs, 600)
    assert held[0] == 390  # the second process's first record, 320 s, plus a window of 66 s
    assert held == list(range(390, 601, 10))
    assert overlapping_instances(runs, T0 + 600 * S, window=WINDOW) == ("w1", "w2")
    assert (
        overlapping_runs(
            [RunSpan(r.time - S, r.time, r.instance or "") for r in runs], T0 + 600 * S, window=HOUR
        )
        == []
    )


@pytest.mark.parametrize(
    "runs",
    [
        pytest.param(every_minute("w1", 0, 300) + every_minute("w2", 330, 900), id="takeover"),
        pytest.param(every_minute("w1", 0, 300) + every_minute("w2", 301, 900), id="takeover-a-second-later"),
        pytest.param(every_minute("w1", 0, 900), id="one-process"),
        pytest.param(
            every_minute("w1", 0, 900) + [Run(T0 + at * S, "success") for at in range(30, 900, 60)],
            id="records-without-a-process",
        ),
    ],
)
def test_processes_that_hand_the_job_over_never_overlap(runs: list[Run]) -> None:
    assert verdicts(runs, 900) == []


def test_a_new_process_that_runs_the_job_before_the_old_one_stops_overlaps_for_a_while() -> None:
    # A deploy without the host lock: both schedulers ran the job between 250 s and 300 s.
    runs = every_minute("old", 0, 300) + every_minute("new", 250, 900)
    assert verdicts(runs, 900) == [320, 330, 340, 350, 360]  # until the old one's last record is a window old


def test_a_second_process_that_stops_ends_the_overlap_one_window_after_its_last_record() -> None:
    runs = every_minute("w1", 0, 900) + every_minute("w2", 20, 500)
    held = verdicts(runs, 900)
    assert (held[0], held[-1]) == (90, 560)  # 20 + 66 rounded up to the grid; 500 + 66 - 6
    assert overlapping_instances(runs, T0 + 700 * S, window=WINDOW) == ()


def test_job_status_combines_the_rules_with_the_policy_s_numbers() -> None:
    jobs = TagRegistry()
    jobs.define("HOURLY", "hourly", "", "every 1 h")
    policy = alert_policies(jobs)["HOURLY"]
    # defaults: grace 6 min, failure window 66 min, 1 failure
    assert (policy.grace, policy.failure_window, policy.failure_threshold) == (
        timedelta(minutes=6),
        timedelta(minutes=66),
        1,
    )
    now = T0 + 2 * HOUR
    fresh = now - 10 * S
    assert job_status(policy, now, last_success=fresh, runs=[Run(fresh, "success")]) == ()
    failed = [Run(now - HOUR, "success"), Run(now - 5 * S, "error")]
    assert job_status(policy, now, last_success=now - HOUR, runs=failed) == (FAILING,)
    stale = now - timedelta(minutes=66)
    assert job_status(policy, now, last_success=stale, runs=[Run(stale, "success")]) == (LATE,)
    # Two processes failing the job every hour, for three hours.
    both = [
        Run(now - k * HOUR - offset, "error", name)
        for k in range(3)
        for name, offset in (("w1", S), ("w2", 9 * S))
    ]
    assert job_status(policy, now, last_success=None, runs=both) == (FAILING, LATE, OVERLAPPING)
