"""A stand-in for Loki's query API, on a real socket, for the client's tests.

It answers ``GET /loki/api/v1/query_range`` with whatever the test queued (by
default an empty ``streams`` result) and records every request it received,
so a test can assert on the exact query parameters the client sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    """One request as the server saw it."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    """Header names lower-cased (HTTP header names are case-insensitive)."""


@dataclass
class Reply:
    """What to answer: a status, a body (JSON-encoded unless bytes/str), and a delay."""

    status: int = 200
    body: Any = field(default_factory=lambda: streams())
    delay: float = 0.0


def streams(*results: dict[str, Any]) -> dict[str, Any]:
    """A successful Loki answer with these streams."""
    return {"status": "success", "data": {"resultType": "streams", "result": list(results), "stats": {}}}


def stream(labels: dict[str, str], *values: tuple[int, str]) -> dict[str, Any]:
    """One stream of a Loki answer: labels and ``(nanoseconds, line)`` values."""
    return {"stream": labels, "values": [[str(ns), line] for ns, line in values]}


class FakeLoki:
    """The server; ``url`` is its base URL, ``received`` the requests, ``replies`` the queue."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: list[Reply] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                fake.received.append(
                    Received(parts.path, params, {k.lower(): v for k, v in self.headers.items()})
                )
                reply = fake.replies.pop(0) if fake.replies else Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body
                if not isinstance(body, (bytes, str)):
                    body = json.dumps(body)
                data = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-loki", daemon=True
        )

    def start(self) -> FakeLoki:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def reset(self) -> None:
        self.received.clear()
        self.replies.clear()


@contextmanager
def fake_loki() -> Iterator[FakeLoki]:
    server = FakeLoki().start()
    try:
        yield server
    finally:
        server.stop()
