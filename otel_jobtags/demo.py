"""An example application's 13 background jobs, as a ready registry and a runnable demo.

``JOBS`` is the registry of the original trading web server's jobs, with
their job ids, descriptions and schedules. :func:`run_demo` (the
``otel-jobtags demo`` command) runs them on APScheduler for a short time, each
logging in the classic ``[TAG] message`` style, writes the tagged text log to a file, prints a
per-job summary and, when an OTLP endpoint is configured, exports there too.
The scheduler is connected with :func:`otel_jobtags.scheduler.connect`, so the
job bodies know nothing of contexts, and every run leaves a run record.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from .errors import JobTagsError
from .handler import ATTR_JOB_TAG, JobTagFilter, JobTagFormatter
from .scheduler import FREQUENT_PERIOD, PeriodicSummary
from .tags import JobTag, TagRegistry, format_background_log

__all__ = ["JOBS", "JobSummary", "run_demo"]

JOBS = TagRegistry()
"""The example application's 13 jobs."""

# fmt: off
# constant / tag name, job id, what it does, schedule -- the job table.
PRECISION_CACHE = JOBS.define("PRECISION_CACHE", "precision_cache",
                              "refresh the price-precision cache", "every 30 s")
SYMBOL_VALID = JOBS.define("SYMBOL_VALID", "symbol_validator",
                           "refresh the symbol validator", "every 30 s")
MARKET_INFO = JOBS.define("MARKET_INFO", "market_info",
                          "refresh market info", "every 30 s")
PRICE_CACHE = JOBS.define("PRICE_CACHE", "price_cache",
                          "refresh the price cache", "every 5 s")
ORDER_UPDATE = JOBS.define("ORDER_UPDATE", "update_open_orders",
                           "update the status of open orders", "every 29 s")
PNL_CALC = JOBS.define("PNL_CALC", "update_positions",
                       "compute unrealised profit and loss", "every 29 s")
DAILY_SUMMARY = JOBS.define("DAILY_SUMMARY", "send_daily_summary",
                            "send the daily summary", "daily 09:00")
PERF_CALC = JOBS.define("PERF_CALC", "calculate_daily_performance",
                        "compute daily performance", "daily 09:05")
AUTO_REBAL = JOBS.define("AUTO_REBAL", "auto_rebalance",
                         "automatic portfolio rebalancing", "hourly at minute 17")
TOKEN_REFRESH = JOBS.define("TOKEN_REFRESH", "securities_token_refresh",
                            "refresh the broker's OAuth token", "hourly at minute 0")
QUEUE_REBAL = JOBS.define("QUEUE_REBAL", "queue_rebalancer",
                          "re-order the pending-order queue", "every 1 s")
LOCK_RELEASE = JOBS.define("LOCK_RELEASE", "release_stale_processing",
                           "release stale processing locks", "every 5 min")
WS_HEALTH = JOBS.define("WS_HEALTH", "websocket_health_monitor",
                        "monitor WebSocket connection health", "every 30 s")
# fmt: on

"""Jobs running at least this often follow the high-frequency rule (quiet exit, periodic summary)."""
_DEMO_SUMMARY_EVERY = timedelta(seconds=10)
"""Production code summarises every 5 minutes; the demo sooner, so that a short run shows summaries."""

log = logging.getLogger("otel_jobtags.demo.app")
exchange_log = logging.getLogger("otel_jobtags.demo.exchange")
"""Stands for a library the jobs call: it knows nothing of jobs or tags."""


class DemoJobError(RuntimeError):
    """The occasional failure a demo job simulates."""


def _exchange_call(endpoint: str, rng: random.Random) -> int:
    # A "library" function: its records are attributed through the job context.
    exchange_log.debug("GET %s -> 200 (%d ms)", endpoint, rng.randint(20, 180))
    return rng.randint(0, 6)


