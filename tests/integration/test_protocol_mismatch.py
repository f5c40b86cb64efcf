"""Pointing the exporter at the other protocol's port: a hint on stderr (real exporters and receivers)."""

from __future__ import annotations

import logging
import time

import pytest
from support.otlp import GrpcReceiver, HttpReceiver

import otel_jobtags
from otel_jobtags import TagRegistry

GRPC_AT_HTTP_PORT = (
    "hint: the endpoint answers HTTP/1.1, not gRPC: it looks like an OTLP/HTTP port (4318); "
    "set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, or point the endpoint at the gRPC port (4317)"
)
HTTP_AT_GRPC_PORT = (
    "hint: the endpoint answers HTTP/2 (gRPC), not OTLP/HTTP: it looks like an OTLP/gRPC port (4317); "
    "set OTEL_EXPORTER_OTLP_PROTOCOL=grpc, or point the endpoint at the HTTP port (4318)"
)


def stderr_after_a_failed_export(
    registry: TagRegistry, capsys: pytest.CaptureFixture[str], endpoint: str, protocol: str, expected: str
) -> str:
    installation = otel_jobtags.install(
        registry, endpoint=endpoint, protocol=protocol, level="INFO", export_timeout=1, shutdown_timeout=1
    )
    logging.getLogger("app").info("hello")
    err = ""
    deadline = time.monotonic() + 60  # bounded wait for the exporter's own report of the failure
    while expected not in err and time.monotonic() < deadline:
        installation.force_flush(timeout_millis=1000)
        err += capsys.readouterr().err
    installation.shutdown()
    return err + capsys.readouterr().err


def test_grpc_sent_to_an_otlp_http_port_gets_a_hint(
    registry: TagRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    with HttpReceiver() as receiver:
        err = stderr_after_a_failed_export(
            registry, capsys, f"http://127.0.0.1:{receiver.port}", "grpc", GRPC_AT_HTTP_PORT
        )
    assert GRPC_AT_HTTP_PORT in err


def test_http_sent_to_an_otlp_grpc_port_gets_a_hint(
    registry: TagRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    with GrpcReceiver() as receiver:
        err = stderr_after_a_failed_export(
            registry, capsys, f"http://127.0.0.1:{receiver.port}", "http/protobuf", HTTP_AT_GRPC_PORT
        )
    assert HTTP_AT_GRPC_PORT in err
