"""Running a job function as the scheduler would, in a user's own test: context, run id, run record."""

from __future__ import annotations

import asyncio
import logging
import re
import traceback

import pytest

from otel_jobtags import ConfigError, TagRegistry, UnknownJobError, current_job
from otel_jobtags.scheduler import RunRecordPolicy, arun_job
from otel_jobtags.testing import CapturedLog, capture_logs, run_job

log = logging.getLogger("app.jobs")


@pytest.fixture
def registry() -> TagRegistry:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "rebalance the portfolio", "hourly at minute 17")
    jobs.define("QUEUE_REBAL", "queue_rebalancer", "re-order the queue", "every 1 s")
    return jobs


def rebalance(items: int, *, dry_run: bool) -> int:
    log.info("rebalanced %d items (dry run: %s)", items, dry_run)
    return items


def broker_down() -> None:
    raise RuntimeError("broker down")


def test_a_job_runs_in_its_context_with_one_run_id_and_its_run_record(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs:
        run = run_job(registry, "auto_rebalance", rebalance, 3, dry_run=True)

    assert (run.tag.name, run.outcome, run.ok, run.value, run.error) == (
        "AUTO_REBAL",
        "success",
        True,
        3,
        None,
    )
    assert re.fullmatch(r"[0-9a-f]{16}", run.run_id)
    line, record = logs
    assert line == CapturedLog(
        level="INFO",
        logger="app.jobs",
        message="[AUTO_REBAL] rebalanced 3 items (dry run: True)",
        job_tag="AUTO_REBAL",
        job_id="auto_rebalance",
        run_id=run.run_id,
        attributes={"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance", "job.run_id": run.run_id},
    )
    assert record == CapturedLog(
        level="INFO",
        logger="otel_jobtags.runs",
        message=f"[AUTO_REBAL] run finished in {run.duration_ms:.1f} ms",
        job_tag="AUTO_REBAL",
        job_id="auto_rebalance",
        run_id=run.run_id,
        attributes={
            "job.outcome": "success",
            "job.duration_ms": run.duration_ms,
            "job.tag": "AUTO_REBAL",
            "job.id": "auto_rebalance",
            "job.run_id": run.run_id,
        },
    )
    assert current_job() is None


def test_a_failure_is_returned_and_recorded_once_with_the_jobs_traceback(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs:
        run = run_job(registry, "AUTO_REBAL", broker_down)

    assert (run.outcome, run.ok, type(run.error), str(run.error)) == (
        "error",
        False,
        RuntimeError,
        "broker down",
    )
    (record,) = logs
    assert (record.level, record.message, record.run_id) == (
        "ERROR",
        f"[AUTO_REBAL] run failed after {run.duration_ms:.1f} ms: RuntimeError: broker down",
        run.run_id,
    )
    assert traceback.format_exception(*record.exc_info) == [
        "Traceback (most recent call last):\n",
        f'  File "{__file__}", line {broker_down.__code__.co_firstlineno + 1}, in broker_down\n'
        '    raise RuntimeError("broker down")\n',
        "RuntimeError: broker down\n",
    ]


def test_run_records_follow_the_policy_given(registry: TagRegistry) -> None:
    with capture_logs(registry, logger="otel_jobtags.runs") as logs:
        quiet = run_job(registry, "queue_rebalancer", lambda: None)
        unrecorded = run_job(registry, "queue_rebalancer", lambda: None, run_records=False)
        off = run_job(registry, "queue_rebalancer", lambda: None, run_records=RunRecordPolicy("off"))
    assert [(r.run_id, r.message) for r in logs] == [
        (
            quiet.run_id,
            f"[QUEUE_REBAL] run finished in {quiet.duration_ms:.1f} ms; "
            "further successful runs are summarised every 5 min",
        )
    ]
    assert unrecorded.ok and off.ok


def test_a_coroutine_job_runs_with_arun_job(registry: TagRegistry) -> None:
    async def fetch() -> str:
        await asyncio.sleep(0)
        log.info("fetched")
        return "done"

    with capture_logs(registry, logger="app") as logs:
        run = asyncio.run(arun_job(registry.resolve("auto_rebalance"), fetch))
    assert run.value == "done"
    assert [(r.message, r.run_id) for r in logs] == [("[AUTO_REBAL] fetched", run.run_id)]
    with pytest.raises(
        ConfigError, match=r"^<function .*fetch.*> is a coroutine function: use 'await arun_job\(\.\.\.\)'$"
    ):
        run_job(registry, "auto_rebalance", fetch)


def test_an_interrupt_is_recorded_as_cancelled_and_raised_again(registry: TagRegistry) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with capture_logs(registry) as logs, pytest.raises(KeyboardInterrupt):
        run_job(registry, "auto_rebalance", interrupted)
    assert [(r.level, r.attributes["job.outcome"]) for r in logs] == [("WARNING", "cancelled")]


def test_an_unknown_job_is_refused_before_the_function_runs(registry: TagRegistry) -> None:
    called = []
    with pytest.raises(UnknownJobError):
        run_job(registry, "nightly_export", called.append, 1)
    assert called == []
