"""The run recorder: one record per run on the run-record logger, successes summarised."""

from __future__ import annotations

import logging
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from ..context import job_context
from ..tags import JobTag
from ._runs import (
    ATTR_JOB_OUTCOME,
    ATTR_JOB_SCHEDULED_TIME,
    RUNS_LOGGER,
    Outcome,
    RunRecordPolicy,
)
from ._summary import PeriodicSummary, SummarySnapshot, duration_text

__all__ = ["Recorder", "RunSpec", "new_run_id", "process_recorder", "user_traceback"]

_runs_log = logging.getLogger(RUNS_LOGGER)


def new_run_id() -> str:
    return secrets.token_hex(8)


@dataclass
class RunSpec:
    """What a run of one tagged job needs to know; pickled into process pools."""

    tag: JobTag
    policy: RunRecordPolicy | None
    """``None``: no run records."""
    connection_id: str
    recorder: Recorder | None = field(default=None, compare=False)
    """The connection's recorder; ``None`` after pickling, i.e. in a child process."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The recorder holds locks and a clock: a child process uses its own.
        return (RunSpec, (self.tag, self.policy, self.connection_id))

    def get_recorder(self) -> Recorder:
        if self.recorder is not None:
            return self.recorder
        return process_recorder(self.connection_id)


def _ours(tb: TracebackType) -> bool:
    name = tb.tb_frame.f_globals.get("__name__", "")
    return isinstance(name, str) and (name == "otel_jobtags" or name.startswith("otel_jobtags."))


def user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from the first frame that is not this package's: where the job's own code begins.

    The run record's traceback shows the job's frames, not the wrapper that ran it.
    """
    while tb is not None and tb.tb_next is not None and _ours(tb):
        tb = tb.tb_next
    return tb


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _attributes(outcome: Outcome, scheduled: datetime | None, **more: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {ATTR_JOB_OUTCOME: outcome.value}
    if scheduled is not None:
        attributes[ATTR_JOB_SCHEDULED_TIME] = scheduled.isoformat()
    attributes.update({f"job.{name}": value for name, value in more.items()})
    return attributes


@dataclass
class _Successes:
    """The successes of one job waiting for their summary."""

    tag: JobTag
    summary: PeriodicSummary
    last_run_id: str | None = None
    last_scheduled: datetime | None = None


class Recorder:
    """Writes the run records of one connection (in one process)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._successes: dict[str, _Successes] = {}

    def succeeded(self, spec: RunSpec, run_id: str, scheduled: datetime | None, duration_ms: float) -> None:
        policy = spec.policy
        if policy is None or policy.successes == "off":
            return
        if policy.successes == "each":
            _runs_log.info(
                "run finished in %.1f ms",
                duration_ms,
                extra=_attributes(Outcome.SUCCESS, scheduled, duration_ms=duration_ms),
            )
            return
        job_id = spec.tag.job_id
        snapshot: SummarySnapshot | None = None
        with self._lock:
            pending = self._successes.get(job_id)
            first = pending is None or pending.summary.every != policy.every
            if first:
                pending = _Successes(spec.tag, PeriodicSummary("runs", policy.every, clock=self._clock))
                self._successes[job_id] = pending
            else:
                assert pending is not None
                pending.summary.record(duration_ms=duration_ms)
                pending.last_run_id, pending.last_scheduled = run_id, scheduled
                snapshot = pending.summary.take()
        if first:
            _runs_log.info(
                "run finished in %.1f ms; further successful runs are summarised every %s",
                duration_ms,
                duration_text(policy.every.total_seconds()),
                extra=_attributes(Outcome.SUCCESS, scheduled, duration_ms=duration_ms),
            )
        elif snapshot is not None:
            self._log_summary(snapshot, scheduled)

    @staticmethod
    def _log_summary(snapshot: SummarySnapshot, scheduled: datetime | None) -> None:
        runs = snapshot.updates
        mean = round(snapshot.totals.get("duration_ms", 0.0) / runs, 3)
        _runs_log.info(
            "%d %s finished in the last %s, %.1f ms on average",
            runs,
            "run" if runs == 1 else "runs",
            duration_text(snapshot.elapsed),
            mean,
            extra=_attributes(Outcome.SUCCESS, scheduled, duration_ms=mean, runs=runs),
        )

    def failed(
        self,
        spec: RunSpec,
        scheduled: datetime | None,
        duration_ms: float,
        exc_info: tuple[type[BaseException], BaseException, TracebackType | None],
    ) -> None:
        # The record's traceback starts where the job's own code does, not in our wrapper.
        exc_info = (exc_info[0], exc_info[1], user_traceback(exc_info[2]))
        error = traceback.format_exception_only(exc_info[0], exc_info[1])[-1].strip()
        if not isinstance(exc_info[1], Exception):
            # Cancelled (asyncio cancellation on shutdown), interrupted or exiting:
            # the job did not fail, so a "failing" alert must not count it.
            _runs_log.warning(
                "run cancelled after %.1f ms: %s",
                duration_ms,
                error,
                extra=_attributes(Outcome.CANCELLED, scheduled, duration_ms=duration_ms),
            )
            return
        _runs_log.error(
            "run failed after %.1f ms: %s",
            duration_ms,
            error,
            exc_info=exc_info,
            extra=_attributes(Outcome.ERROR, scheduled, duration_ms=duration_ms),
        )

    @staticmethod
    def missed(tag: JobTag, scheduled: datetime | None) -> None:
        with job_context(tag, run_id=new_run_id()):
            _runs_log.warning(
                "run missed: it was due at %s and could not start within its misfire grace time",
                _iso(scheduled),
                extra=_attributes(Outcome.MISSED, scheduled),
            )

    @staticmethod
    def skipped(tag: JobTag, scheduled: datetime | None) -> None:
        with job_context(tag, run_id=new_run_id()):
            _runs_log.warning(
                "run skipped: it was due at %s while earlier runs were still going (max_instances reached)",
                _iso(scheduled),
                extra=_attributes(Outcome.SKIPPED, scheduled),
            )

    def flush(self) -> None:
        """Write the summaries that are waiting, due or not."""
        with self._lock:
            pending = list(self._successes.values())
        for successes in pending:
            snapshot = successes.summary.take(force=True)
            if snapshot is not None:
                with job_context(successes.tag, run_id=successes.last_run_id):
                    self._log_summary(snapshot, successes.last_scheduled)


_process_recorders: dict[str, Recorder] = {}
_process_recorders_lock = threading.Lock()


def process_recorder(connection_id: str) -> Recorder:
    # In a process-pool worker: one recorder per connection, living as long as the worker.
    with _process_recorders_lock:
        recorder = _process_recorders.get(connection_id)
        if recorder is None:
            recorder = _process_recorders[connection_id] = Recorder(time.monotonic)
        return recorder
