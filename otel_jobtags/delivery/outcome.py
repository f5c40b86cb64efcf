"""What an export attempt says: delivered, worth retrying, or refused for good.

The stock OTLP exporters report only SUCCESS or FAILURE, which cannot tell a
receiver under backpressure (retry, keep everything) from one that refuses a
record (it will never accept it). The exporters of
:mod:`~otel_jobtags.delivery.exporters` classify each attempt by the OTLP
specification's rules ("Failures", OTLP/gRPC and OTLP/HTTP):

- gRPC ``CANCELLED``, ``DEADLINE_EXCEEDED``, ``ABORTED``, ``OUT_OF_RANGE``,
  ``UNAVAILABLE``, ``DATA_LOSS`` are retryable; ``RESOURCE_EXHAUSTED`` only
  when the server sends ``RetryInfo`` (whose delay is honoured); every other
  code is permanent.
- HTTP 429, 502, 503, 504 are retryable (``Retry-After`` honoured); other 4xx
  and 5xx are permanent; a connection error is retryable.
- An exception raised by an exporter is retryable.

A retryable failure where the client gave up waiting (gRPC
``DEADLINE_EXCEEDED``, an HTTP client timeout) is marked
:attr:`ExportResult.timed_out`: unlike one the receiver signalled
(``UNAVAILABLE``, 429, 503, ``RetryInfo``), it may mean only that the batch is
too big to cross the link within the export timeout, so the delivery machine
may split it (never reject it).

Any other exporter's FAILURE is :attr:`Outcome.UNKNOWN`.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol, runtime_checkable

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

__all__ = [
    "MAX_RETRY_AFTER",
    "ClassifyingExporter",
    "ExportResult",
    "Outcome",
    "classify_grpc",
    "classify_http",
    "export_classified",
    "parse_retry_after",
]

MAX_RETRY_AFTER = 300.0
"""Longest server-requested delay honoured, in seconds (a longer one is cut to this)."""


class Outcome(enum.Enum):
    """How an export attempt ended."""

    SUCCESS = "success"
    """The receiver accepted the batch."""
    RETRYABLE = "retryable"
    """The receiver is down or pushing back: retry later; never grounds for rejection."""
    PERMANENT = "permanent"
    """The receiver refused the batch and will refuse it again."""
    UNKNOWN = "unknown"
    """The exporter said FAILURE without saying why."""


@dataclass(frozen=True)
class ExportResult:
    """The classified result of one export attempt."""

    outcome: Outcome
    retry_after: float | None = None
    """Seconds the receiver asked to wait before the next attempt, if it did."""
    detail: str = ""
    """What the receiver or transport said, for reports."""
    timed_out: bool = False
    """The client gave up waiting (not a refusal or backpressure the receiver signalled)."""


SUCCESS = ExportResult(Outcome.SUCCESS)
UNKNOWN = ExportResult(Outcome.UNKNOWN, detail="exporter reported FAILURE")

_GRPC_RETRYABLE = frozenset(
    ("CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS")
)
_HTTP_RETRYABLE = frozenset((429, 502, 503, 504))


def classify_grpc(code: str, retry_delay: float | None, detail: str = "") -> ExportResult:
    """Classify a gRPC status (by name, e.g. ``"UNAVAILABLE"``).

    ``retry_delay`` is the delay of the ``google.rpc.RetryInfo`` the server
    sent in its trailing metadata, if any.
    """
    text = f"gRPC {code}" + (f": {detail}" if detail else "")
    if code == "OK":
        return SUCCESS
    if code in _GRPC_RETRYABLE:
        return ExportResult(Outcome.RETRYABLE, _cap(retry_delay), text, code == "DEADLINE_EXCEEDED")
    if code == "RESOURCE_EXHAUSTED" and retry_delay is not None:
        return ExportResult(Outcome.RETRYABLE, _cap(retry_delay), text)
    return ExportResult(Outcome.PERMANENT, None, text)


def classify_http(status: int, retry_after: float | None = None, detail: str = "") -> ExportResult:
    """Classify an HTTP status; ``retry_after`` is the parsed ``Retry-After`` header."""
    if 200 <= status < 300:
        return SUCCESS
    text = f"HTTP {status}" + (f": {detail}" if detail else "")
    if status in _HTTP_RETRYABLE:
        return ExportResult(Outcome.RETRYABLE, _cap(retry_after), text)
    return ExportResult(Outcome.PERMANENT, None, text)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _cap(delay: float | None) -> float | None:
    return None if delay is None else min(max(0.0, delay), MAX_RETRY_AFTER)


@runtime_checkable
class ClassifyingExporter(Protocol):
    """An exporter that says why an export failed."""

    def export_classified(self, batch: Sequence[ReadableLogRecord]) -> ExportResult:
        """Export once (no retries inside) and classify the result."""


def export_classified(exporter: LogRecordExporter, batch: Sequence[ReadableLogRecord]) -> ExportResult:
    """Export ``batch`` once through any exporter and classify the result; never raises."""
    try:
        if isinstance(exporter, ClassifyingExporter):
            return exporter.export_classified(batch)
        result = exporter.export(batch)
    except Exception as exc:  # an exporter that raises is treated as a transient failure
        return ExportResult(Outcome.RETRYABLE, None, f"exporter raised {type(exc).__name__}: {exc}")
    return SUCCESS if result is LogRecordExportResult.SUCCESS else UNKNOWN
