"""The APScheduler integration, tested against real APScheduler 3.x schedulers.

Nothing here mocks the scheduler: jobs are added to real Background,
Blocking and AsyncIO schedulers with real executors, and the tests wait on
the scheduler's own events (or on barriers the jobs meet at), never on sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
)
from apscheduler.executors.pool import ProcessPoolExecutor, ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from support import scheduler_jobs

from otel_jobtags import (
    ConfigError,
    JobTagsError,
    TagRegistry,
    UnknownJobError,
    UntaggedJobError,
    current_job,
)
from otel_jobtags.handler import JobTagHandler
from otel_jobtags.schedule import Cron, Interval, parse_schedule
from otel_jobtags.scheduler import (
    RunRecordPolicy,
    compare_schedule,
    connect,
    default_run_record_policy,
    trigger_for,
)
from otel_jobtags.testing import CapturedLog, capture_logs

log = logging.getLogger("app")
library_log = logging.getLogger("library")
RUN_ID = re.compile(r"[0-9a-f]{16}")
# A slow machine must not turn a run into a missed one: runs may start late;
# the tests of missed runs set their own grace time.
NEVER_MISSED = {"misfire_grace_time": None}
JOB_EVENTS = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
KNOWN = "auto_rebalance, update_open_orders, queue_rebalancer, send_daily_summary, manual_fix"


@pytest.fixture
def registry() -> TagRegistry:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "rebalance the portfolio", "hourly at minute 17")
    jobs.define("ORDER_UPDATE", "update_open_orders", "update open orders", "every 29 s")
    jobs.define("QUEUE_REBAL", "queue_rebalancer", "re-order the queue", "every 1 s")
    jobs.define("DAILY_SUMMARY", "send_daily_summary", "send the daily summary", "daily 09:00")
    jobs.define("MANUAL_FIX", "manual_fix", "repair by hand", "manual")
    return jobs


@pytest.fixture
def logs(registry: TagRegistry) -> Iterator[list[CapturedLog]]:
    with capture_logs(registry) as captured:
        yield captured


@pytest.fixture(autouse=True)
def _no_job_left_behind() -> Iterator[None]:
    yield
    assert current_job() is None


@pytest.fixture
def make_scheduler() -> Iterator[Callable[..., BackgroundScheduler]]:
    made: list[BackgroundScheduler] = []

    def make(workers: int = 4, **options: Any) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults=NEVER_MISSED,
            timezone="UTC",
            **options,
        )
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        if scheduler.running:
            scheduler.shutdown(wait=True)


class Events:
    """The scheduler's job events; ``wait(n)`` blocks until n have arrived.

    Added after ``connect``, so the connection's own listener has run (and
    logged) by the time an event arrives here.
    """

    def __init__(self, scheduler: Any) -> None:
        self.events: list[Any] = []
        self._changed = threading.Condition()
        scheduler.add_listener(self._on_event, JOB_EVENTS)

    def _on_event(self, event: Any) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = 10) -> list[Any]:
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.events) >= count, timeout)
            assert arrived, f"waited {timeout} s for {count} job events, got {self.events}"
            return list(self.events)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def of(logs: list[CapturedLog], *loggers: str) -> list[CapturedLog]:
    """The captured records of some loggers (the scheduler's own are left out)."""
    return [r for r in logs if r.logger in loggers]


def tagged(tag: str, job_id: str, run_id: str | None, **attributes: Any) -> dict[str, Any]:
    """The attributes a record of a job has: ours, then the tag's."""
    return {**attributes, "job.tag": tag, "job.id": job_id, "job.run_id": run_id}


def finished(tag: str, job_id: str, run_id: str, due: datetime, duration: float) -> CapturedLog:
    return CapturedLog(
        level="INFO",
        logger="otel_jobtags.runs",
        message=f"[{tag}] run finished in {duration:.1f} ms",
        job_tag=tag,
        job_id=job_id,
        run_id=run_id,
        attributes=tagged(
            tag,
            job_id,
            run_id,
            **{"job.outcome": "success", "job.scheduled_time": due.isoformat(), "job.duration_ms": duration},
        ),
    )


# ---------------------------------------------------------------------------
# Every run in its context, with a run record.
# ---------------------------------------------------------------------------


def test_a_job_added_after_connect_logs_in_its_context_and_leaves_a_run_record(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry)
    events = Events(scheduler)
    due = utc_now()

    def rebalance() -> None:
        log.info("rebalanced %d items", 5)
        library_log.debug("GET /positions -> 200")

    scheduler.add_job(rebalance, "interval", hours=1, id="auto_rebalance", next_run_time=due)
    scheduler.start()
    events.wait(1)

    inside, library, run = of(logs, "app", "library", "otel_jobtags.runs")
    run_id = run.run_id
    assert run_id is not None and RUN_ID.fullmatch(run_id)
    assert inside == CapturedLog(
        level="INFO",
        logger="app",
        message="[AUTO_REBAL] rebalanced 5 items",
        job_tag="AUTO_REBAL",
        job_id="auto_rebalance",
        run_id=run_id,
        attributes=tagged("AUTO_REBAL", "auto_rebalance", run_id),
    )
    assert library == CapturedLog(
        level="DEBUG",
        logger="library",
        message="[AUTO_REBAL] GET /positions -> 200",
        job_tag="AUTO_REBAL",
        job_id="auto_rebalance",
        run_id=run_id,
        attributes=tagged("AUTO_REBAL", "auto_rebalance", run_id),
    )
    duration = run.attributes["job.duration_ms"]
    assert isinstance(duration, float) and duration >= 0
    assert run == finished("AUTO_REBAL", "auto_rebalance", run_id, due, duration)


def test_jobs_added_before_connect_and_before_start_run_in_their_context(
    registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    # No executor configured: the scheduler creates its default one in start(), after connect.
    scheduler = BackgroundScheduler(job_defaults=NEVER_MISSED, timezone="UTC")
    seen: list[Any] = []
    scheduler.add_job(lambda: seen.append(current_job()), id="update_open_orders")
    connection = connect(scheduler, registry)
    events = Events(scheduler)
    scheduler.start()
    try:
        events.wait(1)
    finally:
        scheduler.shutdown()
        connection.disconnect()
    [active] = seen
    assert active.tag == registry.ORDER_UPDATE
    [run] = of(logs, "otel_jobtags.runs")
    assert (run.job_tag, run.run_id, run.attributes["job.outcome"]) == (
        "ORDER_UPDATE",
        active.run_id,
        "success",
    )


def test_each_run_gets_a_fresh_run_id_shared_by_everything_it_logs(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry)
    events = Events(scheduler)
    scheduler.add_job(
        lambda: log.info("working"), "interval", hours=1, id="auto_rebalance", next_run_time=utc_now()
    )
    scheduler.start()
    events.wait(1)
    scheduler.modify_job("auto_rebalance", next_run_time=utc_now())
    events.wait(2)

    records = of(logs, "app", "otel_jobtags.runs")
    assert [(r.logger, r.message.split(" in ")[0]) for r in records] == [
        ("app", "[AUTO_REBAL] working"),
        ("otel_jobtags.runs", "[AUTO_REBAL] run finished"),
        ("app", "[AUTO_REBAL] working"),
        ("otel_jobtags.runs", "[AUTO_REBAL] run finished"),
    ]
    first, second = records[0].run_id, records[2].run_id
    assert [r.run_id for r in records] == [first, first, second, second]
    assert first != second


def test_a_failing_job_leaves_an_error_run_record_with_its_exception(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry)
    events = Events(scheduler)
    due = utc_now()
    boom = ValueError("upstream answered 503")

    def fail() -> None:
        log.info("calling upstream")
        raise boom

    scheduler.add_job(fail, "interval", hours=1, id="auto_rebalance", next_run_time=due)
    scheduler.start()
    [event] = events.wait(1)

    assert (event.code, event.exception) == (EVENT_JOB_ERROR, boom)  # APScheduler still sees the failure
    inside, run = of(logs, "app", "otel_jobtags.runs")
    run_id = inside.run_id
    duration = run.attributes["job.duration_ms"]
    assert run == CapturedLog(
        level="ERROR",
        logger="otel_jobtags.runs",
        message=f"[AUTO_REBAL] run failed after {duration:.1f} ms: ValueError: upstream answered 503",
        job_tag="AUTO_REBAL",
        job_id="auto_rebalance",
        run_id=run_id,
        attributes=tagged(
            "AUTO_REBAL",
            "auto_rebalance",
            run_id,
            **{"job.outcome": "error", "job.scheduled_time": due.isoformat(), "job.duration_ms": duration},
        ),
        exc_info=run.exc_info,
    )
    assert run.exc_info[:2] == (ValueError, boom)


def test_an_exported_error_run_record_carries_the_exception_attributes(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = JobTagHandler(provider, registry=registry)
    runs_logger = logging.getLogger("otel_jobtags.runs")
    runs_logger.addHandler(handler)
    try:
        scheduler = make_scheduler()
        connect(scheduler, registry)
        events = Events(scheduler)
        scheduler.add_job(lambda: 1 / 0, "interval", hours=1, id="auto_rebalance", next_run_time=utc_now())
        scheduler.start()
        events.wait(1)
    finally:
        runs_logger.removeHandler(handler)
        provider.shutdown()
    [exported] = exporter.get_finished_logs()
    attributes = dict(exported.log_record.attributes or {})
    assert str(attributes["exception.stacktrace"]).startswith("Traceback (most recent call last):")
    assert {k: attributes[k] for k in ("exception.type", "exception.message", "job.outcome", "job.tag")} == {
        "exception.type": "ZeroDivisionError",
        "exception.message": "division by zero",
        "job.outcome": "error",
        "job.tag": "AUTO_REBAL",
    }


def test_a_run_past_its_misfire_grace_time_leaves_a_missed_run_record(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry)
    events = Events(scheduler)
    scheduler.start()
    due = (utc_now() - timedelta(seconds=30)).replace(microsecond=0)
    ran: list[bool] = []
    scheduler.add_job(
        lambda: ran.append(True), DateTrigger(due), id="send_daily_summary", misfire_grace_time=1
    )
    [event] = events.wait(1)

    assert (event.code, ran) == (EVENT_JOB_MISSED, [])
    [run] = of(logs, "otel_jobtags.runs")
    assert run.run_id is not None and RUN_ID.fullmatch(run.run_id)
    assert run == CapturedLog(
        level="WARNING",
        logger="otel_jobtags.runs",
        message=(
            f"[DAILY_SUMMARY] run missed: it was due at {due.isoformat()} "
            "and could not start within its misfire grace time"
        ),
        job_tag="DAILY_SUMMARY",
        job_id="send_daily_summary",
        run_id=run.run_id,
        attributes=tagged(
            "DAILY_SUMMARY",
            "send_daily_summary",
            run.run_id,
            **{"job.outcome": "missed", "job.scheduled_time": due.isoformat()},
        ),
    )


def test_a_run_due_while_the_previous_is_still_going_leaves_a_skipped_run_record(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler(workers=2)
    connect(scheduler, registry)
    events = Events(scheduler)
    started, release = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        assert release.wait(10)

    scheduler.add_job(
        slow, "interval", hours=1, id="update_open_orders", max_instances=1, next_run_time=utc_now()
    )
    scheduler.start()
    assert started.wait(10)
    due = utc_now()
    scheduler.modify_job("update_open_orders", next_run_time=due)
    [event] = events.wait(1)
    release.set()
    events.wait(2)

    assert event.code == EVENT_JOB_MAX_INSTANCES
    skipped, done = of(logs, "otel_jobtags.runs")
    assert skipped.run_id is not None and RUN_ID.fullmatch(skipped.run_id)
    assert skipped == CapturedLog(
        level="WARNING",
        logger="otel_jobtags.runs",
        message=(
            f"[ORDER_UPDATE] run skipped: it was due at {due.isoformat()} "
            "while earlier runs were still going (max_instances reached)"
        ),
        job_tag="ORDER_UPDATE",
        job_id="update_open_orders",
        run_id=skipped.run_id,
        attributes=tagged(
            "ORDER_UPDATE",
            "update_open_orders",
            skipped.run_id,
            **{"job.outcome": "skipped", "job.scheduled_time": due.isoformat()},
        ),
    )
    assert (done.attributes["job.outcome"], done.run_id != skipped.run_id) == ("success", True)


def test_each_run_time_of_a_late_job_gets_its_own_record_when_runs_are_not_coalesced(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry)
    events = Events(scheduler)
    first = (utc_now() - timedelta(seconds=250)).replace(microsecond=0)
    due = [first, first + timedelta(seconds=100), first + timedelta(seconds=200)]
    scheduler.add_job(
        lambda: log.info("caught up"),
        "interval",
        seconds=100,
        id="auto_rebalance",
        next_run_time=first,
        coalesce=False,
        misfire_grace_time=200,  # the first run time is 250 s late: missed; the other two run
    )
    scheduler.start()
    events.wait(3)

    runs = sorted(of(logs, "otel_jobtags.runs"), key=lambda r: r.attributes["job.scheduled_time"])
    assert [(r.attributes["job.outcome"], r.attributes["job.scheduled_time"]) for r in runs] == [
        ("missed", due[0].isoformat()),
        ("success", due[1].isoformat()),
        ("success", due[2].isoformat()),
    ]
    inside = of(logs, "app")
    assert [r.run_id for r in inside] == [runs[1].run_id, runs[2].run_id]
    assert len({r.run_id for r in runs}) == 3


# ---------------------------------------------------------------------------
# Threads: never mixed, never leaked.
# ---------------------------------------------------------------------------


def test_two_jobs_running_at_once_on_different_threads_keep_their_own_context(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler(workers=2)
    connect(scheduler, registry)
    events = Events(scheduler)
    both_inside = threading.Barrier(2, timeout=10)
    seen: dict[str, tuple[int, str | None]] = {}

    def job(label: str) -> None:
        both_inside.wait()  # the other job is running now, on the other thread
        log.info("%s working", label)
        active = current_job()
        seen[label] = (threading.get_ident(), active.tag.name if active else None)
        both_inside.wait()

    now = utc_now()
    scheduler.add_job(job, "interval", hours=1, args=["a"], id="auto_rebalance", next_run_time=now)
    scheduler.add_job(job, "interval", hours=1, args=["b"], id="update_open_orders", next_run_time=now)
    scheduler.start()
    events.wait(2)

    assert seen["a"][1:] == ("AUTO_REBAL",) and seen["b"][1:] == ("ORDER_UPDATE",)
    assert seen["a"][0] != seen["b"][0]
    assert sorted((r.message, r.job_tag) for r in of(logs, "app")) == [
        ("[AUTO_REBAL] a working", "AUTO_REBAL"),
        ("[ORDER_UPDATE] b working", "ORDER_UPDATE"),
    ]


@pytest.mark.parametrize("ending", ["returns", "raises"])
def test_the_context_is_gone_when_a_job_ends_even_on_a_reused_pool_thread(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, ending: str
) -> None:
    scheduler = make_scheduler(workers=1)  # one thread: the next job reuses it
    connect(scheduler, registry, strict=False)
    events = Events(scheduler)
    seen: list[tuple[str, int, Any]] = []

    def tagged_job() -> None:
        seen.append(("tagged", threading.get_ident(), current_job()))
        if ending == "raises":
            raise RuntimeError("boom")

    def untagged_job() -> None:
        seen.append(("untagged", threading.get_ident(), current_job()))

    scheduler.add_job(tagged_job, "interval", hours=1, id="auto_rebalance", next_run_time=utc_now())
    scheduler.start()
    events.wait(1)
    scheduler.add_job(untagged_job, "interval", hours=1, id="not_a_tagged_job", next_run_time=utc_now())
    events.wait(2)

    (_, first_thread, inside), (_, second_thread, after) = seen
    assert first_thread == second_thread
    assert inside.tag == registry.AUTO_REBAL
    assert after is None


# ---------------------------------------------------------------------------
# The other schedulers and executors.
# ---------------------------------------------------------------------------


def test_asyncio_scheduler_runs_coroutine_and_plain_jobs_each_in_its_own_context(
    registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    seen: dict[str, str | None] = {}

    async def main() -> None:
        scheduler = AsyncIOScheduler(job_defaults=NEVER_MISSED, timezone="UTC")
        connection = connect(scheduler, registry)
        done = asyncio.Event()
        finished_jobs: list[str] = []

        def on_event(event: Any) -> None:
            finished_jobs.append(event.job_id)
            if len(finished_jobs) == 3:
                done.set()

        scheduler.add_listener(on_event, JOB_EVENTS)
        a_inside, b_inside = asyncio.Event(), asyncio.Event()

        async def coroutine_job(label: str, mine: asyncio.Event, other: asyncio.Event) -> None:
            mine.set()
            await other.wait()  # both coroutines are in the middle of their runs now
            log.info("%s awaited", label)
            active = current_job()
            seen[label] = active.tag.name if active else None

        def plain_job() -> None:  # runs in the event loop's thread pool
            log.info("plain ran")
            active = current_job()
            seen["plain"] = active.tag.name if active else None

        now = utc_now()
        scheduler.add_job(
            coroutine_job, args=["a", a_inside, b_inside], id="auto_rebalance", next_run_time=now
        )
        scheduler.add_job(
            coroutine_job, args=["b", b_inside, a_inside], id="update_open_orders", next_run_time=now
        )
        scheduler.add_job(plain_job, id="send_daily_summary", next_run_time=now)
        scheduler.start()
        try:
            await asyncio.wait_for(done.wait(), 10)
        finally:
            scheduler.shutdown(wait=False)
            connection.disconnect()

    asyncio.run(main())

    assert seen == {"a": "AUTO_REBAL", "b": "ORDER_UPDATE", "plain": "DAILY_SUMMARY"}
    assert sorted((r.message, r.job_tag) for r in of(logs, "app")) == [
        ("[AUTO_REBAL] a awaited", "AUTO_REBAL"),
        ("[DAILY_SUMMARY] plain ran", "DAILY_SUMMARY"),
        ("[ORDER_UPDATE] b awaited", "ORDER_UPDATE"),
    ]
    runs = of(logs, "otel_jobtags.runs")
    inside = {r.job_tag: r.run_id for r in of(logs, "app")}
    assert sorted((r.job_tag, r.attributes["job.outcome"], r.run_id == inside[r.job_tag]) for r in runs) == [
        ("AUTO_REBAL", "success", True),
        ("DAILY_SUMMARY", "success", True),
        ("ORDER_UPDATE", "success", True),
    ]


def test_blocking_scheduler_jobs_run_in_their_context(registry: TagRegistry, logs: list[CapturedLog]) -> None:
    scheduler = BlockingScheduler(job_defaults=NEVER_MISSED, timezone="UTC")
    connection = connect(scheduler, registry)

    def last_job() -> None:
        log.info("done, stopping")
        scheduler.shutdown(wait=False)

    # An interval trigger, not a one-off: a one-off job is removed after it is
    # submitted, which fails if it has already shut the scheduler down.
    scheduler.add_job(last_job, "interval", hours=1, id="send_daily_summary", next_run_time=utc_now())
    scheduler.start()  # returns once the job has shut the scheduler down
    connection.disconnect()

    [inside] = of(logs, "app")
    assert (inside.message, inside.job_tag) == ("[DAILY_SUMMARY] done, stopping", "DAILY_SUMMARY")


def test_an_executor_added_after_connect_runs_jobs_in_their_context(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry)
    events = Events(scheduler)
    scheduler.start()
    scheduler.add_executor(ThreadPoolExecutor(1), "reports")
    seen: list[Any] = []
    scheduler.add_job(lambda: seen.append(current_job()), id="send_daily_summary", executor="reports")
    events.wait(1)
    [active] = seen
    assert active.tag == registry.DAILY_SUMMARY


def test_process_pool_jobs_set_their_context_in_the_child_process(
    registry: TagRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "child.jsonl"
    pool = ProcessPoolExecutor(
        1, pool_kwargs={"initializer": scheduler_jobs.log_to_file, "initargs": (str(path),)}
    )
    scheduler = BackgroundScheduler(executors={"default": pool}, job_defaults=NEVER_MISSED, timezone="UTC")
    connect(scheduler, registry)
    events = Events(scheduler)
    due = utc_now()
    scheduler.add_job(scheduler_jobs.report_in_child, args=["child"], id="auto_rebalance", next_run_time=due)
    scheduler.start()
    try:
        events.wait(1, timeout=30)
    finally:
        scheduler.shutdown(wait=True)

    entries = [json.loads(line) for line in path.read_text().splitlines()]
    inside, run = (e for e in entries if e["logger"] in ("app.child", "otel_jobtags.runs"))
    assert inside["pid"] != os.getpid()
    assert inside == {
        "level": "INFO",
        "logger": "app.child",
        "message": "[AUTO_REBAL] child sees AUTO_REBAL",
        "pid": inside["pid"],
        "job.tag": "AUTO_REBAL",
        "job.id": "auto_rebalance",
        "job.run_id": inside["job.run_id"],
        "job.outcome": None,
        "job.scheduled_time": None,
    }
    assert RUN_ID.fullmatch(inside["job.run_id"])
    assert run["message"].startswith("[AUTO_REBAL] run finished in ")
    assert (run["pid"], run["job.run_id"], run["job.outcome"], run["job.scheduled_time"]) == (
        inside["pid"],
        inside["job.run_id"],
        "success",
        due.isoformat(),
    )


# ---------------------------------------------------------------------------
# Job ids: strict and lenient.
# ---------------------------------------------------------------------------


def test_strict_connect_refuses_a_scheduler_holding_untagged_jobs_and_changes_nothing(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    scheduler = make_scheduler()
    scheduler.add_job(print, id="auto_rebalance")
    scheduler.add_job(print, id="mystery")
    with pytest.raises(
        UntaggedJobError,
        match=(
            r"^Job id 'mystery' has no tag: define one with registry\.define\('NAME', 'mystery', \.\.\.\) "
            rf"or connect with strict=False to run it untagged; tagged job ids are {KNOWN}$"
        ),
    ) as raised:
        connect(scheduler, registry)
    assert (raised.value.job_ids, raised.value.value) == (("mystery",), "mystery")
    assert isinstance(raised.value, UnknownJobError)
    assert "add_job" not in vars(scheduler)
    assert scheduler._listeners == []
    connect(scheduler, registry, strict=False).disconnect()  # not left marked as connected


def test_strict_add_job_refuses_an_untagged_id_before_adding_it(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry)
    scheduler.start()
    with pytest.raises(UntaggedJobError, match=r"^Job id 'auto_rebal' has no tag: define one with .*$"):
        scheduler.add_job(print, "interval", seconds=5, id="auto_rebal")  # the tag name, not the job id
    assert scheduler.get_jobs() == []


def test_strict_add_job_refuses_a_job_without_an_id(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry)
    with pytest.raises(
        UntaggedJobError,
        match=(
            r"^A job added without an id gets a random one, which no tag can name: add it with "
            r"id='<a tagged job id>', or connect with strict=False to run it untagged; "
            rf"tagged job ids are {KNOWN}$"
        ),
    ):
        scheduler.add_job(print, "interval", seconds=5)
    assert scheduler.get_jobs() == []


def test_strict_checks_jobs_added_with_the_scheduled_job_decorator(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry)

    @scheduler.scheduled_job("interval", seconds=29, id="update_open_orders")  # type: ignore[untyped-decorator]
    def update() -> None: ...

    with pytest.raises(UntaggedJobError, match=r"^Job id 'typo' has no tag"):
        scheduler.scheduled_job("interval", seconds=29, id="typo")(update)
    assert [job.id for job in scheduler.get_jobs()] == ["update_open_orders"]


def test_lenient_mode_warns_once_per_untagged_id_and_runs_the_job_untagged(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler()
    connect(scheduler, registry, strict=False)
    events = Events(scheduler)
    seen: list[Any] = []

    def mystery() -> None:
        seen.append(current_job())
        log.info("mystery ran")

    scheduler.add_job(mystery, id="mystery", next_run_time=None)
    scheduler.add_job(mystery, id="mystery", replace_existing=True)
    scheduler.start()
    events.wait(1)

    assert seen == [None]
    assert of(logs, "otel_jobtags.scheduler") == [
        CapturedLog(
            level="WARNING",
            logger="otel_jobtags.scheduler",
            message=(
                "Job id 'mystery' has no tag: its records are not tagged; define one with "
                f"registry.define('NAME', 'mystery', ...) (tagged job ids: {KNOWN})"
            ),
            job_tag=None,
            job_id=None,
        )
    ]
    assert [(r.message, r.job_tag) for r in of(logs, "app")] == [("mystery ran", None)]
    assert of(logs, "otel_jobtags.runs") == []


def test_connecting_a_connected_scheduler_again_is_refused(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    scheduler = make_scheduler()
    first = connect(scheduler, registry)
    with pytest.raises(
        JobTagsError,
        match=(
            r"^BackgroundScheduler is already connected to TagRegistry\(AUTO_REBAL, ORDER_UPDATE, "
            r"QUEUE_REBAL, DAILY_SUMMARY, MANUAL_FIX\): call disconnect\(\) on that connection first$"
        ),
    ):
        connect(scheduler, registry)
    first.disconnect()
    connect(scheduler, registry).disconnect()


def test_disconnect_restores_the_scheduler_and_later_runs_are_untagged(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    scheduler = make_scheduler()
    executor = scheduler._executors["default"]
    connection = connect(scheduler, registry)
    assert "add_job" in vars(scheduler) and "submit_job" in vars(executor)
    connection.disconnect()
    connection.disconnect()  # twice is harmless

    assert "add_job" not in vars(scheduler) and "submit_job" not in vars(executor)
    assert scheduler._listeners == []
    assert connection.connected is False
    events = Events(scheduler)
    seen: list[Any] = []
    scheduler.add_job(lambda: seen.append(current_job()), id="mystery")  # no longer checked
    scheduler.start()
    events.wait(1)
    assert seen == [None]


# ---------------------------------------------------------------------------
# Scheduler against registry.
# ---------------------------------------------------------------------------


def test_unscheduled_tags_are_the_tags_whose_job_is_not_scheduled(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    scheduler = make_scheduler()
    scheduler.add_job(print, "interval", seconds=29, id="update_open_orders")
    scheduler.add_job(print, "interval", seconds=1, id="queue_rebalancer")
    scheduler.add_job(print, "interval", seconds=1, id="mystery")
    connection = connect(scheduler, registry, strict=False)

    assert connection.unscheduled_tags() == (registry.AUTO_REBAL, registry.DAILY_SUMMARY)
    assert connection.unscheduled_tags(include_manual=True) == (
        registry.AUTO_REBAL,
        registry.DAILY_SUMMARY,
        registry.MANUAL_FIX,
    )
    assert connection.untagged_jobs() == ("mystery",)


def test_schedule_mismatches_report_each_tagged_job_whose_trigger_differs(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry
) -> None:
    scheduler = make_scheduler()
    scheduler.add_job(print, CronTrigger(minute=17), id="auto_rebalance")  # as tagged
    scheduler.add_job(print, IntervalTrigger(seconds=30), id="update_open_orders")
    scheduler.add_job(print, IntervalTrigger(seconds=1), id="queue_rebalancer")  # as tagged
    scheduler.add_job(print, CronTrigger(hour=9, minute=5), id="send_daily_summary")
    scheduler.add_job(print, IntervalTrigger(hours=1), id="manual_fix")
    connection = connect(scheduler, registry)

    assert [str(m) for m in connection.schedule_mismatches()] == [
        "[ORDER_UPDATE] update_open_orders: the tag says 'every 29 s', the scheduler has "
        "interval[0:00:30]; it runs every 30 s, not every 29 s",
        "[DAILY_SUMMARY] send_daily_summary: the tag says 'daily 09:00', the scheduler has "
        "cron[hour='9', minute='5']; it runs at 09:05 instead of 09:00",
        "[MANUAL_FIX] manual_fix: the tag says 'manual', the scheduler has interval[1:00:00]; "
        "the tag's schedule is manual, but the scheduler runs it on a trigger",
    ]
    [first, *_] = connection.schedule_mismatches()
    assert (first.tag, first.job_id, first.expected) == (
        registry.ORDER_UPDATE,
        "update_open_orders",
        parse_schedule("every 29 s"),
    )


@pytest.mark.parametrize(
    ("schedule", "trigger", "reason"),
    [
        ("every 30 s", IntervalTrigger(seconds=30), None),
        ("every 5 min", IntervalTrigger(minutes=5), None),
        ("every 30 s", IntervalTrigger(seconds=29), "it runs every 29 s, not every 30 s"),
        ("every 30 s", IntervalTrigger(seconds=1.5), "it runs every 1.5 s, not every 30 s"),
        ("every 1 h", IntervalTrigger(minutes=90), "it runs every 90 min, not every 1 h"),
        (
            "every 30 s",
            CronTrigger(second="*/30"),
            "the tag's schedule is an interval (every 30 s), but the trigger is not an interval trigger",
        ),
        ("daily 09:00", CronTrigger(hour=9, minute=0), None),
        ("daily 09:00", CronTrigger.from_crontab("0 9 * * *"), None),
        ("hourly at minute 17", CronTrigger(minute=17), None),
        ("cron: */15 9-17 * * *", CronTrigger(minute="0,15,30,45", hour="9-17"), None),
        ("cron: 0 9 * * 1", CronTrigger(day_of_week="mon", hour=9, minute=0), None),
        ("cron: 0 9 1 1 *", CronTrigger(month=1, day=1, hour=9, minute=0), None),
        ("daily 09:00", CronTrigger(hour=9, minute=5), "it runs at 09:05 instead of 09:00"),
        ("daily 09:00", CronTrigger(hour=9, minute=0, second=30), "it runs at 09:00:30 instead of 09:00"),
        (
            "hourly at minute 17",
            CronTrigger(minute="*/20"),
            "it runs at 00:00, 00:20, 00:40, 01:00, ... (72 times a day) instead of "
            "00:17, 01:17, 02:17, 03:17, ... (24 times a day)",
        ),
        (
            "hourly at minute 17",
            CronTrigger(minute=17, second="*"),
            "it runs at 00:17, 00:17:01, 00:17:02, 00:17:03, ... (1440 times a day) instead of "
            "00:17, 01:17, 02:17, 03:17, ... (24 times a day)",
        ),
        ("hourly at minute 17", CronTrigger(second="*/10"), "it runs more than once a minute, all day long"),
        (
            # 3.x from_crontab reads day of week 1 as Tuesday; cron means Monday.
            "cron: 0 9 * * 1",
            CronTrigger.from_crontab("0 9 * * 1"),
            "it does not run on Mon 2025-01-06, where the tag's schedule does",
        ),
        (
            "daily 09:00",
            CronTrigger(day_of_week="mon-fri", hour=9, minute=0),
            "it does not run on Sat 2025-01-04, where the tag's schedule does",
        ),
        (
            "cron: 0 9 * * 1-5",
            CronTrigger(hour=9, minute=0),
            "it runs on Sat 2025-01-04, where the tag's schedule does not",
        ),
        (
            "cron: 0 9 29 2 *",
            CronTrigger(month=2, day="last", hour=9, minute=0),
            "it runs on Fri 2025-02-28, where the tag's schedule does not",
        ),
        (
            "daily 09:00",
            IntervalTrigger(days=1),
            "the tag's schedule is a cron expression (0 9 * * *), but the trigger is not a cron trigger",
        ),
        ("manual", None, None),
        ("manual", DateTrigger(datetime(2030, 1, 1, tzinfo=timezone.utc)), None),
        (
            "manual",
            CronTrigger(minute=0),
            "the tag's schedule is manual, but the scheduler runs it on a trigger",
        ),
    ],
)
def test_compare_schedule(schedule: str, trigger: Any, reason: str | None) -> None:
    assert compare_schedule(parse_schedule(schedule), trigger) == reason


@pytest.mark.parametrize(
    "schedule",
    [
        "every 1 s",
        "every 30 s",
        "every 5 min",
        "daily 09:05",
        "hourly at minute 0",
        "cron: 0 9 * * 1",
        "cron: 0 9 * * 0",
        "cron: 0 9 * * 7",
        "cron: */15 9-17 * * 1-5",
        "cron: 50/20 * * * *",
        "cron: 0 9 13 * 5",
        "cron: * 9 * * *",
    ],
)
def test_trigger_for_builds_a_trigger_that_follows_the_schedule(schedule: str) -> None:
    parsed = parse_schedule(schedule)
    trigger = trigger_for(parsed, timezone="UTC")
    start = datetime(2026, 3, 1, 23, 59, 30, tzinfo=timezone.utc)  # a Sunday night
    fired, previous, now = [], None, start
    for _ in range(300):  # the trigger's own next fire times, as APScheduler asks for them
        previous = trigger.get_next_fire_time(previous, now)
        fired.append(previous)
        now = previous + timedelta(seconds=1)
    if isinstance(parsed, Interval):
        assert {b - a for a, b in itertools.pairwise(fired)} == {parsed.period}
    else:
        assert isinstance(parsed, Cron)
        expected, t = [], start.replace(tzinfo=None)
        for _ in range(300):
            t = parsed.next_after(t)
            expected.append(t.replace(tzinfo=timezone.utc))
        assert fired == expected
    assert compare_schedule(parsed, trigger) is None


def test_trigger_for_a_manual_schedule_is_none(registry: TagRegistry) -> None:
    assert trigger_for(registry.MANUAL_FIX) is None


# ---------------------------------------------------------------------------
# Flood control.
# ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_default_policy_summarises_successes_of_jobs_running_every_5_s_or_more_often(
    registry: TagRegistry,
) -> None:
    assert default_run_record_policy(registry.QUEUE_REBAL) == RunRecordPolicy("summary", timedelta(minutes=5))
    assert default_run_record_policy(registry.ORDER_UPDATE) == RunRecordPolicy("each")
    assert default_run_record_policy(registry.MANUAL_FIX) == RunRecordPolicy("each")


def test_a_frequent_jobs_successes_are_summarised_at_most_every_interval_and_failures_always_logged(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    clock = FakeClock()
    scheduler = make_scheduler()
    connection = connect(scheduler, registry, clock=clock)
    events = Events(scheduler)
    outcomes = iter(["ok", "ok", "ok", "fail", "ok"])

    def rebalance() -> None:
        log.debug("rebalancing")
        if next(outcomes) == "fail":
            raise RuntimeError("queue locked")

    scheduler.add_job(rebalance, "interval", hours=1, id="queue_rebalancer", next_run_time=utc_now())
    scheduler.start()
    events.wait(1)  # the first success is recorded, and says what follows
    for runs, elapsed in ((2, 10), (3, 20), (4, 30), (5, 300)):
        clock.now = 1000.0 + elapsed
        scheduler.modify_job("queue_rebalancer", next_run_time=utc_now())
        events.wait(runs)

    run_records = of(logs, "otel_jobtags.runs")
    assert [(r.level, re.sub(r"\d+\.\d ms", "N ms", r.message)) for r in run_records] == [
        ("INFO", "[QUEUE_REBAL] run finished in N ms; further successful runs are summarised every 5 min"),
        ("ERROR", "[QUEUE_REBAL] run failed after N ms: RuntimeError: queue locked"),
        ("INFO", "[QUEUE_REBAL] 3 runs finished in the last 5 min, N ms on average"),
    ]
    summary = run_records[-1]
    inside = of(logs, "app")
    assert summary.run_id == inside[-1].run_id  # written at the end of the run that made it due
    mean = summary.attributes["job.duration_ms"]
    assert summary.message == f"[QUEUE_REBAL] 3 runs finished in the last 5 min, {mean:.1f} ms on average"
    assert {
        k: v for k, v in summary.attributes.items() if k not in ("job.duration_ms", "job.scheduled_time")
    } == (
        tagged("QUEUE_REBAL", "queue_rebalancer", summary.run_id, **{"job.outcome": "success", "job.runs": 3})
    )
    assert len(inside) == 5
    connection.disconnect()
    assert len(of(logs, "otel_jobtags.runs")) == 3  # nothing waiting: nothing flushed


def test_disconnect_writes_the_summary_that_is_waiting(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    clock = FakeClock()
    scheduler = make_scheduler()
    connection = connect(scheduler, registry, clock=clock)
    events = Events(scheduler)
    scheduler.add_job(lambda: None, "interval", hours=1, id="queue_rebalancer", next_run_time=utc_now())
    scheduler.start()
    events.wait(1)
    clock.now += 42
    scheduler.modify_job("queue_rebalancer", next_run_time=utc_now())
    events.wait(2)
    scheduler.shutdown()  # the shutdown event flushes too
    connection.disconnect()

    first, flushed = of(logs, "otel_jobtags.runs")
    mean = flushed.attributes["job.duration_ms"]
    assert flushed.message == f"[QUEUE_REBAL] 1 run finished in the last 42 s, {mean:.1f} ms on average"
    assert (flushed.job_tag, flushed.attributes["job.runs"], flushed.run_id != first.run_id) == (
        "QUEUE_REBAL",
        1,
        True,
    )


def test_run_records_policy_per_job_overrides_the_default(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler()
    connection = connect(
        scheduler,
        registry,
        run_records={"auto_rebalance": RunRecordPolicy("off"), "QUEUE_REBAL": RunRecordPolicy("each")},
    )
    assert connection.policy_for("queue_rebalancer") == RunRecordPolicy("each")
    assert connection.policy_for("update_open_orders") == RunRecordPolicy("each")
    events = Events(scheduler)
    now = utc_now()
    scheduler.add_job(lambda: None, id="auto_rebalance", next_run_time=now)
    scheduler.add_job(lambda: None, id="queue_rebalancer", next_run_time=now)
    scheduler.start()
    events.wait(2)
    scheduler.add_job(lambda: 1 / 0, id="auto_rebalance", next_run_time=utc_now())
    events.wait(3)

    assert sorted((r.job_tag, r.level) for r in of(logs, "otel_jobtags.runs")) == [
        ("AUTO_REBAL", "ERROR"),  # failures are always recorded
        ("QUEUE_REBAL", "INFO"),
    ]


def test_run_records_off_keeps_the_job_context(
    make_scheduler: Callable[..., BackgroundScheduler], registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    scheduler = make_scheduler()
    connection = connect(scheduler, registry, run_records=False)
    assert connection.policy_for("auto_rebalance") is None
    events = Events(scheduler)
    scheduler.add_job(lambda: log.info("working"), id="auto_rebalance", next_run_time=utc_now())
    scheduler.start()
    events.wait(1)
    assert [(r.message, r.job_tag) for r in of(logs, "app", "otel_jobtags.runs")] == [
        ("[AUTO_REBAL] working", "AUTO_REBAL")
    ]


@pytest.mark.parametrize(
    ("run_records", "error", "message"),
    [
        (
            {"nope": RunRecordPolicy()},
            UnknownJobError,
            r"^Unknown job 'nope': known jobs are auto_rebalance, .*$",
        ),
        (
            {"auto_rebalance": "summary"},
            ConfigError,
            r"^Invalid run_records\['auto_rebalance'\]='summary': give a RunRecordPolicy, "
            r"e\.g\. RunRecordPolicy\('summary'\)$",
        ),
        (
            "summary",
            ConfigError,
            r"^Invalid run_records='summary': give True, False or a mapping of job id to RunRecordPolicy$",
        ),
    ],
)
def test_invalid_run_records_are_refused(
    make_scheduler: Callable[..., BackgroundScheduler],
    registry: TagRegistry,
    run_records: Any,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        connect(make_scheduler(), registry, run_records=run_records)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"successes": "some"}, r"^Invalid successes='some': use 'each', 'summary' or 'off'$"),
        (
            {"every": timedelta(0)},
            r"^Invalid every=datetime\.timedelta\(0\): give a positive timedelta, "
            r"e\.g\. timedelta\(minutes=5\)$",
        ),
    ],
)
def test_invalid_run_record_policies_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunRecordPolicy(**kwargs)


# ---------------------------------------------------------------------------
# The demo runs on connect().
# ---------------------------------------------------------------------------


def test_importing_the_package_does_not_import_apscheduler() -> None:
    import subprocess
    import sys

    import otel_jobtags

    code = "import sys, otel_jobtags; print(sorted(m for m in sys.modules if m.startswith('apscheduler')))"
    tree = str(Path(otel_jobtags.__file__).parents[1])  # this tree's package, not another install
    env = {**os.environ, "PYTHONPATH": tree}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout == "[]\n"


def test_a_run_cancelled_at_shutdown_is_recorded_as_cancelled_not_as_a_failure(
    registry: TagRegistry, logs: list[CapturedLog]
) -> None:
    async def main() -> None:
        scheduler = AsyncIOScheduler(job_defaults=NEVER_MISSED, timezone="UTC")
        connection = connect(scheduler, registry)
        started = asyncio.Event()

        async def long_job() -> None:
            started.set()
            await asyncio.Event().wait()  # until cancelled

        scheduler.add_job(long_job, id="send_daily_summary", next_run_time=utc_now())
        scheduler.start()
        await asyncio.wait_for(started.wait(), 10)
        scheduler.shutdown(wait=False)  # cancels the running coroutine
        for _ in range(100):
            await asyncio.sleep(0.01)
            if any(r.logger == "otel_jobtags.runs" for r in logs):
                break
        connection.disconnect()

    asyncio.run(main())
    (record,) = [r for r in logs if r.logger == "otel_jobtags.runs"]
    assert (record.level, record.job_tag, record.attributes["job.outcome"]) == (
        "WARNING",
        "DAILY_SUMMARY",
        "cancelled",
    )
    assert re.fullmatch(
        r"\[DAILY_SUMMARY\] run cancelled after \d+\.\d ms: (asyncio\.exceptions\.)?CancelledError",
        record.message,
    )
