"""Real OTLP log receivers for tests: gRPC and HTTP/protobuf on real sockets.

Both decode ``ExportLogsServiceRequest`` with the official protobuf classes
and keep every log record they receive, flattened to :class:`ReceivedLog`.
They can be stopped and started again on the same port, to simulate an outage.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    return getattr(v, kind)


def _attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = _value(kv.value)
    return out


@dataclass(frozen=True)
class ReceivedLog:
    """One log record as a receiver got it."""

    body: Any
    severity_text: str
    severity_number: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str
    time_unix_nano: int
    trace_id: bytes = field(default=b"", repr=False)


def flatten(request: logs_service_pb2.ExportLogsServiceRequest) -> list[ReceivedLog]:
    """Every log record of an export request, with its resource and scope."""
    out: list[ReceivedLog] = []
    for rl in request.resource_logs:
        resource = _attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                out.append(
                    ReceivedLog(
                        body=_value(lr.body),
                        severity_text=lr.severity_text,
                        severity_number=int(lr.severity_number),
                        attributes=_attributes(lr.attributes),
                        resource=resource,
                        scope=sl.scope.name,
                        time_unix_nano=int(lr.time_unix_nano),
                        trace_id=bytes(lr.trace_id),
                    )
                )
    return out


class _Store:
    def __init__(self) -> None:
        self.records: list[ReceivedLog] = []
        self.requests = 0
        self._cond = threading.Condition()

    def add(self, request: logs_service_pb2.ExportLogsServiceRequest) -> None:
        batch = flatten(request)
        with self._cond:
            self.records.extend(batch)
            self.requests += 1
            self._cond.notify_all()

    def wait_for(
        self, count: int, timeout: float, predicate: Callable[[ReceivedLog], bool] | None
    ) -> list[ReceivedLog]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matching = [r for r in self.records if predicate is None or predicate(r)]
                remaining = deadline - time.monotonic()
                if len(matching) >= count or remaining <= 0:
                    return matching
                self._cond.wait(min(remaining, 0.2))


Refusal = Callable[[logs_service_pb2.ExportLogsServiceRequest], "tuple[Any, float | None] | None"]
"""Decides how a receiver answers a request: ``None`` to accept it, else ``(status, retry
after)`` -- a ``grpc.StatusCode`` (the delay sent as ``RetryInfo``) or an HTTP status (the
delay sent as ``Retry-After``). A refused request is counted in ``refused``, not stored."""


def record_count(request: logs_service_pb2.ExportLogsServiceRequest) -> int:
    """How many log records an export request holds."""
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


class _Receiver:
    """What both receivers share: a port, a record store, start/stop."""

    endpoint: str

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._store = _Store()
        self.refuse: Refusal | None = None
        """Set to refuse requests (see :data:`Refusal`), e.g. as a collector under backpressure."""
        self.refused = 0
        """Requests refused so far."""

    @property
    def records(self) -> list[ReceivedLog]:
        """Everything received so far (a copy)."""
        with self._store._cond:
            return list(self._store.records)

    @property
    def requests(self) -> int:
        """How many export requests arrived."""
        return self._store.requests

    def wait_for(
        self,
        count: int,
        timeout: float = 10.0,
        predicate: Callable[[ReceivedLog], bool] | None = None,
    ) -> list[ReceivedLog]:
        """Wait until ``count`` (matching) records arrived or ``timeout`` passed; return them."""
        return self._store.wait_for(count, timeout, predicate)

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> _Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: _Receiver) -> None:
        self.receiver = receiver

    def Export(  # noqa: N802 - the generated gRPC name
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: Any
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        refuse = self.receiver.refuse
        answer = refuse(request) if refuse is not None else None
        if answer is not None:
            code, delay = answer
            self.receiver.refused += 1
            if delay is not None:
                from google.protobuf.duration_pb2 import Duration
                from google.rpc.error_details_pb2 import RetryInfo

                info = RetryInfo(retry_delay=Duration(seconds=int(delay), nanos=int(delay % 1 * 1e9)))
                context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            context.abort(code, "refused by the test receiver")
        self.receiver._store.add(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class GrpcReceiver(_Receiver):
    """An OTLP/gRPC logs receiver on 127.0.0.1."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: grpc.Server | None = None

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self), server)
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None


class HttpReceiver(_Receiver):
    """An OTLP/HTTP (protobuf) logs receiver on 127.0.0.1.

    Args:
        port: the port; a free one by default.
        path: the path logs are posted to (``/v1/logs``; Loki serves ``/otlp/v1/logs``).
        status: the HTTP status to answer with (tests of failing back ends).
    """

    def __init__(self, port: int | None = None, path: str = "/v1/logs") -> None:
        super().__init__(port)
        self.path = path
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.endpoint = self.base_url + path
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        store, path, receiver = self._store, self.path, self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path != path:
                    self.send_response(404)
                    self.end_headers()
                    return
                request = logs_service_pb2.ExportLogsServiceRequest()
                request.ParseFromString(body)
                answer = receiver.refuse(request) if receiver.refuse is not None else None
                if answer is not None:
                    status, delay = answer
                    receiver.refused += 1
                    self.send_response(status)
                    if delay is not None:
                        self.send_header("Retry-After", f"{delay:g}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                store.add(request)
                payload = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="otlp-http-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
