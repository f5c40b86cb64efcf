"""The hot path: a bounded queue between the log call and the export thread.

A log call appends here and returns; it never waits on the exporter, does no
I/O, and cannot deadlock: the lock is reentrant, held only for a few counter
updates, and a call that interrupts another on the same thread (a signal
handler that logs, code run from inside the update) appends to a side queue
without touching the counters, which the export thread accounts for later.

The bound counts records and bytes (:mod:`~otel_jobtags.delivery.records`
sizes: the whole record, attributes and traceback included). Records the
export thread is sending count against it and are never dropped; past it the
oldest records waiting here are dropped and counted. Records the export
thread holds in batches are its to evict (oldest first): when the queue and
those together pass the bound, the export thread is woken to do so.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

__all__ = ["RecordQueue"]


class RecordQueue:
    """A bounded FIFO of ``(item, size)`` pairs, many producers and one consumer.

    Args:
        max_records: records held at most (here and in ``reserved_records``).
        max_bytes: bytes held at most (here and in ``reserved_bytes``).
        batch_size: wake the consumer once this many records wait.
    """

    def __init__(self, max_records: int, max_bytes: int, batch_size: int) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.batch_size = batch_size
        self._lock = threading.RLock()
        self._busy = False
        self._items: deque[tuple[Any, int]] = deque()
        self._side: deque[tuple[Any, int]] = deque()
        self.nbytes = 0
        """Bytes of the records waiting here (the side queue aside)."""
        self.accepted = 0
        """Records put, including those dropped since (the side queue aside)."""
        self.dropped = 0
        """Records dropped: past the bound, or put after :meth:`close`."""
        self.reserved_records = 0
        """Records the consumer is sending (counted against the bound, never dropped here)."""
        self.reserved_bytes = 0
        self.held_records = 0
        """Records the consumer holds in all (it evicts its oldest past the bound)."""
        self.held_bytes = 0
        self.closed = False
        self.successor: RecordQueue | None = None
        """Once closed, where records put here go instead (a re-installation's queue)."""
        self.wake = threading.Event()
        """Set once a batch's worth is waiting, and by :meth:`close`."""

    def put(self, item: Any, size: int) -> None:
        """Append a record; drop the oldest past the bound. Never blocks for long, never raises."""
        with self._lock:
            if self._busy:
                # Re-entered on this thread in the middle of an update (a
                # signal handler that logs): the counters may be half-updated,
                # so leave them alone. deque.append is atomic.
                self._side.append((item, size))
                return
            self._busy = True
            try:
                if self.closed:
                    if self.successor is not None:
                        self.successor.put(item, size)
                        return
                    self.accepted += 1
                    self.dropped += 1
                    return
                items = self._items
                items.append((item, size))
                self.accepted += 1
                self.nbytes += size
                if (
                    len(items) + self.reserved_records > self.max_records
                    or self.nbytes + self.reserved_bytes > self.max_bytes
                ):
                    self._drop_oldest()
                if len(items) >= self.batch_size or (
                    len(items) + self.held_records > self.max_records
                    or self.nbytes + self.held_bytes > self.max_bytes
                ):
                    # A batch is ready, or the consumer should evict its
                    # oldest records to make room for these.
                    self.wake.set()
            finally:
                self._busy = False

    def _drop_oldest(self) -> None:
        items = self._items
        while items and (
            len(items) + self.reserved_records > self.max_records
            or self.nbytes + self.reserved_bytes > self.max_bytes
        ):
            _, size = items.popleft()
            self.nbytes -= size
            self.dropped += 1

    def __len__(self) -> int:
        return len(self._items) + len(self._side)

    def take(self, limit: int | None = None) -> list[tuple[Any, int]]:
        """Remove and return up to ``limit`` of the oldest records (all by default).

        Records from the side queue are accounted for (counted accepted, and
        against the bound) as they are taken.
        """
        with self._lock:
            self._busy = True
            try:
                side = self._side
                while side:
                    item, size = side.popleft()
                    if self.closed and self.successor is not None:
                        self.successor.put(item, size)
                        continue
                    self.accepted += 1
                    if self.closed:
                        self.dropped += 1
                        continue
                    self._items.append((item, size))
                    self.nbytes += size
                if (
                    len(self._items) + self.reserved_records > self.max_records
                    or self.nbytes + self.reserved_bytes > self.max_bytes
                ):
                    self._drop_oldest()
                items = self._items
                n = len(items) if limit is None else min(limit, len(items))
                taken = [items.popleft() for _ in range(n)]
                self.nbytes -= sum(size for _, size in taken)
                return taken
            finally:
                self._busy = False

    def reserve(self, sending: tuple[int, int], held: tuple[int, int]) -> None:
        """Say what the consumer is sending and holds in all, as ``(records, bytes)``."""
        with self._lock:
            self.reserved_records, self.reserved_bytes = sending
            self.held_records, self.held_bytes = held

    def close(self, successor: RecordQueue | None = None) -> None:
        """Take nothing more: records put from now on go to ``successor``, else are dropped (counted)."""
        with self._lock:
            self.closed = True
            if successor is not None:
                self.successor = successor
        self.wake.set()

    def counts(self) -> tuple[int, int, int]:
        """``(accepted, dropped, waiting)``, consistent with each other; the side queue counts
        as accepted and waiting."""
        with self._lock:
            side = len(self._side)
            return self.accepted + side, self.dropped, len(self._items) + side

    def reset_after_fork(self) -> None:
        """Start empty with fresh locks (in a child created by ``fork``)."""
        self._lock = threading.RLock()
        self._busy = False
        self._items = deque()
        self._side = deque()
        self.nbytes = self.accepted = self.dropped = 0
        self.reserved_records = self.reserved_bytes = self.held_records = self.held_bytes = 0
        self.closed = False
        self.wake = threading.Event()