def _make_job(tag: JobTag, rng: random.Random, failure_rate: float) -> Callable[[], None]:
    """A job body in the classic style: start, detail, done, sometimes a failure.

    High-frequency jobs follow the rule: quiet exit when there is
    nothing to do, and a status summary at most every few minutes.
    """
    frequent = tag.schedule.period is not None and tag.schedule.period <= FREQUENT_PERIOD
    status = PeriodicSummary("📊 status summary", _DEMO_SUMMARY_EVERY)
    state = {"runs": 0}

    def job() -> None:
        state["runs"] += 1
        first = state["runs"] == 1
        items = _exchange_call(f"/api/{tag.job_id}", rng)
        if frequent and not first:
            if items == 0:
                return  # the quiet exit: nothing to do, nothing logged
            status.record(processed=items)
            status.maybe_log(log)
            return
        # Call sites that format the prefix themselves still work.
        log.log(logging.DEBUG if frequent else logging.INFO, format_background_log(tag, "🔄 job started"))
        log.debug("processed: %d items", items)
        if first and tag == TOKEN_REFRESH:
            # Left to the scheduler: the run record reports it, with the traceback.
            raise DemoJobError(f"upstream answered 401 for {tag.job_id}")
        try:
            if (first and tag == AUTO_REBAL) or rng.random() < failure_rate:
                raise DemoJobError(f"upstream answered 503 for {tag.job_id}")
        except DemoJobError as exc:
            log.error("❌ failed: %s", exc, exc_info=True)
            return
        if items > 4:
            log.warning("⚠️ backlog: %d items waiting", items)
        log.info("✅ done - processed: %d items", items)

    job.__name__ = tag.job_id
    job.__qualname__ = tag.job_id
    return job


def _start_scheduler(jobs: dict[str, Callable[[], None]]) -> tuple[Any, Any]:
    """Schedule the jobs on their tags' schedules, connected to ``JOBS``; each runs once at start."""
    try:
        from apscheduler.schedulers.background import BackgroundScheduler

        from .scheduler import RunRecordPolicy, connect, trigger_for
    except ImportError:  # pragma: no cover - depends on the environment
        raise JobTagsError("The demo runs on APScheduler: pip install 'otel-jobtags[scheduler]'") from None
    from datetime import datetime

    scheduler = BackgroundScheduler(job_defaults={"misfire_grace_time": 30, "coalesce": True})
    # Frequent jobs' successes are summarised; sooner than the default 5 min, so a short demo shows it.
    policies = {
        tag.job_id: RunRecordPolicy("summary", _DEMO_SUMMARY_EVERY)
        for tag in JOBS
        if tag.schedule.period is not None and tag.schedule.period <= FREQUENT_PERIOD
    }
    connection = connect(scheduler, JOBS, run_records=policies)
    now = datetime.now().astimezone()
    for job_id, func in jobs.items():
        trigger = trigger_for(JOBS.by_job_id(job_id))
        if trigger is None:
            continue
        # Run every job once at start, so that each tag shows up in a short demo.
        # No job_context here: connect() puts every run in its job's context.
        scheduler.add_job(func, trigger, id=job_id, next_run_time=now)
    scheduler.start()
    return scheduler, connection


@dataclass
class JobSummary:
    """What the demo saw one job log."""

    tag: JobTag
    levels: Counter[str] = field(default_factory=Counter)
    last_message: str = ""

    @property
    def records(self) -> int:
        """All records of the job."""
        return sum(self.levels.values())

    @property
    def errors(self) -> int:
        """Records at ERROR or above."""
        return self.levels["ERROR"] + self.levels["CRITICAL"]


class _SummaryHandler(logging.Handler):
    def __init__(self, registry: TagRegistry) -> None:
        super().__init__(logging.DEBUG)
        self.registry = registry
        self.summaries = {tag.name: JobSummary(tag) for tag in registry}
        self.addFilter(JobTagFilter(registry))
        self._lock_summary = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        name = record.__dict__.get(ATTR_JOB_TAG)
        if name not in self.summaries:
            return
        with self._lock_summary:
            summary = self.summaries[name]
            summary.levels[record.levelname] += 1
            summary.last_message = record.getMessage().splitlines()[0]


