"""The OTLP/HTTP logs receiver: ``POST /v1/logs``, protobuf or JSON, gzip or not.

Each export is answered only after its records are committed to the store:
``200`` then means the records are on disk. A payload that is not an export
gets ``400``, one over the size limit ``413``, a store that cannot write
``503`` (the exporter retries); no request can stop the server.
"""

from __future__ import annotations

import hmac
import json
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from ..errors import StoreError
from ..store import NewRecord, Store
from .decode import PayloadError, records_from_json, records_from_protobuf

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "LOGS_PATH", "OtlpHttpReceiver"]

LOGS_PATH = "/v1/logs"
DEFAULT_MAX_REQUEST_BYTES = 16 << 20
"""The largest export accepted, in bytes, before and after decompression (16 MiB)."""
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
_EMPTY_RESPONSE = ExportLogsServiceResponse().SerializeToString()


class _TooLargeError(Exception):
    pass


def _inflate(data: bytes, encoding: str, limit: int) -> bytes:
    """``data`` decompressed (gzip or deflate), at most ``limit`` bytes."""
    wbits = 31 if encoding == "gzip" else 15
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise PayloadError(f"the body is not valid {encoding}: {exc}") from None
    if len(out) > limit:
        raise _TooLargeError
    return out


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (always true without a token)."""
    if token is None:
        return True
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: Store
    token: str | None
    max_bytes: int


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK's exporter reuses its connection
    disable_nagle_algorithm = True  # the answer is two writes (headers, body): no 40 ms delayed-ACK stall
    timeout = 60  # seconds a connection may stay silent (idle keep-alive, a stalled body) before it closes
    server_version = "otel-jobtags"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per export would drown the terminal

    def _reply(
        self, status: int, body: bytes, content_type: str, *, close: bool = False, **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, *, close: bool = False, **headers: str) -> None:
        # OTLP/HTTP: failures carry a google.rpc.Status; JSON is what every client can read.
        body = json.dumps({"code": status, "message": message}).encode()
        self._reply(status, body, _JSON, close=close, **headers)

    def do_GET(self) -> None:
        self._error(405, f"send OTLP logs with POST {LOGS_PATH}", Allow="POST")

    def do_POST(self) -> None:
        try:
            self._export()
        except Exception as exc:  # a bug must cost one request, not the receiver
            print(f"otel-jobtags serve: OTLP/HTTP request failed: {exc!r}", file=sys.stderr)
            self._error(500, "internal error", close=True)

    def _export(self) -> None:
        server = self.server
        if self.path.split("?", 1)[0] != LOGS_PATH:
            self._drain_or_close()
            self._error(404, f"no such path {self.path!r}: OTLP logs go to {LOGS_PATH}")
            return
        if not authorized(self.headers.get("Authorization"), server.token):
            self._drain_or_close()
            self._error(
                401, "send the serve token as 'Authorization: Bearer <token>'", WWW_Authenticate="Bearer"
            )
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._error(411, "send a Content-Length (chunked bodies are not accepted)", close=True)
            return
        length = int(length_header)
        if length > server.max_bytes:
            self._error(413, f"the export is {length} bytes; the limit is {server.max_bytes}", close=True)
            return
        data = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            if encoding in ("gzip", "deflate"):
                data = _inflate(data, encoding, server.max_bytes)
            elif encoding != "identity":
                self._error(415, f"Content-Encoding {encoding!r} is not supported: use gzip, deflate or none")
                return
            if content_type == _PROTOBUF:
                records = records_from_protobuf(data)
            elif content_type == _JSON:
                records = records_from_json(data)
            else:
                self._error(
                    415, f"Content-Type {content_type!r} is not supported: use {_PROTOBUF} or {_JSON}"
                )
                return
        except _TooLargeError:
            self._error(413, f"the export is over {server.max_bytes} bytes once decompressed")
            return
        except PayloadError as exc:
            self._error(400, str(exc))
            return
        if not self._store(records):
            return
        if content_type == _JSON:
            self._reply(200, b"{}", _JSON)
        else:
            self._reply(200, _EMPTY_RESPONSE, _PROTOBUF)

    def _store(self, records: list[NewRecord]) -> bool:
        try:
            self.server.store.append(records)
        except StoreError as exc:
            print(f"otel-jobtags serve: {exc}", file=sys.stderr)
            self._error(503, "the store cannot write now; retry", Retry_After="1")
            return False
        return True

    def _drain_or_close(self) -> None:
        """Read a refused request's body so the connection can serve the next one, if it is small."""
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) <= self.server.max_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True


class OtlpHttpReceiver:
    """An OTLP/HTTP logs receiver writing to a :class:`~otel_jobtags.store.Store`, on a thread.

    Args:
        store: where records go.
        host: the address to bind (``127.0.0.1`` by default).
        port: the port (4318 by default; 0 picks a free one).
        token: when set, every request needs ``Authorization: Bearer <token>``.
        max_bytes: the largest export accepted (413 beyond), compressed or not.
    """

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 4318,
        *,
        token: str | None = None,
        max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.store, self._server.token, self._server.max_bytes = store, token, max_bytes
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-http", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """The base URL an OTLP/HTTP exporter is given (``/v1/logs`` is appended by the exporter)."""
        host = str(self._server.server_address[0])
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        """Serve on a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which may never have started
            self._server.shutdown()
        self._server.server_close()
