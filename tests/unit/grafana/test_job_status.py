"""The job status model: overlapping runs, and the three verdicts together as the web view shows them."""

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


def test_only_runs_ending_within_the_window_count() -> None:
    a, b = span(0, 10, "w1"), span(5, 12, "w2")
    window = timedelta(seconds=60)
    assert is_overlapping([a, b], T0 + 69 * S, window=window)
    assert not is_overlapping([a, b], T0 + 70 * S, window=window)  # a ended 60 s before: out
    assert not is_overlapping([a, b], T0 + 11 * S, window=window)  # b ends after now: not yet


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
    both = [span(7000, 7100, "w1"), span(7050, 7150, "w2")]
    assert job_status(policy, now, last_success=None, runs=[Run(now - S, "error")], spans=both) == (
        FAILING,
        LATE,
        OVERLAPPING,
    )
