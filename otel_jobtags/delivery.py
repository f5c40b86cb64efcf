"""Delivery: a log record processor that keeps records until the receiver has them.

:class:`DeliveryProcessor` is an SDK ``LogRecordProcessor`` built to replace the
stock ``BatchLogRecordProcessor`` (which drops silently when its 2048-record
queue is full and loses a batch when the exporter gives up on it):

- ``on_emit`` only appends to a queue: no export, no I/O, no wake-up per record.
- The queue is bounded by records and by (estimated) bytes; past the bound the
  *oldest* records are dropped, counted in :attr:`DeliveryStats.dropped` and
  reported on stderr (throttled).
- One worker thread sends batches in order and retries a failed batch with
  capped exponential backoff until it is delivered; newer records wait behind
  it, so order is kept. The exporter should be given a short per-attempt
  timeout: this processor owns the retry loop, and ``shutdown`` interrupts it.
- A batch that keeps failing is split down to the record the receiver refuses
  (if it refuses one); that record is rejected only once the receiver has
  accepted an empty export right after refusing it, several times, so an
  outage never loses anything and no record is sent out of order (see
  ``probe_after_failures``).
- Everything the worker thread logs is marked internal (see
  :func:`otel_jobtags.handler.exporting`), so the pipeline's own trouble never
  enters the exported stream.
- With a :class:`~otel_jobtags.spool.Spool`, each batch is written to disk
  before it is exported and deleted once acknowledged, so what is not
  delivered before exit (or a crash) is delivered by the next process.
- In a child created by ``fork`` the queue starts empty (the parent's records
  are the parent's to deliver), the worker is restarted, and records carry the
  child's ``process.pid`` and a new ``service.instance.id``.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import LogRecordLimits, LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from . import _diagnostics, _fork
from .errors import ConfigError
from .handler import exporting
from .spool import Spool, SpooledBatch, SpoolError, decode_batch, encode_batch

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_MAX_QUEUE_RECORDS",
    "DEFAULT_PROBE_AFTER_FAILURES",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "DeliveryProcessor",
    "DeliveryStats",
]

DEFAULT_MAX_QUEUE_RECORDS = 250_000
"""Records held at most (in memory and in the spool) before the oldest are dropped."""
DEFAULT_MAX_QUEUE_BYTES = 256 * 1024 * 1024
"""Estimated bytes held at most before the oldest records are dropped."""
DEFAULT_MAX_BATCH_SIZE = 512
DEFAULT_SCHEDULE_DELAY = 0.5
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
DEFAULT_RETRY_INITIAL = 0.5
DEFAULT_RETRY_MAX = 5.0
DEFAULT_PROBE_AFTER_FAILURES = 5
"""Failures in a row of the head batch before it is split; refusals of a single record
before it is rejected."""

RECORD_OVERHEAD = 1024
"""Bytes counted per record on top of its body's length.