def _print_summary(summaries: list[JobSummary], out: TextIO) -> None:
    head = (
        f"{'job':<16} {'job id':<28} {'records':>7} {'DEBUG':>6} {'INFO':>5} "
        f"{'WARN':>5} {'ERROR':>6}  last message"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for s in summaries:
        print(
            f"{s.tag.name:<16} {s.tag.job_id:<28} {s.records:>7} {s.levels['DEBUG']:>6} "
            f"{s.levels['INFO']:>5} {s.levels['WARNING']:>5} {s.errors:>6}  {s.last_message[:60]}",
            file=out,
        )


def run_demo(
    *,
    duration: float = 20.0,
    log_file: str | Path = "otel-jobtags-demo.log",
    endpoint: str | None = None,
    protocol: str | None = None,
    service_name: str = "otel-jobtags-demo",
    failure_rate: float = 0.05,
    seed: int | None = None,
    out: TextIO | None = None,
) -> dict[str, JobSummary]:
    """Run the 13 example jobs on APScheduler and report what each logged.

    Every job runs once at start (so each tag appears even for daily jobs),
    then on its real schedule. The tagged text log goes to ``log_file``; when
    ``endpoint`` is given or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, records are
    also exported over OTLP.

    Args:
        duration: seconds to run; ``0`` runs until interrupted.
        log_file: where the text log is written (appended).
        endpoint: OTLP endpoint; else ``OTEL_EXPORTER_OTLP_(LOGS_)ENDPOINT``.
        protocol: ``grpc`` or ``http/protobuf``.
        service_name: ``service.name`` of the exported records.
        failure_rate: chance that a run fails with a traceback.
        seed: seed of the random numbers, for a repeatable run.
        out: where the summary is printed (stdout by default).

    Returns:
        The per-job summaries, by tag name.
    """
    import os
    import sys

    from .configure import install
    from .context import use_registry

    out = out if out is not None else sys.stdout
    rng = random.Random(seed)
    exporting_to = (
        endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    # First, so that an invalid export setting fails before logging is changed.
    installation = (
        install(JOBS, service_name=service_name, endpoint=endpoint, protocol=protocol)
        if exporting_to
        else None
    )
    root = logging.getLogger()
    previous_level = root.level
    root.setLevel(logging.INFO)
    demo_logger = logging.getLogger("otel_jobtags.demo")
    previous_demo_level = demo_logger.level
    demo_logger.setLevel(logging.DEBUG)  # the jobs' detail lines, not every library's
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(JobTagFormatter("%(asctime)s %(levelname)s: %(message)s"))
    file_handler.addFilter(JobTagFilter(JOBS))
    summary = _SummaryHandler(JOBS)
    root.addHandler(file_handler)
    root.addHandler(summary)
    previous_registry = use_registry(JOBS)
    print(
        f"otel-jobtags demo: {len(JOBS)} jobs for {duration:g} s; text log: {log_file}"
        + (
            f"; exporting to {installation.settings.endpoint}"
            if installation and installation.settings
            else ""
        ),
        file=out,
        flush=True,
    )
    apscheduler_logger = logging.getLogger("apscheduler")
    previous_apscheduler_level = apscheduler_logger.level
    # Its per-run "Running job"/"executed" lines are replaced by the tagged run records.
    apscheduler_logger.setLevel(logging.WARNING)
    jobs = {tag.job_id: _make_job(tag, rng, failure_rate) for tag in JOBS}
    scheduler, connection = _start_scheduler(jobs)
    try:
        deadline = time.monotonic() + duration if duration > 0 else float("inf")
        while time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.shutdown(wait=True)
        connection.disconnect()  # writes the success summaries still waiting
        apscheduler_logger.setLevel(previous_apscheduler_level)
        if installation is not None:
            installation.shutdown()
        root.removeHandler(file_handler)
        root.removeHandler(summary)
        file_handler.close()
        root.setLevel(previous_level)
        demo_logger.setLevel(previous_demo_level)
        use_registry(previous_registry)
    summaries = list(summary.summaries.values())
    _print_summary(summaries, out)
    return {s.tag.name: s for s in summaries}
