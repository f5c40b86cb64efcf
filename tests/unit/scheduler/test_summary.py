"""PeriodicSummary: the seed's quiet exit + periodic summary, with a fake clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from otel_jobtags import ConfigError, PeriodicSummary, TagRegistry, job_context
from otel_jobtags.scheduler import SummarySnapshot
from otel_jobtags.scheduler._summary import duration_text
from otel_jobtags.testing import CapturedLog, capture_logs

log = logging.getLogger("app.queue")


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> TagRegistry:
    jobs = TagRegistry()
    jobs.define("QUEUE_REBAL", "queue_rebalancer", "re-order the queue", "every 1 s")
    return jobs


@pytest.fixture
def logs(registry: TagRegistry) -> Iterator[list[CapturedLog]]:
    with capture_logs(registry, logger="app") as captured:
        yield captured


def test_nothing_is_logged_before_the_interval_has_passed(clock: FakeClock, logs: list[CapturedLog]) -> None:
    summary = PeriodicSummary(clock=clock)
    summary.record(moved=3)
    clock.now += 299.9
    assert summary.maybe_log(log) is False
    assert (logs, summary.pending) == ([], 1)


def test_a_summary_reports_counts_and_sums_since_the_previous_one_in_the_jobs_context(
    clock: FakeClock, registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    summary = PeriodicSummary("📊 status summary", every=timedelta(minutes=5), clock=clock)
    with job_context(registry.QUEUE_REBAL, run_id="r42"):
        summary.record(moved=3, active=2)
        clock.now += 100
        summary.record(moved=4, active=1.5)
        clock.now += 200
        assert summary.maybe_log(log) is True

    assert logs == [
        CapturedLog(
            level="INFO",
            logger="app.queue",
            message="[QUEUE_REBAL] 📊 status summary - moved: 7, active: 3.5 (2 updates in the last 5 min)",
            job_tag="QUEUE_REBAL",
            job_id="queue_rebalancer",
            run_id="r42",
            attributes={
                "summary.updates": 2,
                "summary.window_s": 300.0,
                "summary.moved": 7,
                "summary.active": 3.5,
                "job.tag": "QUEUE_REBAL",
                "job.id": "queue_rebalancer",
                "job.run_id": "r42",
            },
        )
    ]
    assert summary.pending == 0


def test_the_next_summary_counts_afresh_from_the_previous_one(
    clock: FakeClock, logs: list[CapturedLog]
) -> None:
    summary = PeriodicSummary("status", every=60, clock=clock)
    summary.record(moved=1)
    clock.now += 60
    assert summary.maybe_log(log)
    summary.record(moved=5)
    clock.now += 30
    assert not summary.maybe_log(log)
    clock.now += 30
    assert summary.maybe_log(log, logging.WARNING)
    assert [(r.level, r.message) for r in logs] == [
        ("INFO", "status - moved: 1 (1 update in the last 1 min)"),
        ("WARNING", "status - moved: 5 (1 update in the last 1 min)"),
    ]


def test_a_quiet_interval_logs_nothing_and_the_next_update_is_summarised_at_once(
    clock: FakeClock, logs: list[CapturedLog]
) -> None:
    summary = PeriodicSummary("status", clock=clock)
    clock.now += 900
    assert summary.maybe_log(log) is False  # due, but nothing happened: the quiet exit
    summary.record()
    assert summary.maybe_log(log) is True
    assert [r.message for r in logs] == ["status - 1 update in the last 15 min"]


def test_flush_logs_what_is_waiting_whether_due_or_not(clock: FakeClock, logs: list[CapturedLog]) -> None:
    summary = PeriodicSummary("status", clock=clock)
    assert summary.flush(log) is False
    summary.record(moved=2)
    clock.now += 12
    assert summary.flush(log) is True
    assert [r.message for r in logs] == ["status - moved: 2 (1 update in the last 12 s)"]


def test_take_hands_over_a_snapshot_for_callers_that_log_their_own_way(clock: FakeClock) -> None:
    summary = PeriodicSummary(every=10, clock=clock)
    summary.record(filled=2)
    summary.record(filled=1, failed=1)
    assert summary.take() is None
    clock.now += 10
    assert summary.take() == SummarySnapshot(2, {"filled": 3, "failed": 1}, 10.0)
    assert summary.take(force=True) is None


def test_a_percent_sign_in_the_title_is_text(clock: FakeClock, logs: list[CapturedLog]) -> None:
    summary = PeriodicSummary("100% done %s", clock=clock)
    summary.record()
    summary.flush(log)
    assert [r.message for r in logs] == ["100% done %s - 1 update in the last 0 s"]


def test_records_from_many_threads_all_count(clock: FakeClock) -> None:
    summary = PeriodicSummary(clock=clock)
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(1000):
            summary.record(moved=1, weight=0.5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert summary.take(force=True) == SummarySnapshot(8000, {"moved": 8000, "weight": 4000.0}, 0.0)


@pytest.mark.parametrize("every", [0, -5, timedelta(0), "5 min", True])
def test_an_interval_that_is_not_a_positive_duration_is_refused(every: object) -> None:
    with pytest.raises(ConfigError) as raised:
        PeriodicSummary(every=every)  # type: ignore[arg-type]
    assert str(raised.value) == (
        f"Invalid every={every!r}: give a positive timedelta or number of seconds, e.g. timedelta(minutes=5)"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (0.3, "0.3 s"),
        (12, "12 s"),
        (59.4, "59 s"),
        (60, "1 min"),
        (300, "5 min"),
        (330, "5 min 30 s"),
        (3600, "1 h"),
        (3720, "1 h 2 min"),
        (3725, "1 h 2 min"),
    ],
)
def test_duration_text(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text