An estimate of what a queued record costs in memory with this SDK (the
``LogRecord``, its attribute mapping, resource and scope references), measured
with ``tracemalloc`` for a record with a few attributes.
"""

# Records kept in memory for batches waiting in the spool; the rest are read
# back from disk when their turn comes.
_IN_MEMORY_BATCHES = 4


def record_size(record: ReadWriteLogRecord | ReadableLogRecord) -> int:
    """The size counted against the byte bound for one record."""
    body = record.log_record.body
    return (len(body) if type(body) is str else 64) + RECORD_OVERHEAD


def _construct_readable(
    log_record: LogRecord,
    resource: Resource,
    scope: InstrumentationScope | None,
    limits: LogRecordLimits | None,
) -> ReadableLogRecord:
    return ReadableLogRecord(
        log_record=log_record, resource=resource, instrumentation_scope=scope, limits=limits
    )


def _fill_readable(
    log_record: LogRecord,
    resource: Resource,
    scope: InstrumentationScope | None,
    limits: LogRecordLimits | None,
) -> ReadableLogRecord:
    # The same object the constructor makes, without the frozen dataclass's
    # four object.__setattr__ calls: this runs once per record on the worker,
    # whose CPU time the logging threads pay for under the GIL.
    readable = object.__new__(ReadableLogRecord)
    readable.__dict__.update(
        log_record=log_record, resource=resource, instrumentation_scope=scope, limits=limits
    )
    return readable


def _can_fill_readable() -> bool:
    # Only while ReadableLogRecord is the plain frozen dataclass of these four
    # fields, with no __post_init__ or __slots__; else the constructor is used.
    try:
        names = [f.name for f in dataclasses.fields(ReadableLogRecord)]
    except TypeError:
        return False
    return (
        names == ["log_record", "resource", "instrumentation_scope", "limits"]
        and not hasattr(ReadableLogRecord, "__post_init__")
        and not hasattr(ReadableLogRecord, "__slots__")
    )


_make_readable = _fill_readable if _can_fill_readable() else _construct_readable


@dataclass(frozen=True)
class DeliveryStats:
    """Counters of a :class:`DeliveryProcessor` (of this process, since it started)."""

    emitted: int
    """Records accepted (including those adopted from the spool)."""
    delivered: int
    """Records the exporter reported delivered."""
    queued: int
    """Records held now, in memory or in the spool, not yet delivered."""
    dropped: int
    """Records dropped: the oldest, past the bound, and any logged after shutdown began."""
    rejected: int
    """Records discarded: the exporter raised on them, the receiver refused them alone
    while accepting empty requests right after, or their spool file was corrupt."""
    failed_exports: int
    """Export attempts that failed (each is retried)."""


@dataclass(eq=False)
class _Batch:
    records: list[ReadableLogRecord] | None
    """The records, or ``None`` while they wait compacted or on disk only."""
    count: int
    nbytes: int
    spooled: SpooledBatch | None = None
    payload: bytes | None = None
    """The records serialized (as in the spool), while they wait in memory."""
    failures: int = 0
    """Failed exports in a row while this batch was at the head."""
    split: bool = False
    """A part of a batch that kept failing (split again at its first failure)."""
    refusals: int = 0
    """For a single record: failed exports followed by an empty export the receiver accepted."""


class DeliveryProcessor(LogRecordProcessor):
    """Queue, batch, export and retry until delivered; bounded, ordered, fork-safe.

    Args:
        exporter: where batches go; give it a short per-attempt timeout.
        max_queue_records: records held at most before the oldest are dropped.
        max_queue_bytes: estimated bytes held at most (body length plus
            :data:`RECORD_OVERHEAD` per record) before the oldest are dropped.
        max_batch_size: records per export.
        schedule_delay: seconds to wait for a batch to fill before sending it anyway.
        shutdown_timeout: seconds :meth:`shutdown` may spend delivering what is left.
        retry_initial: first backoff after a failed export, in seconds.
        retry_max: longest backoff between attempts, in seconds.
        probe_after_failures: after the head batch has failed this many times
            in a row it is split in halves (and each part again at its first
            failure); a single record that fails is followed by an empty
            export, and once the receiver has accepted that this many times
            right after refusing the record, the record is rejected.
        spool: write batches ahead to this spool and adopt what earlier
            processes left in it.
        throttle: where warnings go (stderr, throttled); a shared one by default.
        fork_exporter: makes the exporter a child process uses after ``fork``.
        new_instance_id_after_fork: give a forked child's records a new
            ``service.instance.id`` (leave it as it is when the user set one).
            An OTLP/gRPC exporter must not be used across a fork (its channel's
            locks and threads stay behind in the parent); without a factory the
            child uses the inherited ``exporter``.
    """

    def __init__(
        self,
        exporter: LogRecordExporter,
        *,
        max_queue_records: int = DEFAULT_MAX_QUEUE_RECORDS,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        schedule_delay: float = DEFAULT_SCHEDULE_DELAY,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        retry_initial: float = DEFAULT_RETRY_INITIAL,
        retry_max: float = DEFAULT_RETRY_MAX,
        probe_after_failures: int = DEFAULT_PROBE_AFTER_FAILURES,
        spool: Spool | None = None,
        throttle: _diagnostics.Throttle | None = None,
        fork_exporter: Callable[[], LogRecordExporter] | None = None,
        new_instance_id_after_fork: bool = True,
    ) -> None:
        for name, value in (
            ("max_queue_records", max_queue_records),
            ("max_queue_bytes", max_queue_bytes),
            ("max_batch_size", max_batch_size),
            ("probe_after_failures", probe_after_failures),
        ):
            if value < 1:
                raise ConfigError(f"Invalid {name}={value!r}: use a whole number greater than 0")
        self._exporter: LogRecordExporter | None = exporter
        self._fork_exporter = fork_exporter
        self._new_instance_id_after_fork = new_instance_id_after_fork
        self._inherited: list[LogRecordExporter] = []
        self._max_records = max_queue_records
        self._max_bytes = max_queue_bytes
        self._batch_size = max_batch_size
        self._schedule_delay = schedule_delay
        self.shutdown_timeout = shutdown_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._probe_after = probe_after_failures
        self._spool = spool
        self._throttle = throttle or _diagnostics._default
        self._queue: deque[ReadWriteLogRecord] = deque()
        self._resource_map: dict[int, tuple[Resource, Resource]] = {}
        self._forked = False
        self._child_resource_attributes: dict[str, str | int] = {}
        self._reset_state()
        if spool is not None:
            for batch in spool.adopt():
                self._pending.append(_Batch(None, batch.count, batch.nbytes, batch))
                self._emitted += batch.count
                self._held_records += batch.count
                self._held_bytes += batch.nbytes
            self._set_head_locked()
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
        self._wake = threading.Event()
        self._queue.clear()
        self._sizes: deque[int] = deque()
        self._queued_bytes = 0
        self._dropped_reported = 0
        self._pending: deque[_Batch] = deque()
        self._held_records = 0  # in pending batches
        self._held_bytes = 0
        self._head_records = 0  # in pending[0], the batch being sent: never dropped
        self._head_bytes = 0
        self._consecutive_failures = 0
        self._emitted = 0
        self._delivered = 0
        self._dropped = 0
        self._rejected = 0
        self._failed_exports = 0
        self._flush_requests = 0
        self._stopping = False
        self._abandon = False
        self._deadline = float("inf")
        self._retry_at = 0.0
        self._backoff = self._retry_initial

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
        self._queue = deque()
        self._reset_state()
        self._forked = True
        self._resource_map = {}
        self._child_resource_attributes = {"process.pid": os.getpid()}
        if self._new_instance_id_after_fork:
            self._child_resource_attributes["service.instance.id"] = str(uuid.uuid4())
        if self._spool is not None:
            self._spool.after_fork_in_child()
        if self._fork_exporter is not None and self._exporter is not None:
            # Kept referenced, never used nor shut down: its finalizer would
            # take locks that a parent thread may have held at the fork.
            self._inherited.append(self._exporter)
            self._exporter = None  # the worker makes a fresh one
        if stopped:
            self._stopping = self._abandon = True
        else:
            self._start_worker()

    @property
    def stats(self) -> DeliveryStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return DeliveryStats(
                emitted=self._emitted,
                delivered=self._delivered,
                queued=len(self._queue) + self._held_records,
                dropped=self._dropped,
                rejected=self._rejected,
                failed_exports=self._failed_exports,
            )

    # -- the application's side ----------------------------------------------------
    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Queue a record; never blocks on the exporter, never raises."""
        # The hot path: an append under a lock, no I/O, no wake-up per record
        # (the worker wakes on a timer, or once a batch is full).
        body = log_record.log_record.body
        size = (len(body) if type(body) is str else 64) + RECORD_OVERHEAD
        with self._lock:
            if self._stopping:  # logged after shutdown began: counted, and dropped
                self._emitted += 1
                self._dropped += 1
                return
            queue = self._queue
            queue.append(log_record)
            self._sizes.append(size)
            self._emitted += 1
            self._queued_bytes += size
            if (
                len(queue) + self._head_records > self._max_records
                or self._queued_bytes + self._head_bytes > self._max_bytes
            ):
                self._drop_oldest_locked()
            if len(queue) >= self._batch_size and not self._wake.is_set():
                self._wake.set()

    def _drop_oldest_locked(self) -> None:
        # Counted here, reported by the worker: no stderr I/O on the application's thread.
        # Older records may wait in batches behind the one being sent; the
        # worker evicts those (oldest first, which may mean file I/O). Here
        # only the queue is trimmed, when it and the batch in flight alone
        # are past the bound.
        queue, sizes = self._queue, self._sizes
        while queue and (
            len(queue) + self._head_records > self._max_records
            or self._queued_bytes + self._head_bytes > self._max_bytes
        ):
            queue.popleft()
            self._queued_bytes -= sizes.popleft()
            self._dropped += 1

    def _report_drops(self) -> None:
        with self._lock:
            total = self._dropped
            if total == self._dropped_reported:
                return
        if self._throttle.warn(
            "dropped",
            f"log queue full ({self._max_records} records / {self._max_bytes} bytes): "
            f"dropped the oldest records, {total} so far",
        ):
            self._dropped_reported = total

    # -- the worker's side --------------------------------------------------------
    def _set_head_locked(self) -> None:
        head = self._pending[0] if self._pending else None
        self._head_records = head.count if head is not None else 0
        self._head_bytes = head.nbytes if head is not None else 0

    def _take_locked(self, limit: int) -> tuple[list[ReadWriteLogRecord], int]:
        queue = self._queue
        n = min(limit, len(queue))
        taken = [queue.popleft() for _ in range(n)]
        sizes = self._sizes
        nbytes = sum([sizes.popleft() for _ in range(n)])
        self._queued_bytes -= nbytes
        return taken, nbytes

    def _readable(self, records: list[ReadWriteLogRecord]) -> list[ReadableLogRecord]:
        out = []
        forked = self._forked
        make = _make_readable
        for rec in records:
            resource = rec.resource if rec.resource is not None else Resource.get_empty()
            if forked:
                resource = self._child_resource(resource)
            out.append(make(rec.log_record, resource, rec.instrumentation_scope, rec.limits))
        return out

    def _child_resource(self, resource: Resource) -> Resource:
        # The SDK gives a forked child the parent's resource; records must name
        # the process that wrote them.
        entry = self._resource_map.get(id(resource))
        if entry is None or entry[0] is not resource:
            entry = (resource, resource.merge(Resource(self._child_resource_attributes)))
            self._resource_map[id(resource)] = entry
        return entry[1]

    def _form_batches(self, force: bool) -> None:
        """Move queued records into pending batches.

        Without ``force`` only full batches are formed. With a spool every
        batch goes to disk. Without one, while the receiver is failing, the
        queue is moved (at each forced pass) into compacted batches: bytes
        instead of several Python objects per record, so that a long outage
        does not make the garbage collector's full passes -- which stop every
        thread, log calls included -- longer and longer.
        """
        while True:
            with self._lock:
                queue_len = len(self._queue)
                if not queue_len:
                    return
                compact = False
                if self._spool is None and self._pending:
                    if not (force and self._consecutive_failures):
                        return  # one batch at a time while the receiver answers
                    compact = True
                if queue_len < self._batch_size and not force:
                    return  # not yet: wait for the batch to fill or the delay to pass
                taken, nbytes = self._take_locked(self._batch_size)
                # Counted as held before the lock is released, so stats never
                # show records as missing while the batch is being written.
                self._held_records += len(taken)
                self._held_bytes += nbytes
            records = self._readable(taken)
            batch = _Batch(records, len(records), nbytes)
            if self._spool is not None:
                try:
                    batch.spooled = self._spool.write(records, nbytes)
                except OSError as exc:
                    self._throttle.warn("spool-write", f"could not write to the spool: {exc}")
            elif compact:
                batch.payload, batch.records = encode_batch(records), None
            with self._lock:
                if self._spool is not None and len(self._pending) >= _IN_MEMORY_BATCHES and batch.spooled:
                    batch.records = None  # read back from disk when its turn comes
                self._pending.append(batch)
                evicted = self._enforce_bound_locked()
                self._set_head_locked()
            if self._spool is not None:
                for spooled in evicted:  # file I/O outside the lock the log calls take
                    self._spool.remove(spooled)

    def _enforce_bound_locked(self) -> list[SpooledBatch]:
        # With a spool, pending batches can outgrow the bound (the queue is
        # drained into them every tick): drop the oldest, except the one in
        # flight. Returns the spool files to delete.
        evicted: list[SpooledBatch] = []
        dropped = 0
        while len(self._pending) > 1 and (
            len(self._queue) + self._held_records > self._max_records
            or self._queued_bytes + self._held_bytes > self._max_bytes
        ):
            batch = self._pending[1]
            del self._pending[1]
            self._held_records -= batch.count
            self._held_bytes -= batch.nbytes
            dropped += batch.count
            if batch.spooled is not None:
                evicted.append(batch.spooled)
        self._dropped += dropped
        return evicted

    def _wait_time(self) -> float:
        with self._lock:
            if self._abandon:
                return 0.0
            now = time.monotonic()
            if self._pending:
                if now < self._retry_at:
                    return min(self._retry_at - now, self._schedule_delay)
                return 0.0
            if self._flush_requests or self._stopping or len(self._queue) >= self._batch_size:
                return 0.0
            return self._schedule_delay

    def _run(self) -> None:
        with exporting():
            if self._exporter is None and self._fork_exporter is not None:
                try:
                    self._exporter = self._fork_exporter()
                except Exception as exc:
                    self._throttle.warn("fork-exporter", f"could not create an exporter after fork: {exc}")
                    return
            while True:
                delay = self._wait_time()
                timed_out = False
                if delay > 0:
                    timed_out = not self._wake.wait(delay)
                    self._wake.clear()
                with self._lock:
                    if self._abandon:
                        return
                    stopping = self._stopping
                    # A partial batch goes when the schedule delay has passed
                    # (also while a failed batch waits for its retry: with a
                    # spool, what a crash can lose is then one delay's worth),
                    # on flush and on shutdown.
                    force = timed_out or stopping or self._flush_requests > 0
                try:
                    self._report_drops()
                    self._form_batches(force)
                    with self._lock:
                        head = self._pending[0] if self._pending else None
                        ready = head is not None and time.monotonic() >= self._retry_at
                    if head is None:
                        if stopping:
                            return
                        continue
                    if ready:
                        self._send(head)
                    elif stopping and time.monotonic() >= self._deadline:
                        return
                except Exception as exc:  # the worker must survive anything
                    self._throttle.warn("worker", f"delivery worker error: {type(exc).__name__}: {exc}")
                    time.sleep(0.1)

    def _send(self, batch: _Batch) -> None:
        records = self._load(batch)
        if records is None:
            return
        result = self._export(batch, records)
        if result is None:
            return
        if result is LogRecordExportResult.SUCCESS:
            self._finish(batch, rejected=False)
            return
        with self._lock:
            if self._abandon or (self._pending and self._pending[0] is not batch):
                return
            self._failed_exports += 1
            self._consecutive_failures += 1
            batch.failures += 1
            persistent = batch.failures >= (1 if batch.split else self._probe_after)
        if persistent and batch.count > 1:
            self._split(batch, records)
        elif persistent and self._refused(batch, records[0]):
            return
        with self._lock:
            if self._abandon:
                return
            delay = self._backoff * random.uniform(0.8, 1.2)
            self._backoff = min(self._backoff * 2, self._retry_max)
            self._retry_at = time.monotonic() + delay
            waiting = len(self._queue) + self._held_records
        self._throttle.warn(
            "export-failed",
            f"export failed; {waiting} records waiting, retrying in {delay:.1f}s (records are kept)",
        )

    def _load(self, batch: _Batch) -> list[ReadableLogRecord] | None:
        """The batch's records; ``None`` if its spool file is bad (the batch is then rejected)."""
        records = batch.records
        if records is None and batch.payload is not None:
            records = decode_batch(batch.payload)
        elif records is None and batch.spooled is not None and self._spool is not None:
            try:
                records = self._spool.read(batch.spooled)
            except (SpoolError, OSError) as exc:
                self._spool.quarantine(batch.spooled.path, str(exc))
                self._finish(batch, rejected=True)
                return None
        assert records is not None
        return records

    def _export(self, batch: _Batch, records: list[ReadableLogRecord]) -> LogRecordExportResult | None:
        """The exporter's result; ``None`` if it raised (the batch is then rejected)."""
        assert self._exporter is not None
        try:
            return self._exporter.export(records)
        except Exception as exc:
            # An exporter that raises (rather than reporting FAILURE) will raise
            # again on the same records: retrying would stall everything behind them.
            self._throttle.warn(
                "export-raised",
                f"exporter raised {type(exc).__name__}: {exc}; discarded {batch.count} records",
            )
            self._finish(batch, rejected=True)
            return None

    # -- a batch the receiver refuses ---------------------------------------------------
    # The exporter's FAILURE does not say whether the receiver is down (keep
    # everything) or refuses this batch (HTTP 400/413, one malformed record),
    # and retrying a refused batch for ever holds up everything behind it.
    # So a head batch that has failed probe_after_failures times in a row is
    # split in halves, and each part again at its first failure: that loses
    # nothing and keeps the order, whatever the cause. A single record that
    # keeps failing (as long, or left alone by splitting) is followed, at each
    # failure, by an empty export (a probe): the OTLP exporters send it as a
    # real, empty request, so it succeeds only if the receiver is up and
    # accepting. Refused probe_after_failures times with a probe accepted
    # right after, the record is rejected. While the probes fail, the receiver
    # is down: the record waits, as everything behind it does. The probe
    # carries no record, so nothing is sent out of order, and it needs
    # nothing logged after the refused record.

    def _refused(self, head: _Batch, record: ReadableLogRecord) -> bool:
        """Probe after the single record at the head failed; ``True`` if it was rejected."""
        assert self._exporter is not None
        try:
            with exporting():  # what the exporter logs meanwhile is internal
                result = self._exporter.export([])
        except Exception as exc:
            # No evidence that the receiver accepts anything: keep the record.
            self._throttle.warn(
                "probe-raised", f"exporter raised {type(exc).__name__} on an empty export: {exc}"
            )
            return False
        if result is not LogRecordExportResult.SUCCESS:
            return False  # the receiver is down: wait
        with self._lock:
            if self._abandon or not self._pending or self._pending[0] is not head:
                return False
            head.refusals += 1
            refused = head.refusals >= self._probe_after
        if refused:
            self._reject(head, record)
        return refused

    def _split(self, batch: _Batch, records: list[ReadableLogRecord]) -> None:
        """Replace the head batch by its two halves, in its place (it is left as it is if
        the halves cannot be spooled)."""
        at = len(records) // 2
        first, second = records[:at], records[at:]
        first_bytes = min(sum(record_size(r) for r in first), batch.nbytes)
        parts = [
            _Batch(first, len(first), first_bytes, split=True),
            _Batch(second, len(second), batch.nbytes - first_bytes, split=True),
        ]
        spool = self._spool if batch.spooled is not None else None
        if spool is not None and batch.spooled is not None:
            # The parts are written next to the batch (named to sort in its
            # place) before its file goes: a crash in between sends them twice,
            # never loses them.
            try:
                for number, part in enumerate(parts, 1):
                    assert part.records is not None
                    part.spooled = spool.write_part(batch.spooled, number, part.records, part.nbytes)
            except OSError as exc:
                for part in parts:
                    if part.spooled is not None:
                        spool.remove(part.spooled)
                self._throttle.warn("spool-write", f"could not write to the spool: {exc}")
                return
        with self._lock:
            pending = self._pending
            replaced = bool(pending) and pending[0] is batch
            if replaced:
                pending.popleft()
                pending.extendleft(reversed(parts))
                self._backoff = self._retry_initial  # a new head: its own backoff
                self._set_head_locked()
        if spool is not None and batch.spooled is not None:
            stale = [batch.spooled] if replaced else [p.spooled for p in parts if p.spooled]
            for spooled in stale:
                spool.remove(spooled)

    def _reject(self, batch: _Batch, record: ReadableLogRecord) -> None:
        """Discard a single record the receiver refuses while it accepts others."""
        kept = ""
        if batch.spooled is not None and self._spool is not None:
            aside = self._spool.set_aside(batch.spooled, ".rejected")
            if aside is not None:
                kept = f"; kept as {aside.name}"
        log_record = record.log_record
        scope = record.instrumentation_scope
        severity = log_record.severity_text or (
            log_record.severity_number.name if log_record.severity_number is not None else "-"
        )
        self._throttle.warn(
            "refused",
            f"the receiver refused a record {batch.refusals} times while accepting empty requests; "
            f"rejected it: {scope.name if scope is not None else '-'} {severity}: "
            f"{str(log_record.body)[:80]!r}{kept}",
        )
        self._finish(batch, rejected=True)

    def _finish(self, batch: _Batch, *, rejected: bool) -> None:
        # The file goes first: once a flush reports the batch delivered, the
        # next process must not find it in the spool.
        if batch.spooled is not None and self._spool is not None:
            self._spool.remove(batch.spooled)
        with self._lock:
            if self._pending and self._pending[0] is batch:
                self._pending.popleft()
                self._held_records -= batch.count
                self._held_bytes -= batch.nbytes
                if rejected:
                    self._rejected += batch.count
                else:
                    self._delivered += batch.count
                    self._consecutive_failures = 0
                self._backoff = self._retry_initial
                self._retry_at = 0.0
                self._set_head_locked()
            self._changed.notify_all()

    # -- flush and shutdown ------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until everything emitted so far is delivered (or dropped); ``True`` if so in time."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            if self._abandon:
                return False
            target = self._emitted
            self._flush_requests += 1
            self._retry_at = 0.0  # try now, whatever the backoff said
            try:
                self._wake.set()
                while self._delivered + self._dropped + self._rejected < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._worker.is_alive():
                        return False
                    self._changed.wait(min(remaining, 0.1))
                return True
            finally:
                self._flush_requests -= 1

    def shutdown(self) -> None:
        """Deliver what is left within :attr:`shutdown_timeout` seconds, then stop.

        Records still undelivered then are reported on stderr; with a spool
        they stay on disk for the next process.
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
            self._retry_at = 0.0
            self._backoff = min(self._backoff, self._retry_initial)
        self._wake.set()
        self._worker.join(max(0.0, self._deadline - time.monotonic()))
        with self._lock:
            self._abandon = True
            self._changed.notify_all()
        self._wake.set()
        with exporting():
            # Interrupts an export still in flight (the gRPC exporter closes its
            # channel and stops its own retry wait).
            try:
                if self._exporter is not None:
                    self._exporter.shutdown()  # type: ignore[no-untyped-call]
            except Exception as exc:
                self._throttle.warn("shutdown", f"exporter shutdown failed: {exc}")
        self._worker.join(max(0.0, end - time.monotonic()))
        self._report_leftovers()

    def _report_leftovers(self) -> None:
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            self._sizes.clear()
            self._queued_bytes = 0
            pending = list(self._pending)
        if self._spool is not None:
            on_disk = sum(b.count for b in pending if b.spooled is not None)
            written = 0
            for start in range(0, len(queued), self._batch_size):
                chunk = self._readable(queued[start : start + self._batch_size])
                try:
                    self._spool.write(chunk, sum(record_size(r) for r in chunk))
                    written += len(chunk)
                except OSError as exc:
                    self._throttle.warn("spool-write", f"could not write to the spool: {exc}")
            lost = len(queued) - written + sum(b.count for b in pending if b.spooled is None)
            self._spool.close()
            if on_disk + written:
                _diagnostics.write(
                    f"{on_disk + written} log records not delivered before exit are kept in "
                    f"{self._spool.directory} for the next start"
                )
            if lost:
                _diagnostics.write(f"{lost} log records were not delivered and are lost")
            return
        lost = len(queued) + sum(b.count for b in pending)
        if lost:
            _diagnostics.write(
                f"{lost} log records were not delivered before exit (receiver unavailable "
                f"for {self.shutdown_timeout:g}s); set a spool directory to keep them"
            )
