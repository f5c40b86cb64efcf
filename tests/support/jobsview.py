"""A day of known records for the jobs view's tests, screenshots and benchmark.

:func:`scenario` builds a registry and the records six jobs left in the 24
hours before :data:`NOW` (one not registered, one never seen), each job in a
state the view must show: ok, failing and late, late with a missed run, two
processes running one job at once. :data:`EXPECTED` holds the figures the
overview must show for them, counted here independently of the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from otel_jobtags import TagRegistry
from otel_jobtags.store import NewRecord

__all__ = ["EXPECTED", "NOW", "Answer", "Expected", "call", "cells", "registry", "scenario", "serve_wsgi"]

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
"""The view's clock in tests that use :func:`scenario`."""
DAY = timedelta(days=1)
RUNS_LOGGER = "otel_jobtags.runs"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/shop/jobs.py", line 42, in auto_rebalance\n'
    "    client.rebalance(portfolio)\n"
    '  File "/srv/shop/broker.py", line 118, in rebalance\n'
    '    raise UpstreamError(f"upstream answered {status} for {path}")\n'
    "shop.broker.UpstreamError: upstream answered 503 for /api/rebalance"
)
WEB_1 = {"service.name": "shop", "service.instance.id": "web-1", "process.pid": 4101}
WEB_2 = {"service.name": "shop", "service.instance.id": "web-2", "process.pid": 4102}
LEVEL_NUMBERS = {"DEBUG": 5, "INFO": 9, "WARNING": 13, "ERROR": 17, "CRITICAL": 21}


def registry() -> TagRegistry:
    """The scenario's jobs (LEGACY_SYNC logs too, but is not registered)."""
    jobs = TagRegistry()
    jobs.define("PRICE_CACHE", "price_cache", "refresh the price cache", "every 5 s")
    jobs.define("AUTO_REBAL", "auto_rebalance", "automatic portfolio rebalancing", "hourly at minute 17")
    jobs.define(
        "TOKEN_REFRESH", "securities_token_refresh", "refresh the broker's OAuth token", "hourly at minute 0"
    )
    jobs.define("NIGHTLY_EXPORT", "nightly_export", "export the day's trades", "daily 02:00")
    jobs.define("REPORTS", "reports", "build the sales reports", "every 15 min")
    jobs.define("CLEANUP", "cleanup", "purge expired sessions", "manual")
    return jobs


