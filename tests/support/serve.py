"""Helpers for tests of ``otel-jobtags serve``: an in-process server, raw OTLP requests, waiting."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from otel_jobtags.receiver import Address, EmbeddedServer, ServeConfig

__all__ = ["LOOPBACK_ANY_PORT", "export_request", "post", "running_server", "serve_process", "wait_until"]

LOOPBACK_ANY_PORT = Address("127.0.0.1", 0)
REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@contextmanager
def running_server(db: Path, **options: Any) -> Iterator[EmbeddedServer]:
    """An embedded server on free loopback ports (web view off unless ``http`` is given)."""
    settings: dict[str, Any] = {"otlp_grpc": LOOPBACK_ANY_PORT, "otlp_http": LOOPBACK_ANY_PORT, "http": None}
    settings.update(options)
    with EmbeddedServer(ServeConfig(db=db, **settings)) as server:
        yield server


def export_request(
    bodies: list[str],
    *,
    tag: str = "AUTO_REBAL",
    service: str = "raw",
    start_ns: int = 1_780_000_000_000_000_000,
) -> bytes:
    """A protobuf export of INFO records with these bodies, tagged ``tag``, 1 µs apart from ``start_ns``."""
    records = [
        LogRecord(
            time_unix_nano=start_ns + i * 1000,
            severity_number=9,
            severity_text="INFO",
            body=AnyValue(string_value=body),
            attributes=[KeyValue(key="job.tag", value=AnyValue(string_value=tag))],
        )
        for i, body in enumerate(bodies)
    ]
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=records)])]
    )
    return request.SerializeToString()


def post(
    port: int, body: bytes, content_type: str = "application/x-protobuf", **headers: str
) -> tuple[int, bytes]:
    """POST ``body`` to ``/v1/logs``; the status and body of the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        all_headers = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
        connection.request("POST", "/v1/logs", body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until(probe: Callable[[], T], timeout: float = 30.0) -> T:
    """Call ``probe`` until it returns something true (or ``timeout`` passes); return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@contextmanager
def serve_process(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``otel-jobtags serve ARGS`` of this checkout in a subprocess, with its OTLP/HTTP receiver's port.

    Pass ``--otlp-http 127.0.0.1:0`` for a free port. The process is stopped (SIGTERM, then SIGKILL) at the end.
    """
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO), environment.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_jobtags", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        assert process.stdout is not None
        port = 0
        for line in process.stdout:
            found = re.search(r"OTLP/HTTP +http://127\.0\.0\.1:(\d+)/v1/logs", line)
            if found:
                port = int(found.group(1))
                break
        assert port, f"serve did not start: {process.stderr.read() if process.stderr else ''}"
        yield process, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(30)
