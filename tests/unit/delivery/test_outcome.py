"""Export results classified by the OTLP specification's retry rules."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_jobtags.delivery.exporters import HttpLogExporter
from otel_jobtags.delivery.outcome import (
    ExportResult,
    Outcome,
    classify_grpc,
    classify_http,
    export_classified,
    parse_retry_after,
)

RETRYABLE, PERMANENT, SUCCESS = Outcome.RETRYABLE, Outcome.PERMANENT, Outcome.SUCCESS


@pytest.mark.parametrize(
    ("code", "retry_delay", "expected"),
    [
        ("OK", None, ExportResult(SUCCESS)),
        ("CANCELLED", None, ExportResult(RETRYABLE, None, "gRPC CANCELLED")),
        ("DEADLINE_EXCEEDED", None, ExportResult(RETRYABLE, None, "gRPC DEADLINE_EXCEEDED", timed_out=True)),
        ("ABORTED", None, ExportResult(RETRYABLE, None, "gRPC ABORTED")),
        ("OUT_OF_RANGE", None, ExportResult(RETRYABLE, None, "gRPC OUT_OF_RANGE")),
        ("UNAVAILABLE", 2.5, ExportResult(RETRYABLE, 2.5, "gRPC UNAVAILABLE")),
        ("DATA_LOSS", None, ExportResult(RETRYABLE, None, "gRPC DATA_LOSS")),
        ("RESOURCE_EXHAUSTED", 1.0, ExportResult(RETRYABLE, 1.0, "gRPC RESOURCE_EXHAUSTED")),
        ("RESOURCE_EXHAUSTED", None, ExportResult(PERMANENT, None, "gRPC RESOURCE_EXHAUSTED")),
        ("INVALID_ARGUMENT", None, ExportResult(PERMANENT, None, "gRPC INVALID_ARGUMENT")),
        ("UNAUTHENTICATED", None, ExportResult(PERMANENT, None, "gRPC UNAUTHENTICATED")),
        ("UNAVAILABLE", 3600.0, ExportResult(RETRYABLE, 300.0, "gRPC UNAVAILABLE")),
    ],
)
def test_grpc_status_codes_are_classified_by_the_otlp_rules(
    code: str, retry_delay: float | None, expected: ExportResult
) -> None:
    assert classify_grpc(code, retry_delay) == expected


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (200, None, ExportResult(SUCCESS)),
        (429, 7.0, ExportResult(RETRYABLE, 7.0, "HTTP 429")),
        (502, None, ExportResult(RETRYABLE, None, "HTTP 502")),
        (503, 1.0, ExportResult(RETRYABLE, 1.0, "HTTP 503")),
        (504, None, ExportResult(RETRYABLE, None, "HTTP 504")),
        (400, None, ExportResult(PERMANENT, None, "HTTP 400")),
        (401, None, ExportResult(PERMANENT, None, "HTTP 401")),
        (413, None, ExportResult(PERMANENT, None, "HTTP 413")),
        (500, None, ExportResult(PERMANENT, None, "HTTP 500")),
    ],
)
def test_http_statuses_are_classified_by_the_otlp_rules(
    status: int, retry_after: float | None, expected: ExportResult
) -> None:
    assert classify_http(status, retry_after) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("inf", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(header, now=now) == expected


class _Plain(LogRecordExporter):
    def __init__(self, result: LogRecordExportResult | Exception) -> None:
        self.result = result

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def test_a_plain_exporter_s_results_are_success_unknown_or_retryable_when_it_raises() -> None:
    assert export_classified(_Plain(LogRecordExportResult.SUCCESS), []) == ExportResult(SUCCESS)
    assert export_classified(_Plain(LogRecordExportResult.FAILURE), []) == ExportResult(
        Outcome.UNKNOWN, None, "exporter reported FAILURE"
    )
    assert export_classified(_Plain(ConnectionResetError("reset by peer")), []) == ExportResult(
        RETRYABLE, None, "exporter raised ConnectionResetError: reset by peer"
    )


def test_an_http_request_that_times_out_is_retryable_and_marked_timed_out() -> None:
    # A receiver that takes the connection and never answers: the client gives up.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        exporter = HttpLogExporter(f"http://127.0.0.1:{port}/v1/logs", timeout=0.2)
        try:
            result = export_classified(exporter, [])
        finally:
            exporter.shutdown()
    assert (result.outcome, result.retry_after, result.timed_out) == (RETRYABLE, None, True)
    assert result.detail.startswith("ReadTimeout: ")


def test_an_http_connection_refused_is_retryable_and_not_a_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    exporter = HttpLogExporter(f"http://127.0.0.1:{port}/v1/logs", timeout=2.0)
    try:
        result = export_classified(exporter, [])
    finally:
        exporter.shutdown()
    assert (result.outcome, result.timed_out) == (RETRYABLE, False)
    assert result.detail.startswith("ConnectionError: ")
