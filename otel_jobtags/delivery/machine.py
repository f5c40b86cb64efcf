"""Batching, retry and refusal as a pure state machine: events in, actions out.

No threads, no clock, no I/O: the caller passes the time in, performs the
actions and reports their results. This is where every rule about when a
record is sent, retried, dropped or rejected lives, so that it can be tested
against a simple model (``tests/unit/delivery``).

Events: :meth:`DeliveryMachine.add` (records accepted, with their sizes),
:meth:`~DeliveryMachine.adopt` (a batch left by an earlier process),
:meth:`~DeliveryMachine.flush`, :meth:`~DeliveryMachine.stop`,
:meth:`~DeliveryMachine.poll` (time passed) and
:meth:`~DeliveryMachine.result` (how an export or probe ended).

Actions: :class:`Send` a batch, :class:`Probe` (an empty export), :class:`Wait`
until a time, :class:`Split` a batch in its place, :class:`Finish` a batch
(delivered or rejected), :class:`Evict` a batch (dropped past the bound).

The rules:

- One batch is in flight at a time, oldest first: order is kept.
- A batch closes at ``max_batch_size`` records or ``max_batch_bytes`` bytes
  (a record bigger than that travels alone), or once it has waited
  ``schedule_delay`` (or a flush or stop asks) *and* nothing is ahead of it:
  while the head batch is failing, newer records fill batches instead of
  being fragmented by flushes. With ``close_on_delay`` (a spool), partial
  batches also close on the delay while the head fails, so that they reach
  the disk.
- A retryable failure waits (exponential backoff with jitter, at least the
  receiver's ``Retry-After``/``RetryInfo``) and retries the same batch; it is
  never grounds for rejection. Flushing does not shorten the wait.
- A permanent refusal splits the batch in halves, down to the single record
  refused; that record is rejected once the receiver, right after refusing
  it, accepts an empty export (a probe). If the probe fails too, the
  receiver refuses everything (e.g. a wrong token): the record waits.
- An unclassified FAILURE (an exporter that does not say why) splits the head
  batch after ``probe_after`` failures in a row (its parts at their first
  failure), and rejects a single record refused ``probe_after`` times each
  followed by an accepted probe.
- A retryable failure where the client gave up waiting (``timed_out``: gRPC
  ``DEADLINE_EXCEEDED``, an HTTP client timeout) counts toward splitting a
  batch of several records like an unclassified failure, since the batch may
  be too big to cross a slow link within the export timeout; the parts keep
  their order. A single record that times out is retried like any retryable
  failure: a timeout never leads to a probe or a rejection.
- Past ``max_records``/``max_bytes`` the oldest batches waiting behind the one
  in flight are evicted (then the oldest records not yet in a batch).

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .outcome import ExportResult, Outcome

__all__ = [
    "Action",
    "Batch",
    "DeliveryMachine",
    "Evict",
    "Finish",
    "Probe",
    "Send",
    "Split",
    "Wait",
]


@dataclass(eq=False)
class Batch:
    """Records sent together; ``records`` are the caller's, opaque here."""

    records: list[Any]
    sizes: list[int]
    nbytes: int
    count: int = -1
    failures: int = 0
    """Failed exports in a row (permanent, unclassified or timed out) while at the head."""
    split: bool = False
    """A part of a batch that was split."""
    refusals: int = 0
    """Refusals of this single record followed by an accepted probe."""
    last: Outcome | None = None
    """How its last export ended."""
    probe_next: bool = False
    """A single record refused: the next action is a probe, then the record again."""
    tag: Any = None
    """The caller's data about the batch (e.g. its spool file)."""

    def __post_init__(self) -> None:
        if self.count < 0:
            self.count = len(self.records)


@dataclass(frozen=True)
class Send:
    """Export this batch (the head) and report the result."""

    batch: Batch


@dataclass(frozen=True)
class Probe:
    """Export an empty batch and report the result (the head is a single refused record)."""

    batch: Batch


@dataclass(frozen=True)
class Wait:
    """Nothing to do before ``until`` (``None``: until an event)."""

    until: float | None


@dataclass(frozen=True)
class Split:
    """``batch`` was replaced by ``parts``, in its place."""

    batch: Batch
    parts: tuple[Batch, Batch]


@dataclass(frozen=True)
class Finish:
    """``batch`` is done: delivered, or rejected (refused for good) with ``reason``."""

    batch: Batch
    delivered: bool
    reason: str = ""