@dataclass
class Expected:
    """What the overview must show for one job over the 24 hours before :data:`NOW`."""

    status: tuple[str, ...]
    runs: int = 0
    failures: int = 0
    by_level: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LEVEL_NUMBERS, 0))
    last_success: datetime | None = None
    durations: list[float] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(self.by_level.values())

    @property
    def p95_duration_ms(self) -> float | None:
        if not self.durations:
            return None
        ordered = sorted(self.durations)
        return ordered[-(-95 * len(ordered) // 100) - 1]


EXPECTED: dict[str, Expected] = {}


class _Log:
    """Collects records, and counts them into :data:`EXPECTED` when they fall in the window."""

    def __init__(self, expected: dict[str, Expected]) -> None:
        self.records: list[NewRecord] = []
        self.expected = expected
        self.run_ids: dict[str, int] = {}

    def run_id(self, tag: str) -> str:
        self.run_ids[tag] = self.run_ids.get(tag, 0) + 1
        return f"{tag.lower()[:4]}{self.run_ids[tag]:04d}"

    def line(
        self,
        tag: str,
        at: datetime,
        level: str,
        body: str,
        *,
        run_id: str | None = None,
        resource: dict[str, Any] = WEB_1,
        scope: str = "shop.jobs",
        **attributes: Any,
    ) -> None:
        attrs: dict[str, Any] = {"job.tag": tag, "job.id": tag.lower(), **attributes}
        if run_id is not None:
            attrs["job.run_id"] = run_id
        self.records.append(
            NewRecord(
                time_ns=int(at.timestamp() * 1e9),
                severity_number=LEVEL_NUMBERS[level],
                severity_text=level,
                body=body,
                attributes=attrs,
                resource=resource,
                scope=scope,
            )
        )
        if NOW - DAY <= at < NOW:
            self.expected[tag].by_level[level] += 1

    def run(
        self,
        tag: str,
        end: datetime,
        outcome: str,
        duration_ms: float | None,
        *,
        run_id: str,
        runs: int = 1,
        resource: dict[str, Any] = WEB_1,
    ) -> None:
        level = {"success": "INFO", "error": "ERROR"}.get(outcome, "WARNING")
        attributes: dict[str, Any] = {"job.outcome": outcome, "job.scheduled_time": end.isoformat()}
        if duration_ms is not None:
            attributes["job.duration_ms"] = duration_ms
        if runs > 1:
            attributes["job.runs"] = runs
        if outcome == "error":
            attributes["exception.type"] = "shop.broker.UpstreamError"
            attributes["exception.stacktrace"] = TRACEBACK
        body = {
            "success": f"run finished in {duration_ms} ms"
            if runs == 1
            else f"{runs} runs finished in the last 5 min, {duration_ms} ms on average",
            "error": f"run failed after {duration_ms} ms: shop.broker.UpstreamError: upstream answered 503 for /api/rebalance",
            "missed": "run missed: it was due at 02:00 and could not start within its misfire grace time",
        }[outcome]
        self.line(tag, end, level, body, run_id=run_id, resource=resource, scope=RUNS_LOGGER, **attributes)
        expected = self.expected[tag]
        if outcome == "success":
            expected.last_success = max(end, expected.last_success or end)
        if NOW - DAY <= end < NOW:
            expected.runs += runs
            expected.failures += outcome == "error"
            if duration_ms is not None:
                expected.durations.append(duration_ms)


def _hours(start: datetime, end: datetime, minute: int) -> Iterator[datetime]:
    at = start.replace(minute=minute, second=0, microsecond=0)
    while at < end:
        if at >= start:
            yield at
        at += timedelta(hours=1)


def scenario() -> tuple[TagRegistry, list[NewRecord]]:
    """The registry and the records, oldest first; fills :data:`EXPECTED`."""
    EXPECTED.clear()
    EXPECTED.update(
        PRICE_CACHE=Expected(status=()),
        AUTO_REBAL=Expected(status=("failing", "late")),
        TOKEN_REFRESH=Expected(status=()),
        NIGHTLY_EXPORT=Expected(status=("late",)),
        REPORTS=Expected(status=("overlapping",)),
        CLEANUP=Expected(status=()),
        LEGACY_SYNC=Expected(status=()),
    )
    log = _Log(EXPECTED)
    start = NOW - DAY - timedelta(hours=2)
    # PRICE_CACHE: every 5 s, successes summarised every 5 minutes (60 runs each).
    at = start
    while at < NOW - timedelta(seconds=30):
        run_id = log.run_id("PRICE_CACHE")
        log.line("PRICE_CACHE", at, "DEBUG", "fetched 40 symbols", run_id=run_id)
        log.line(
            "PRICE_CACHE",
            at + timedelta(seconds=1),
            "INFO",
            f"📊 status summary - changed prices: {at.minute % 4}",
            run_id=run_id,
        )
        log.run(
            "PRICE_CACHE", at + timedelta(seconds=2), "success", 12.5 + at.minute % 3, run_id=run_id, runs=60
        )
        at += timedelta(minutes=5)
    # AUTO_REBAL: hourly at :17; succeeds until 08:17, then fails with a traceback.
    for at in _hours(start, NOW, 17):
        run_id = log.run_id("AUTO_REBAL")
        log.line("AUTO_REBAL", at, "INFO", "🔄 job started", run_id=run_id)
        log.line("AUTO_REBAL", at + timedelta(seconds=1), "DEBUG", "processed: 5 items", run_id=run_id)
        if at.hour <= 8 or at < NOW - timedelta(hours=12):
            log.run("AUTO_REBAL", at + timedelta(seconds=3), "success", 3012.0 + at.hour, run_id=run_id)
            continue
        log.line(
            "AUTO_REBAL",
            at + timedelta(seconds=2),
            "ERROR",
            "❌ failed <script>alert(1)</script>",
            run_id=run_id,
            **{"exception.type": "shop.broker.UpstreamError", "exception.stacktrace": TRACEBACK},
        )
        log.run("AUTO_REBAL", at + timedelta(seconds=3), "error", 2040.0, run_id=run_id)
    # TOKEN_REFRESH: hourly at :00, always fine, with a warning now and then.
    for at in _hours(start, NOW, 0):
        run_id = log.run_id("TOKEN_REFRESH")
        log.line("TOKEN_REFRESH", at, "INFO", "🔑 token refreshed, valid for 60 min", run_id=run_id)
        if at.hour % 6 == 0:
            log.line("TOKEN_REFRESH", at, "WARNING", "token endpoint slow: 2.1 s", run_id=run_id)
        log.run("TOKEN_REFRESH", at + timedelta(seconds=1), "success", 480.0, run_id=run_id)
    # NIGHTLY_EXPORT: succeeded two nights ago; last night's run was missed.
    two_nights = (NOW - timedelta(days=2)).replace(hour=2, minute=0)
    run_id = log.run_id("NIGHTLY_EXPORT")
    log.line("NIGHTLY_EXPORT", two_nights, "INFO", "exported 1,204 trades", run_id=run_id)
    log.run("NIGHTLY_EXPORT", two_nights + timedelta(minutes=4), "success", 240_000.0, run_id=run_id)
    log.run(
        "NIGHTLY_EXPORT", NOW.replace(hour=2, minute=0), "missed", None, run_id=log.run_id("NIGHTLY_EXPORT")
    )
    # REPORTS: every 15 min on web-1; in the last hour web-2 started its own scheduler too.
    at = start.replace(minute=0)
    while at < NOW:
        for resource in (WEB_1, WEB_2) if at >= NOW - timedelta(hours=1) else (WEB_1,):
            run_id = log.run_id("REPORTS")
            log.line("REPORTS", at, "INFO", "building 3 reports", run_id=run_id, resource=resource)
            log.run(
                "REPORTS", at + timedelta(seconds=40), "success", 40_000.0, run_id=run_id, resource=resource
            )
        at += timedelta(minutes=15)
    # LEGACY_SYNC: not in the registry, no run records; a few lines.
    for hours in (20, 9, 3):
        log.line("LEGACY_SYNC", NOW - timedelta(hours=hours), "INFO", "synced 12 accounts")
    log.line("LEGACY_SYNC", NOW - timedelta(hours=3), "WARNING", "account 7 skipped: locked")
    log.records.sort(key=lambda r: r.time_ns)
    return registry(), log.records


@dataclass
class Answer:
    """What a WSGI app answered."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def call(
    app: Any,
    path: str,
    query: str = "",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    script_name: str = "",
    body: bytes = b"",
) -> Answer:
    """One request to a WSGI app, in process."""
    import io
    from wsgiref.util import setup_testing_defaults

    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(
        REQUEST_METHOD=method,
        PATH_INFO=path,
        QUERY_STRING=query,
        SCRIPT_NAME=script_name,
        CONTENT_LENGTH=str(len(body)) if body else "",
    )
    environ["wsgi.input"] = io.BytesIO(body)
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(response_headers)

    content = b"".join(app(environ, start_response))
    return Answer(answer["status"], answer["headers"], content)


def cells(html: str, row_attr: str = "data-job") -> dict[str, dict[str, str]]:
    """The text of each cell (by its class) of each table row with ``row_attr`` (by its value)."""
    from html.parser import HTMLParser

    rows: dict[str, dict[str, str]] = {}

    class Cells(HTMLParser):
        row: str | None = None
        cell: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            if tag == "tr" and found.get(row_attr):
                self.row = found[row_attr]
                rows[self.row] = {}
            elif tag == "td" and self.row is not None:
                self.cell = (found.get("class") or "").split(" ")[-1]
                rows[self.row][self.cell] = ""

        def handle_endtag(self, tag: str) -> None:
            if tag == "td":
                self.cell = None
            elif tag == "tr":
                self.row = None

        def handle_data(self, data: str) -> None:
            if self.row is not None and self.cell is not None:
                rows[self.row][self.cell] += data

    Cells().feed(html)
    return {row: {k: " ".join(v.split()) for k, v in found.items()} for row, found in rows.items()}


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port in a thread; yields its base URL."""
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, name="wsgi", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
