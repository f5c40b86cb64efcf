"""The delivery processor: the thread, fork, flush and shutdown shell around the
queue (:mod:`~otel_jobtags.delivery.queue`) and the rules
(:mod:`~otel_jobtags.delivery.machine`).

:class:`DeliveryProcessor` is an SDK ``LogRecordProcessor`` built to replace the
stock ``BatchLogRecordProcessor`` (which drops silently when its queue is full
and loses a batch when the exporter gives up on it):

- The log call only appends to a bounded queue (a :data:`Prepared` tuple from
  :class:`~otel_jobtags.handler.JobTagHandler`, or an SDK record through ``on_emit``);
  the OpenTelemetry record is built on the export thread.
- One worker thread feeds the state machine and performs its actions: export
  (one attempt, classified), wait, split, reject, evict.
- Everything the worker logs is marked internal, so the pipeline's own
  trouble never enters the exported stream.
- With a :class:`~otel_jobtags.spool.Spool`, each batch is written to disk
  before it is exported and deleted once acknowledged, so what is not
  delivered before exit (or a crash) is delivered by the next process.
- In a child created by ``fork`` the queue starts empty (the parent's records
  are the parent's to deliver), the worker is restarted, and records carry the
  child's ``process.pid`` and a new ``service.instance.id``.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import LogRecordLimits, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.resources import Resource

from .. import _diagnostics, _fork
from ..pipeline_logs import hint_for
from .defaults import (
    ADOPT_INTERVAL,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_RECORDS,
    DEFAULT_PROBE_AFTER_FAILURES,
    DEFAULT_RETRY_INITIAL,
    DEFAULT_RETRY_MAX,
    DEFAULT_SCHEDULE_DELAY,
    DEFAULT_SHUTDOWN_TIMEOUT,
    require_positive,
)
from .internal import exporting
from .machine import Batch, DeliveryMachine, Evict, Finish, Probe, Send, Split, Wait
from .outcome import Outcome, export_classified
from .queue import RecordQueue
from .records import RecordBuilder, record_size
from .resources import ProcessResources
from .spool import Spool
from .spooling import BatchSpool
from .stats import DeliveryStats, rejection_message

__all__ = [
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_MAX_QUEUE_RECORDS",
    "DEFAULT_PROBE_AFTER_FAILURES",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DeliveryProcessor",
    "DeliveryStats",
]


class DeliveryProcessor(LogRecordProcessor):
    """Queue, batch, export and retry until delivered; bounded, ordered, fork-safe.

    Args:
        exporter: where batches go. The exporters of
            :mod:`otel_jobtags.delivery.exporters` say why an export failed;
            any other exporter's FAILURE is handled as unclassified.
        max_queue_records: records held at most before the oldest are dropped.
        max_queue_bytes: bytes held at most (whole records: body, attributes,
            traceback, plus :data:`~otel_jobtags.delivery.records.RECORD_OVERHEAD`)
            before the oldest are dropped.
        max_batch_size: records per export.
        max_batch_bytes: bytes per export (a bigger record is sent alone).
        schedule_delay: seconds to wait for a batch to fill before sending it anyway.
        shutdown_timeout: seconds :meth:`shutdown` may spend delivering what is left.
        retry_initial: first backoff after a failed export, in seconds.
        retry_max: longest backoff between attempts, in seconds.
        probe_after_failures: for unclassified failures and client-side
            timeouts: after the head batch has failed this many times in a
            row it is split in halves (each part again at its first
            failure); a single record is rejected once refused (never timed
            out) this many times, each followed by an accepted empty export.
        spool: write batches ahead to this spool and adopt what earlier
            processes left in it.
        throttle: where warnings go (stderr, throttled); a shared one by default.
        fork_exporter: makes the exporter a child process uses after ``fork``.
        new_instance_id_after_fork: give a forked child's records a new
            ``service.instance.id`` (leave it as it is when the user set one).
        resource: the resource of records handed over by
            :class:`~otel_jobtags.handler.JobTagHandler`, or a function giving it (the
            provider's, which the SDK renews in a child after ``fork``).
        limits: the attribute limits for those records.
    """

    def __init__(
        self,
        exporter: LogRecordExporter,
        *,
        max_queue_records: int = DEFAULT_MAX_QUEUE_RECORDS,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        schedule_delay: float = DEFAULT_SCHEDULE_DELAY,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        retry_initial: float = DEFAULT_RETRY_INITIAL,
        retry_max: float = DEFAULT_RETRY_MAX,
        probe_after_failures: int = DEFAULT_PROBE_AFTER_FAILURES,
        spool: Spool | None = None,
        throttle: _diagnostics.Throttle | None = None,
        fork_exporter: Callable[[], LogRecordExporter] | None = None,
        new_instance_id_after_fork: bool = True,
        resource: Resource | Callable[[], Resource] | None = None,
        limits: LogRecordLimits | None = None,
    ) -> None:
        require_positive(
            max_queue_records=max_queue_records,
            max_queue_bytes=max_queue_bytes,
            max_batch_size=max_batch_size,
            max_batch_bytes=max_batch_bytes,
            probe_after_failures=probe_after_failures,
        )
        self._exporter: LogRecordExporter | None = exporter
        self._fork_exporter = fork_exporter
        self._resources = ProcessResources(new_instance_id_after_fork)
        self._inherited: list[LogRecordExporter] = []
        self._settings = {
            "max_batch_size": max_batch_size,
            "max_batch_bytes": max_batch_bytes,
            "max_records": max_queue_records,
            "max_bytes": max_queue_bytes,
            "schedule_delay": schedule_delay,
            "retry_initial": retry_initial,
            "retry_max": retry_max,
            "probe_after": probe_after_failures,
            "close_on_delay": spool is not None,
        }
        self._schedule_delay = schedule_delay
        self.shutdown_timeout = shutdown_timeout
        self._spool = spool
        self._throttle = throttle or _diagnostics.DEFAULT_THROTTLE
        self._spooling = BatchSpool(spool, self._throttle, self._readable) if spool is not None else None
        self._resource = resource if callable(resource) else (lambda: resource or Resource.get_empty())
        self._builder = RecordBuilder(self._resource(), limits)
        self.queue = RecordQueue(max_queue_records, max_queue_bytes, max_batch_size)
        """The hot path: :class:`~otel_jobtags.handler.JobTagHandler` puts prepared records here."""
        self._reset_state()
        if spool is not None:
            for spooled in spool.adopt():
                batch = Batch([], [], spooled.nbytes, count=spooled.count, tag=spooled)
                self._adopted += spooled.count
                self._perform(self._machine.adopt(batch))
        self._start_worker()
        _fork.register_at_fork(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._after_fork_in_child,
        )

    # -- state -------------------------------------------------------------------
    def _reset_state(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._machine = DeliveryMachine(**self._settings)  # type: ignore[arg-type]
        self._adopted = 0
        self._last_take = time.monotonic()
        self._next_adoption = self._last_take + ADOPT_INTERVAL
        self._dropped_reported = 0
        self._flush_requests = 0
        self._stopping = False
        self._stop_sent = False
        self._abandon = False
        self._deadline = float("inf")

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._run, name="otel-jobtags-delivery", daemon=True)
        self._worker.start()

    # Hold the lock across fork so the child never inherits it mid-update.
    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()

    def _after_fork_in_child(self) -> None:
        stopped = self._stopping
        self.queue.reset_after_fork()
        self._reset_state()
        self._next_adoption = 0.0  # a replacement worker takes over a dead one's batches at once
        self._resources.after_fork_in_child()
        self._builder.resource = self._resources.exported(self._resource())
        if self._spool is not None:
            self._spool.after_fork_in_child()
        if self._fork_exporter is not None and self._exporter is not None:
            # Kept referenced, never used nor shut down: its finalizer would
            # take locks that a parent thread may have held at the fork.
            self._inherited.append(self._exporter)
            self._exporter = None  # the worker makes a fresh one
        if stopped:
            self._stopping = self._abandon = True
            self.queue.close()
        else:
            self._start_worker()

    @property
    def stats(self) -> DeliveryStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            machine = self._machine
            accepted, dropped, waiting = self.queue.counts()
            return DeliveryStats(
                emitted=accepted + self._adopted,
                delivered=machine.delivered,
                queued=waiting + machine.held_records,
                dropped=dropped + machine.evicted,
                rejected=machine.rejected,
                failed_exports=machine.failed_exports,
                replaced=self._builder.replaced,
            )

    # -- the application's side ----------------------------------------------------
    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Queue a record emitted through the SDK; never blocks on the exporter, never raises."""
        try:
            self.queue.put(log_record, record_size(log_record))  # type: ignore[arg-type]
        except Exception as exc:
            _diagnostics.write(f"could not queue a log record: {type(exc).__name__}: {exc}")

    # -- the worker's side --------------------------------------------------------
    def _readable(self, items: list[Any]) -> list[ReadableLogRecord]:
        return self._resources.readable(items, self._builder)

    def _run(self) -> None:
        with exporting():
            if self._exporter is None and self._fork_exporter is not None:
                try:
                    self._exporter = self._fork_exporter()
                except Exception as exc:
                    self._throttle.warn("fork-exporter", f"could not create an exporter after fork: {exc}")
                    return
            while True:
                try:
                    if self._step():
                        return
                except Exception as exc:  # the worker must survive anything
                    self._throttle.warn("worker", f"delivery worker error: {type(exc).__name__}: {exc}")
                    time.sleep(0.1)

    def _step(self) -> bool:
        """One pass: take what the log calls queued, act on it; ``True`` to stop."""
        machine = self._machine
        with self._lock:
            if self._abandon:
                return True
            now = time.monotonic()
            # What is taken now was logged since the last pass: its batch's
            # delay runs from then.
            actions = machine.add(self.queue.take(), self._last_take)
            self._last_take = now
            if self._flush_requests:
                machine.flush()
            if self._stopping and not self._stop_sent:
                self._stop_sent = True
                machine.stop(now)
            if self._stopping and machine.idle and not len(self.queue):
                self._changed.notify_all()
                return True
            if self._stopping and now >= self._deadline:
                return True
            actions += machine.poll(now)
            self._reserve_locked()
            adopt = self._spool is not None and not self._stopping and now >= self._next_adoption
            if adopt:
                self._next_adoption = now + ADOPT_INTERVAL
        self._report_drops()
        self._perform(actions)
        if adopt:
            self._adopt_orphans()
        return False

    def _adopt_orphans(self) -> None:
        """Take over the batches of spool owners that died since (see :data:`ADOPT_INTERVAL`)."""
        assert self._spool is not None
        try:
            adopted = self._spool.adopt()
        except OSError as exc:
            self._throttle.warn("spool-adopt", f"could not look for batches left in the spool: {exc}")
            return
        if not adopted:
            return
        actions: list[Any] = []
        with self._lock:
            for spooled in adopted:
                batch = Batch([], [], spooled.nbytes, count=spooled.count, tag=spooled)
                self._adopted += spooled.count
                actions += self._machine.adopt(batch)
            self._reserve_locked()
        self._perform(actions)

    def _reserve_locked(self) -> None:
        machine = self._machine
        head = machine.pending[0] if machine.pending else None
        sending = (head.count, head.nbytes) if head is not None else (0, 0)
        self.queue.reserve(sending, (machine.held_records, machine.held_bytes))

    def _perform(self, actions: list[Any]) -> None:
        spooling = self._spooling
        if spooling is not None:
            for action in actions:
                if isinstance(action, Split):
                    spooling.split(action)  # its parts are written in the batch's place
            self._spool_new_batches(spooling)  # write-ahead: on disk before it is sent
        for action in actions:
            if isinstance(action, (Send, Probe)):
                self._export(action)
            elif isinstance(action, Wait):
                self._wait(action.until)
            elif isinstance(action, Finish):
                self._finished(action)
            elif isinstance(action, Evict) and spooling is not None:
                spooling.evict(action.batch)

    def _wait(self, until: float | None) -> None:
        timeout = self._schedule_delay
        if until is not None:
            timeout = min(timeout, until - time.monotonic())
        if timeout > 0 and self.queue.wake.wait(timeout):
            self.queue.wake.clear()

    def _records(self, batch: Batch) -> list[ReadableLogRecord] | None:
        """The batch's records, built (and kept) on first use; ``None`` if its file is bad."""
        if self._spooling is not None:
            return self._spooling.records(batch)
        if batch.records and type(batch.records[0]) is not ReadableLogRecord:
            batch.records = self._readable(batch.records)
        return batch.records

    def _export(self, action: Send | Probe) -> None:
        assert self._exporter is not None
        if isinstance(action, Probe):
            result = export_classified(self._exporter, [])
        else:
            records = self._records(action.batch)
            if records is None:  # its spool file is unreadable (quarantined): nothing to send
                with self._lock:
                    self._machine.discard_head(time.monotonic())
                    self._reserve_locked()
                    self._changed.notify_all()
                return
            result = export_classified(self._exporter, records)
        with self._lock:
            actions = self._machine.result(result, time.monotonic())
            self._reserve_locked()
        if result.outcome is not Outcome.SUCCESS and isinstance(action, Send):
            waiting = self.stats.queued
            detail = result.detail or result.outcome.value
            hint = hint_for(detail)
            self._throttle.warn(
                "export-failed",
                f"export failed ({detail}); {waiting} records waiting, retrying (records are kept)"
                + (f" -- hint: {hint}" if hint else ""),
            )
        self._perform(actions)

    def _finished(self, action: Finish) -> None:
        if self._spooling is not None:
            self._spooling.finish(action)
        if not action.delivered:
            self._report_rejected(action)
        with self._lock:
            self._changed.notify_all()

    def _report_rejected(self, action: Finish) -> None:
        kept = action.batch.tag if self._spooling is not None else None
        key, message = rejection_message(action.batch, kept if isinstance(kept, Path) else None)
        self._throttle.warn(key, message)

    def _spool_new_batches(self, spooling: BatchSpool) -> None:
        with self._lock:
            # Not written yet (tag None). Not only at the tail: adopted
            # batches come after fresh ones.
            fresh = [batch for batch in self._machine.pending if batch.tag is None]
        spooling.write_fresh(fresh)
        with self._lock:
            spooling.unload(self._machine.pending)

    def _report_drops(self) -> None:
        total = self.stats.dropped
        if total == self._dropped_reported:
            return
        if self._throttle.warn(
            "dropped",
            f"log queue full ({self.queue.max_records} records / {self.queue.max_bytes} bytes): "
            f"dropped the oldest records, {total} so far",
        ):
            self._dropped_reported = total

    # -- flush and shutdown ------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until everything emitted so far is delivered, dropped or rejected; ``True`` if so in time.

        A flush sends a partial batch as soon as nothing is ahead of it; it
        does not cut short the wait between retries, nor make batches smaller.
        """
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            if self._abandon:
                return False
            target = self.queue.counts()[0] + self._adopted
            self._flush_requests += 1
        try:
            self.queue.wake.set()
            with self._lock:
                while True:
                    machine = self._machine
                    _, dropped, _ = self.queue.counts()
                    done = machine.delivered + machine.rejected + machine.evicted + dropped
                    if done >= target:
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._worker.is_alive():
                        return False
                    self._changed.wait(min(remaining, 0.1))
        finally:
            with self._lock:
                self._flush_requests -= 1

    def shutdown(self) -> None:
        """Deliver what is left within :attr:`shutdown_timeout` seconds, then stop.

        Records logged from now on are counted as dropped. Records still
        undelivered at the end are reported on stderr; with a spool they stay
        on disk for the next process.
        """
        start = time.monotonic()
        end = start + self.shutdown_timeout
        # Keep part of the budget for interrupting an export in flight.
        grace = min(0.5, self.shutdown_timeout / 5)
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._deadline = end - grace
        self.queue.close()
        self._worker.join(max(0.0, self._deadline - time.monotonic()))
        with self._lock:
            self._abandon = True
            self._changed.notify_all()
        self.queue.wake.set()
        with exporting():
            # Interrupts an export still in flight.
            try:
                if self._exporter is not None:
                    self._exporter.shutdown()  # type: ignore[no-untyped-call]
            except Exception as exc:
                self._throttle.warn("shutdown", f"exporter shutdown failed: {exc}")
        self._worker.join(max(0.0, end - time.monotonic()))
        self._report_leftovers()

    def _report_leftovers(self) -> None:
        with self._lock:
            machine = self._machine
            # What is left stays counted as queued: kept in the spool for the
            # next process, or lost (and said so).
            machine.add(self.queue.take(), time.monotonic())
            machine.stop(time.monotonic())
            pending = list(machine.pending)
            left = machine.held_records
        if self._spooling is None:
            if left:
                _diagnostics.write(
                    f"{left} log records were not delivered before exit (receiver unavailable "
                    f"for {self.shutdown_timeout:g}s); set a spool directory to keep them"
                )
            return
        with exporting():
            self._spooling.keep_at_exit(pending, left)
