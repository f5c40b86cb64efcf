"""OTLP exporters that say why an export failed (see :mod:`~otel_jobtags.delivery.outcome`).

:class:`GrpcLogExporter` is the SDK's OTLP/gRPC exporter (same channel,
credentials, headers, compression and environment variables) with one attempt
per export and the status code classified. :class:`HttpLogExporter` posts the
SDK's encoding of the batch with ``requests`` and classifies the HTTP status,
honouring ``Retry-After``. Neither retries inside an export: the delivery
processor owns the retry loop, with backoff, bounded memory and shutdown.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .outcome import ExportResult, Outcome, classify_grpc, classify_http, parse_retry_after

__all__ = ["GrpcLogExporter", "HttpLogExporter"]


def _retry_delay(error: Any) -> float | None:
    """The delay of a ``google.rpc.RetryInfo`` in a gRPC error's trailing metadata."""
    try:
        metadata = dict(error.trailing_metadata() or ())
    except Exception:
        return None
    raw = metadata.get("google.rpc.retryinfo-bin")
    if raw is None:
        return None
    from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]

    info = RetryInfo()
    try:
        info.ParseFromString(raw)
    except Exception:
        return None
    return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)


class GrpcLogExporter(OTLPLogExporter):
    """The SDK's OTLP/gRPC log exporter, one attempt per export, classified.

    Takes the arguments of ``opentelemetry.exporter.otlp.proto.grpc.OTLPLogExporter``.
    """

    def export_classified(self, batch: Sequence[ReadableLogRecord]) -> ExportResult:
        """Export once and classify the result (an exception is retryable)."""
        import grpc  # type: ignore[import-untyped]

        # The SDK exporter's channel and stub, built from its settings; its
        # retry loop is what this class replaces.
        client = getattr(self, "_client", None)
        if client is None or getattr(self, "_shutdown", False):
            return ExportResult(Outcome.RETRYABLE, None, "exporter shut down")
        try:
            request = encode_logs(batch)
        except Exception as exc:  # this batch cannot be encoded, now or ever
            return ExportResult(Outcome.PERMANENT, None, f"cannot encode: {type(exc).__name__}: {exc}")
        try:
            client.Export(
                request=request,
                metadata=getattr(self, "_headers", None),
                timeout=getattr(self, "_timeout", 10.0),
            )
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            name = code.name if code is not None else "UNKNOWN"
            if name == "UNAVAILABLE":
                self._reconnect()
            details = error.details() if hasattr(error, "details") else ""
            return classify_grpc(name, _retry_delay(error), str(details or ""))
        except Exception as exc:
            return ExportResult(Outcome.RETRYABLE, None, f"{type(exc).__name__}: {exc}")
        return classify_grpc("OK", None)

    def _reconnect(self) -> None:
        # A channel that failed to connect waits out gRPC's own reconnect
        # backoff (up to 2 minutes) before it tries again; a new one does
        # not, so a receiver that comes back is reached at the next attempt.
        # The SDK exporter does the same on UNAVAILABLE.
        channel = getattr(self, "_channel", None)
        initialize = getattr(self, "_initialize_channel_and_stub", None)
        if channel is None or initialize is None:
            return
        try:
            channel.close()
            initialize()
        except Exception:
            return

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Export once; SUCCESS or FAILURE."""
        outcome = self.export_classified(batch).outcome
        return LogRecordExportResult.SUCCESS if outcome is Outcome.SUCCESS else LogRecordExportResult.FAILURE


class HttpLogExporter(LogRecordExporter):
    """OTLP/HTTP (protobuf) log exporter, one attempt per export, classified.

    Args:
        endpoint: the full URL, e.g. ``http://localhost:4318/v1/logs``.
        headers: sent with every request.
        timeout: seconds per request.
        compression: ``"gzip"`` or ``None``.
        certificate_file: CA bundle for HTTPS; else
            ``OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE``/``OTEL_EXPORTER_OTLP_CERTIFICATE``,
            else the system's.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        compression: str | None = None,
        certificate_file: str | None = None,
    ) -> None:
        import requests

        self.endpoint = endpoint
        self.timeout = timeout
        self.compression = compression
        self._headers = {"Content-Type": "application/x-protobuf", **(headers or {})}
        if compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"
        self._verify: str | bool = (
            certificate_file
            or os.environ.get("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE")
            or os.environ.get("OTEL_EXPORTER_OTLP_CERTIFICATE")
            or True
        )
        self._session = requests.Session()
        self._shutdown = False

    def export_classified(self, batch: Sequence[ReadableLogRecord]) -> ExportResult:
        """Post once and classify the result (a connection error is retryable)."""
        import requests

        if self._shutdown:
            return ExportResult(Outcome.RETRYABLE, None, "exporter shut down")
        data = encode_logs(batch).SerializeToString()
        if self.compression == "gzip":
            data = gzip.compress(data)
        try:
            response = self._session.post(
                self.endpoint, data=data, headers=self._headers, timeout=self.timeout, verify=self._verify
            )
        except requests.RequestException as exc:
            timed_out = isinstance(exc, requests.Timeout) and not isinstance(exc, requests.ConnectTimeout)
            return ExportResult(Outcome.RETRYABLE, None, f"{type(exc).__name__}: {exc}", timed_out)
        return classify_http(
            response.status_code,
            parse_retry_after(response.headers.get("Retry-After")),
            response.reason or "",
        )

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Post once; SUCCESS or FAILURE."""
        try:
            outcome = self.export_classified(batch).outcome
        except Exception:
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS if outcome is Outcome.SUCCESS else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        """Close the connection pool; later exports fail as retryable."""
        self._shutdown = True
        self._session.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True
