"""APScheduler's own per-run lines, as an application's log file shows them.

Real APScheduler schedulers; the application's logging is a ``dictConfig``
with a file handler, as a user writes it. Each test waits on the scheduler's
events, never on sleeps.
"""

from __future__ import annotations

import logging
import logging.config
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from otel_jobtags import ConfigError, TagRegistry, current_job
from otel_jobtags.scheduler import connect
from otel_jobtags.testing import capture_logs

log = logging.getLogger("app")
NEVER_MISSED = {"misfire_grace_time": None}
RUN_ID = r"[0-9a-f]{16}"
MS = r"\d+\.\d"


@pytest.fixture
def registry() -> TagRegistry:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "rebalance the portfolio", "hourly at minute 17")
    jobs.define("QUEUE_REBAL", "queue_rebalancer", "re-order the queue", "every 1 s")
    return jobs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    assert current_job() is None


def app_log_file(tmp_path: Path) -> Path:
    """The application's own logging: a text file at INFO, with the job fields in each line."""
    path = tmp_path / "app.log"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"jobtags": {"()": "otel_jobtags.JobTagFilter"}},
            "formatters": {
                "jobs": {
                    "class": "otel_jobtags.JobTagFormatter",
                    "format": "%(levelname)s %(name)s run=%(job.run_id)s: %(message)s",
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(path),
                    "filters": ["jobtags"],
                    "formatter": "jobs",
                }
            },
            "root": {"level": "INFO", "handlers": ["file"]},
        }
    )
    return path


def lines(path: Path) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.read_text(encoding="utf-8").splitlines()


class Events:
    def __init__(self, scheduler: Any, mask: int) -> None:
        self.events: list[Any] = []
        self._changed = threading.Condition()
        scheduler.add_listener(self._on_event, mask)

    def _on_event(self, event: Any) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = 15) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.events) >= count, timeout), self.events


@pytest.fixture
def scheduler() -> Iterator[BackgroundScheduler]:
    made = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(2)}, job_defaults=NEVER_MISSED, timezone="UTC"
    )
    yield made
    if made.running:
        made.shutdown(wait=True)


def rebalance() -> None:
    log.info("rebalanced %d items", 5)


def broker_down() -> None:
    log.info("calling the broker")
    raise RuntimeError("broker down")


def assert_lines(actual: list[str], patterns: list[str]) -> list[re.Match[str]]:
    assert len(actual) == len(patterns), "\n".join(actual)
    matches = []
    for line, pattern in zip(actual, patterns, strict=True):
        match = re.fullmatch(pattern, line)
        assert match is not None, f"{line!r} does not match {pattern!r}"
        matches.append(match)
    return matches


def test_apschedulers_lines_carry_the_run_of_the_job_when_kept(
    scheduler: BackgroundScheduler, registry: TagRegistry, tmp_path: Path
) -> None:
    path = app_log_file(tmp_path)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)  # no "Added job" lines
    connect(scheduler, registry, apscheduler_lines="keep")
    events = Events(scheduler, EVENT_JOB_EXECUTED)
    scheduler.add_job(
        rebalance, "interval", hours=1, id="auto_rebalance", next_run_time=datetime.now(timezone.utc)
    )
    scheduler.start()
    events.wait(1)
    scheduler.shutdown(wait=True)

    job = r'"rebalance \(trigger: interval\[1:00:00\], next run at: [^)]+\)"'
    matches = assert_lines(
        lines(path),
        [
            rf"INFO apscheduler\.executors\.default run=({RUN_ID}): \[AUTO_REBAL\] Running job {job} "
            r"\(scheduled at [^)]+\)",
            rf"INFO app run=({RUN_ID}): \[AUTO_REBAL\] rebalanced 5 items",
            rf"INFO otel_jobtags\.runs run=({RUN_ID}): \[AUTO_REBAL\] run finished in {MS} ms",
            rf"INFO apscheduler\.executors\.default run=({RUN_ID}): \[AUTO_REBAL\] Job {job} executed successfully",
        ],
    )
    assert len({match.group(1) for match in matches}) == 1  # one run, one run id


def test_a_failure_is_written_once_with_the_traceback_of_the_job_alone(
    scheduler: BackgroundScheduler, registry: TagRegistry, tmp_path: Path
) -> None:
    path = app_log_file(tmp_path)
    connect(scheduler, registry)
    events = Events(scheduler, EVENT_JOB_ERROR)
    scheduler.add_job(
        broker_down, "interval", hours=1, id="auto_rebalance", next_run_time=datetime.now(timezone.utc)
    )
    scheduler.start()
    events.wait(1)
    scheduler.shutdown(wait=True)

    raise_line = broker_down.__code__.co_firstlineno + 2
    matches = assert_lines(
        [line for line in lines(path) if not line.startswith("INFO apscheduler.scheduler")],
        [
            rf"INFO app run=({RUN_ID}): \[AUTO_REBAL\] calling the broker",
            rf"ERROR otel_jobtags\.runs run=({RUN_ID}): \[AUTO_REBAL\] run failed after {MS} ms: "
            "RuntimeError: broker down",
            # JobTagFormatter marks the continuation lines of a record with "  | "
            re.escape("  | Traceback (most recent call last):"),
            re.escape(f'  |   File "{__file__}", line {raise_line}, in broker_down'),
            re.escape('  |     raise RuntimeError("broker down")'),
            re.escape("  | RuntimeError: broker down"),
        ],
    )
    assert matches[0].group(1) == matches[1].group(1)