@dataclass(frozen=True)
class Evict:
    """``batch`` was dropped: past the bound."""

    batch: Batch


Action = Send | Probe | Wait | Split | Finish | Evict


def _jitter() -> float:
    return random.uniform(0.8, 1.2)


@dataclass
class _Open:
    records: list[Any] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    nbytes: int = 0
    since: float = 0.0


class DeliveryMachine:
    """The delivery rules (see the module's docstring).

    Args:
        max_batch_size: records per export at most.
        max_batch_bytes: bytes (as counted by the caller) per export at most.
        max_records: records held at most before the oldest are evicted.
        max_bytes: bytes held at most before the oldest are evicted.
        schedule_delay: seconds a partial batch waits to fill.
        retry_initial: first backoff after a failure, in seconds.
        retry_max: longest backoff, in seconds.
        probe_after: failures of an unclassified kind before splitting/probing.
        close_on_delay: close partial batches on the delay even while the
            head is failing (so that a spool gets them).
        jitter: returns the factor applied to each backoff.
    """

    def __init__(
        self,
        *,
        max_batch_size: int,
        max_batch_bytes: int,
        max_records: int,
        max_bytes: int,
        schedule_delay: float,
        retry_initial: float,
        retry_max: float,
        probe_after: int,
        close_on_delay: bool = False,
        jitter: Callable[[], float] = _jitter,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_batch_bytes = max_batch_bytes
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.schedule_delay = schedule_delay
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.probe_after = probe_after
        self.close_on_delay = close_on_delay
        self._jitter = jitter
        self.pending: deque[Batch] = deque()
        self._open = _Open()
        self.held_records = 0
        """Records held: in batches and in the open batch."""
        self.held_bytes = 0
        self.delivered = 0
        self.rejected = 0
        self.evicted = 0
        self.failed_exports = 0
        self._backoff = retry_initial
        self._retry_at = 0.0
        self._flush = False
        self._stopping = False
        self._in_flight: Send | Probe | None = None

    # -- events ------------------------------------------------------------------
    def add(self, items: Sequence[tuple[Any, int]], now: float) -> list[Action]:
        """Records accepted (each with its size); returns batches evicted past the bound."""
        for record, size in items:
            opened = self._open
            if opened.records and opened.nbytes + size > self.max_batch_bytes:
                self._close()
                opened = self._open
            if not opened.records:
                opened.since = now
            opened.records.append(record)
            opened.sizes.append(size)
            opened.nbytes += size
            self.held_records += 1
            self.held_bytes += size
            if len(opened.records) >= self.max_batch_size or opened.nbytes >= self.max_batch_bytes:
                self._close()
        return self._enforce_bound()

    def adopt(self, batch: Batch) -> list[Action]:
        """A whole batch to send after those held (e.g. left in a spool by an earlier process)."""
        self._close()
        self.pending.append(batch)
        self.held_records += batch.count
        self.held_bytes += batch.nbytes
        return self._enforce_bound()

    def flush(self) -> None:
        """Send the partial batch as soon as nothing is ahead of it (the backoff stands)."""
        if self._open.records:
            self._flush = True

    def stop(self, now: float) -> None:
        """Shutting down: close partial batches now, and try the head once more right away."""
        self._stopping = True
        self._close()
        self._backoff = self.retry_initial
        self._retry_at = min(self._retry_at, now)

    def poll(self, now: float) -> list[Action]:
        """What to do at ``now``: a :class:`Send`/:class:`Probe`, else a :class:`Wait`."""
        if self._in_flight is not None:
            return [Wait(None)]
        opened = self._open
        if opened.records:
            due = self._flush or self._stopping or now >= opened.since + self.schedule_delay
            if due and (not self.pending or (self.close_on_delay and not self._flush)):
                self._close()
        if self.pending:
            if now < self._retry_at:
                until = self._retry_at
                if opened.records and self.close_on_delay:
                    until = min(until, opened.since + self.schedule_delay)
                return [Wait(until)]
            head = self.pending[0]
            action: Send | Probe = Probe(head) if head.probe_next else Send(head)
            self._in_flight = action
            return [action]
        if opened.records:
            return [Wait(None if self._flush else opened.since + self.schedule_delay)]
        return [Wait(None)]

    def result(self, result: ExportResult, now: float) -> list[Action]:
        """How the action :meth:`poll` gave last ended."""
        action, self._in_flight = self._in_flight, None
        if action is None:
            raise RuntimeError("result() without a Send or Probe in flight")
        head = action.batch
        if isinstance(action, Probe):
            return self._probed(head, result, now)
        if result.outcome is Outcome.SUCCESS:
            return self._finish(head, True, now)
        self.failed_exports += 1
        head.last = result.outcome
        # A timeout of several records (the client gave up waiting: perhaps
        # the batch cannot cross a slow link within the export timeout)
        # counts toward a split below; splitting loses nothing, and with
        # count > 1 it never leads to a probe or a rejection.
        if result.outcome is Outcome.RETRYABLE and not (result.timed_out and head.count > 1):
            head.failures = 0
            self._back_off(now, result.retry_after)
            return []
        head.failures += 1
        permanent = result.outcome is Outcome.PERMANENT
        threshold = 1 if permanent or head.split else self.probe_after
        if head.failures < threshold:
            self._back_off(now, None)
            return []
        if head.count > 1:
            actions: list[Action] = [self._split(head)]
            if permanent:
                self._retry_at = now  # the receiver answers: try the parts at once
            else:
                self._backoff = self.retry_initial
                self._back_off(now, None)
            return actions
        head.probe_next = True
        self._retry_at = now  # probe right away
        return []

    def discard_head(self, now: float) -> list[Action]:
        """The head batch cannot be sent (its records are unreadable): count it rejected."""
        self._in_flight = None
        return self._finish(self.pending[0], False, now, "unreadable")

    # -- state -------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a Send or Probe is in flight."""
        return self._in_flight is not None

    @property
    def idle(self) -> bool:
        """True when nothing is held."""
        return not self.held_records and not self.pending

    def _probed(self, head: Batch, result: ExportResult, now: float) -> list[Action]:
        head.probe_next = False  # the next action sends the record again
        if result.outcome is not Outcome.SUCCESS:
            self._back_off(now, result.retry_after)  # refuses everything: down, or misconfigured
            return []
        head.refusals += 1
        needed = 1 if head.last is Outcome.PERMANENT else self.probe_after
        if head.refusals >= needed:
            reason = "refused" if head.last is Outcome.PERMANENT else "failed"
            return self._finish(head, False, now, reason)
        self._back_off(now, None)
        return []

    def _back_off(self, now: float, at_least: float | None) -> None:
        delay = self._backoff * self._jitter()
        if at_least is not None:
            delay = max(delay, at_least)
        self._backoff = min(self._backoff * 2, self.retry_max)
        self._retry_at = now + delay

    def _finish(self, head: Batch, delivered: bool, now: float, reason: str = "") -> list[Action]:
        self.pending.popleft()
        self.held_records -= head.count
        self.held_bytes -= head.nbytes
        if delivered:
            self.delivered += head.count
        else:
            self.rejected += head.count
        self._backoff = self.retry_initial
        self._retry_at = now
        return [Finish(head, delivered, reason)]

    def _split(self, head: Batch) -> Split:
        at = head.count // 2
        first_bytes = sum(head.sizes[:at])
        parts = (
            Batch(head.records[:at], head.sizes[:at], first_bytes, split=True),
            Batch(head.records[at:], head.sizes[at:], head.nbytes - first_bytes, split=True),
        )
        self.pending.popleft()
        self.pending.extendleft(reversed(parts))
        return Split(head, parts)

    def _close(self) -> None:
        opened = self._open
        if opened.records:
            self.pending.append(Batch(opened.records, opened.sizes, opened.nbytes))
            self._open = _Open()
        self._flush = False

    def _enforce_bound(self) -> list[Action]:
        # The head batch is never evicted: it is in flight or being retried.
        evicted: list[Action] = []
        pending = self.pending
        while self.held_records > self.max_records or self.held_bytes > self.max_bytes:
            if len(pending) > 1:
                batch = pending[1]
                del pending[1]
                self.held_records -= batch.count
                self.held_bytes -= batch.nbytes
                self.evicted += batch.count
                evicted.append(Evict(batch))
                continue
            opened = self._open
            if not opened.records:
                break
            opened.records.pop(0)
            size = opened.sizes.pop(0)
            opened.nbytes -= size
            self.held_records -= 1
            self.held_bytes -= size
            self.evicted += 1
        return evicted
