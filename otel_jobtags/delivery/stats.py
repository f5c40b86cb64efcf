"""What a delivery processor reports: its counters, and the line saying a record was rejected.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk._logs import ReadableLogRecord

from .machine import Batch
from .outcome import Outcome

__all__ = ["DeliveryStats", "rejection_message"]


@dataclass(frozen=True)
class DeliveryStats:
    """Counters of a :class:`~otel_jobtags.delivery.DeliveryProcessor` (of this process, since it started).

    They always add up: ``emitted == delivered + queued + dropped + rejected``.
    """

    emitted: int
    """Records accepted (including those adopted from the spool)."""
    delivered: int
    """Records the receiver acknowledged."""
    queued: int
    """Records held now, in memory or in the spool, not yet delivered."""
    dropped: int
    """Records dropped: the oldest, past the bound, and any logged after shutdown began."""
    rejected: int
    """Records discarded: refused for good by the receiver (see docs/delivery.md), or whose
    spool file was corrupt."""
    failed_exports: int
    """Export attempts that failed (each is retried)."""
    replaced: int = 0
    """Records delivered with text UTF-8 cannot encode (lone surrogates) replaced by U+FFFD."""


def rejection_message(batch: Batch, kept: Path | None) -> tuple[str, str]:
    """The throttle key and the stderr line for a rejected batch (a single refused record,
    or a batch whose spool file was unreadable); ``kept``: where its spool file was set aside."""
    aside = f"; kept as {kept.name}" if kept is not None else ""
    records = batch.records or []
    if not records or type(records[0]) is not ReadableLogRecord:
        return "refused", f"rejected {batch.count} records{aside}"
    log_record = records[0].log_record
    scope = records[0].instrumentation_scope
    severity = log_record.severity_text or (
        log_record.severity_number.name if log_record.severity_number is not None else "-"
    )
    if batch.last is Outcome.PERMANENT:
        why = "the receiver refused a record while accepting empty requests"
    else:
        why = f"the receiver refused a record {batch.refusals} times while accepting empty requests"
    what = f"{scope.name if scope is not None else '-'} {severity}: {str(log_record.body)[:80]!r}"
    # One line per different record (a flood of the same one is throttled).
    return f"refused:{what}", f"{why}; rejected it: {what}{aside}"