def test_the_failure_line_of_apscheduler_is_debug_without_a_traceback(
    scheduler: BackgroundScheduler, registry: TagRegistry
) -> None:
    connect(scheduler, registry)
    events = Events(scheduler, EVENT_JOB_ERROR)
    with capture_logs(registry, logger="apscheduler") as logs:
        scheduler.add_job(
            broker_down, "interval", hours=1, id="auto_rebalance", next_run_time=datetime.now(timezone.utc)
        )
        scheduler.start()
        events.wait(1)
        scheduler.shutdown(wait=True)
    runs = [r for r in logs if r.logger == "apscheduler.executors.default"]
    assert [(r.level, r.message.split(' "')[0], r.exc_info) for r in runs] == [
        ("DEBUG", "[AUTO_REBAL] Running job", None),
        ("DEBUG", "[AUTO_REBAL] Job", None),
    ]
    assert runs[1].message.endswith('" raised an exception')
    assert runs[0].run_id is not None and runs[0].run_id == runs[1].run_id


def test_a_quiet_job_writes_one_line_for_many_runs(
    scheduler: BackgroundScheduler, registry: TagRegistry, tmp_path: Path
) -> None:
    path = app_log_file(tmp_path)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
    connect(scheduler, registry)
    events = Events(scheduler, EVENT_JOB_EXECUTED)
    # From now on, not a second from now (the summary counts whole seconds).
    first = datetime.now(timezone.utc)
    scheduler.add_job(lambda: None, "interval", seconds=1, id="queue_rebalancer", next_run_time=first)
    scheduler.start()
    events.wait(3)
    scheduler.shutdown(wait=True)

    assert_lines(
        lines(path),
        [
            rf"INFO otel_jobtags\.runs run={RUN_ID}: \[QUEUE_REBAL\] run finished in {MS} ms; "
            "further successful runs are summarised every 5 min",
            # flushed at shutdown: the runs since the first one
            rf"INFO otel_jobtags\.runs run={RUN_ID}: \[QUEUE_REBAL\] \d+ runs? finished in the last \d+ s, "
            rf"{MS} ms on average",
        ],
    )


def test_a_skipped_run_is_said_once_and_attributed_to_its_job(
    scheduler: BackgroundScheduler, registry: TagRegistry, tmp_path: Path
) -> None:
    path = app_log_file(tmp_path)
    connect(scheduler, registry)
    skipped = Events(scheduler, EVENT_JOB_MAX_INSTANCES)
    release = threading.Event()
    scheduler.add_job(
        release.wait,
        "interval",
        seconds=0.1,
        id="queue_rebalancer",
        args=[30],
        next_run_time=datetime.now(timezone.utc),
    )
    scheduler.start()
    skipped.wait(1)
    release.set()
    scheduler.shutdown(wait=True)

    skips = [line for line in lines(path) if "skipped" in line]
    assert skips  # as many as the ticks while the first run blocked: one line each, ours
    assert_lines(
        skips,
        [
            rf"WARNING otel_jobtags\.runs run={RUN_ID}: \[QUEUE_REBAL\] run skipped: it was due at [^ ]+ "
            r"while earlier runs were still going \(max_instances reached\)"
        ]
        * len(skips),
    )


def test_apscheduler_lines_must_be_debug_or_keep(
    scheduler: BackgroundScheduler, registry: TagRegistry
) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^Invalid apscheduler_lines='quiet': use 'debug' \(APScheduler's per-run lines at DEBUG, "
        r"the run records say it at INFO\) or 'keep' \(as APScheduler writes them\)$",
    ):
        connect(scheduler, registry, apscheduler_lines="quiet")  # type: ignore[arg-type]


def test_disconnect_takes_the_filter_off_apschedulers_loggers(
    scheduler: BackgroundScheduler, registry: TagRegistry
) -> None:
    loggers = [logging.getLogger("apscheduler.scheduler"), logging.getLogger("apscheduler.executors.default")]
    before = [logger.filters[:] for logger in loggers]
    connection = connect(scheduler, registry)
    events = Events(scheduler, EVENT_JOB_EXECUTED)
    scheduler.add_job(
        rebalance, "interval", hours=1, id="auto_rebalance", next_run_time=datetime.now(timezone.utc)
    )
    scheduler.start()
    events.wait(1)
    assert [len(logger.filters) - len(filters) for logger, filters in zip(loggers, before, strict=True)] == [
        1,
        1,
    ]
    connection.disconnect()
    assert [logger.filters for logger in loggers] == before
