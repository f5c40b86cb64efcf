"""Write-ahead of the delivery machine's batches to a :class:`~otel_jobtags.spool.Spool`.

Each batch is written before it is sent and deleted once acknowledged; a split
batch's parts are written in its place before its file goes; a rejected
batch is set aside as ``*.rejected``; what is left at exit is written for the
next process. Only the batches nearest the head keep their records in memory:
the others are read back from disk when their turn comes.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord

from .. import _diagnostics
from .machine import Batch, Finish, Split
from .spool import Spool, SpooledBatch, SpoolError

__all__ = ["IN_MEMORY_BATCHES", "BatchSpool", "describe"]

IN_MEMORY_BATCHES = 4
"""Batches (from the head) whose records stay in memory while they wait in the spool."""


def describe(exc: Exception) -> str:
    """An exception for a stderr line: an OSError says what happened
    ("[Errno 28] No space left on device"); anything else is named by its type too."""
    return str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"


class BatchSpool:
    """A spool holding the batches of one :class:`~otel_jobtags.delivery.machine.DeliveryMachine`.

    A batch's ``tag`` is its :class:`~otel_jobtags.spool.SpooledBatch`, ``None``
    while not written yet, or ``False`` when writing it failed (it is then kept
    in memory only, and said so on stderr).

    Args:
        spool: the spool directory.
        throttle: where warnings go.
        build: makes OpenTelemetry records of a batch's prepared records.
    """

    def __init__(
        self,
        spool: Spool,
        throttle: _diagnostics.Throttle,
        build: Callable[[list[Any]], list[ReadableLogRecord]],
    ) -> None:
        self.spool = spool
        self._throttle = throttle
        self._build = build

    def records(self, batch: Batch) -> list[ReadableLogRecord] | None:
        """The batch's records, built (and kept) on first use, or read back from disk;
        ``None`` if its file is bad (it is then set aside as ``*.corrupt``)."""
        if batch.records and type(batch.records[0]) is not ReadableLogRecord:
            batch.records = self._build(batch.records)
        if not batch.records and batch.count:
            spooled = batch.tag
            assert isinstance(spooled, SpooledBatch)
            try:
                batch.records = self.spool.read(spooled)
            except (SpoolError, OSError) as exc:
                self.spool.quarantine(spooled.path, str(exc))
                return None
        return batch.records

    def write_fresh(self, fresh: Sequence[Batch]) -> None:
        """Write the batches not written yet."""
        for batch in fresh:
            records = self.records(batch)
            if records is None:
                continue
            try:
                batch.tag = self.spool.write(records, batch.nbytes)
            except Exception as exc:
                self._warn_write(exc)
                batch.tag = False  # kept in memory only

    @staticmethod
    def unload(pending: Sequence[Batch]) -> None:
        """Let the records of batches far from the head go (they are read back from disk)."""
        for position, batch in enumerate(pending):
            if position >= IN_MEMORY_BATCHES and isinstance(batch.tag, SpooledBatch):
                batch.records = []

    def split(self, action: Split) -> None:
        """Write a split batch's parts in its place, then delete its file."""
        old = action.batch.tag
        if not isinstance(old, SpooledBatch):
            return
        # The parts are written next to the batch (named to sort in its place)
        # before its file goes: a crash in between sends them twice, never loses them.
        try:
            for number, part in enumerate(action.parts, 1):
                records = self.records(part)
                assert records is not None
                part.tag = self.spool.write_part(old, number, records, part.nbytes)
        except Exception as exc:
            self._warn_write(exc)
            for part in action.parts:
                part.tag = False  # in memory only
        self.spool.remove(old)

    def finish(self, action: Finish) -> None:
        """Delete a delivered batch's file; set a rejected one's aside (its tag becomes the path)."""
        batch = action.batch
        if not isinstance(batch.tag, SpooledBatch):
            return
        if action.delivered:
            self.spool.remove(batch.tag)
        else:
            batch.tag = self.spool.set_aside(batch.tag, ".rejected")

    def evict(self, batch: Batch) -> None:
        """Delete the file of a batch dropped past the bound."""
        if isinstance(batch.tag, SpooledBatch):
            self.spool.remove(batch.tag)

    def keep(self, pending: Sequence[Batch]) -> tuple[int, int]:
        """At exit: write what is not on disk yet, and give the spool up.

        Returns:
            ``(records already on disk, records written now)``.
        """
        on_disk = sum(b.count for b in pending if isinstance(b.tag, SpooledBatch))
        written = 0
        for batch in pending:
            if isinstance(batch.tag, SpooledBatch):
                continue
            try:
                records = self.records(batch)
                assert records is not None
                self.spool.write(records, batch.nbytes)
                written += batch.count
            except Exception as exc:
                self._warn_write(exc)
        self.spool.close()
        return on_disk, written

    def keep_at_exit(self, pending: Sequence[Batch], left: int) -> None:
        """At exit: :meth:`keep` what is left (``left`` records) and say on stderr what became of it."""
        on_disk, written = self.keep(pending)
        if on_disk + written:
            _diagnostics.write(
                f"{on_disk + written} log records not delivered before exit are kept in "
                f"{self.spool.directory} for the next start"
            )
        if left - on_disk - written:
            _diagnostics.write(f"{left - on_disk - written} log records were not delivered and are lost")

    def _warn_write(self, exc: Exception) -> None:
        self._throttle.warn("spool-write", f"could not write to the spool: {describe(exc)}")
