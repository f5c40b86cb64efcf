"""The WSGI application: routing, the token check, request limits, security headers, errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import StoreError, StoreQueryError
from ..store import Store
from ._figures import JobRow, Judge
from ._job_page import job_page
from ._pages import error_page, overview_page
from ._params import Query, RecordFilter, job_tag, record_filter, window

__all__ = ["CSP", "JobsView"]

StartResponse = Callable[..., Any]
Environ = Mapping[str, Any]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of every answer: nothing inline, nothing from elsewhere."""
MAX_QUERY = 4096
"""The longest query string accepted (longer: 414)."""
MAX_PATH = 512
COOKIE = "otel_jobtags_token"
BUCKETS = 60
"""Slices of the window in the sparklines and the levels chart."""
ASSETS = {
    "view.css": "text/css; charset=utf-8",
    "follow.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_PAGE_LINES = 100
_RECORD_PARAMS = {"job_tag": "job.tag", "level": "severity", "text": "text", "run_id": "run_id"}
_PAGE_PARAMS = {"job_tag": "job", "level": "level", "text": "q", "run_id": "run"}
_log = logging.getLogger(__name__)


class HTTPError(Exception):
    """An answer other than 200, with the message the user reads."""

    def __init__(self, status: HTTPStatus, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, list(headers)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class JobsView:
    """The view as one WSGI callable. Build it with :func:`otel_jobtags.web.create_app`."""

    def __init__(
        self,
        store: Store,
        judge: Judge,
        *,
        token: str | None,
        window: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self.store, self.judge, self.window, self.clock = store, judge, window, clock
        self._token = _digest(token) if token else None
        self._assets = {
            name: resources.files(__package__).joinpath("static").joinpath(name).read_bytes()
            for name in ASSETS
        }

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        base = str(environ.get("SCRIPT_NAME", "")).rstrip("/")
        path = str(environ.get("PATH_INFO", "")) or "/"
        is_api = path.startswith("/api/")
        try:
            status, headers, body = self._answer(environ, base, path)
        except HTTPError as exc:
            status, headers = exc.status, exc.headers
            body, ctype = self._error(base, exc, is_api)
            headers.append(("Content-Type", ctype))
        except Exception:  # a bug must not take the server down; the user gets a 500
            _log.exception("The jobs view failed on %s", path)
            failure = HTTPError(
                HTTPStatus.INTERNAL_SERVER_ERROR, "The view failed; the server's log has the details"
            )
            status, headers = failure.status, []
            body, ctype = self._error(base, failure, is_api)
            headers.append(("Content-Type", ctype))
        headers += [
            ("Content-Security-Policy", CSP),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
            ("Content-Length", str(len(body))),
            ("Server-Timing", f"app;dur={(time.perf_counter() - started) * 1000:.1f}"),
        ]
        if not any(name == "Cache-Control" for name, _ in headers):
            headers.append(("Cache-Control", "no-store"))
        start_response(f"{status.value} {status.phrase}", headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _error(self, base: str, exc: HTTPError, is_api: bool) -> tuple[bytes, str]:
        if is_api:
            return json.dumps({"error": exc.message}).encode(), "application/json"
        html = error_page(base, f"{exc.status.value} {exc.status.phrase}", exc.message, self.clock())
        return html.encode(), "text/html; charset=utf-8"

    def _answer(
        self, environ: Environ, base: str, path: str
    ) -> tuple[HTTPStatus, list[tuple[str, str]], bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            raise HTTPError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} is not allowed: the view is read-only",
                [("Allow", "GET, HEAD")],
            )
        query_string = str(environ.get("QUERY_STRING", ""))
        if len(query_string) > MAX_QUERY or len(path) > MAX_PATH:
            raise HTTPError(
                HTTPStatus.REQUEST_URI_TOO_LONG,
                f"The URL is too long: at most {MAX_QUERY} characters of query",
            )
        length = str(environ.get("CONTENT_LENGTH") or "0")
        if not length.isdigit() or int(length) > 0:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "A request to the view has no body")
        redirect = self._check_token(environ, base, path, query_string)
        if redirect is not None:
            return redirect
        try:
            return self._route(base, path, query_string)
        except StoreQueryError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        except StoreError as exc:
            raise HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None

    def _check_token(
        self, environ: Environ, base: str, path: str, query_string: str
    ) -> tuple[HTTPStatus, list[tuple[str, str]], bytes] | None:
        """Nothing when allowed; a redirect that sets the cookie after ``?token=``; else 401."""
        if self._token is None:
            return None
        auth = str(environ.get("HTTP_AUTHORIZATION", ""))
        if auth.startswith("Bearer ") and hmac.compare_digest(_digest(auth[7:].strip()), self._token):
            return None
        cookies = [c.strip().partition("=") for c in str(environ.get("HTTP_COOKIE", "")).split(";")]
        if any(name == COOKIE and hmac.compare_digest(value, self._token) for name, _, value in cookies):
            return None
        pairs = parse_qsl(query_string, keep_blank_values=True)
        given = [value for name, value in pairs if name == "token"]
        if len(given) == 1 and hmac.compare_digest(_digest(given[0]), self._token):
            rest = urlencode([(n, v) for n, v in pairs if n != "token"])
            location = f"{base}{path}" + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={self._token}; Path={base or '/'}; HttpOnly; SameSite=Strict"
            return HTTPStatus.SEE_OTHER, [("Location", location), ("Set-Cookie", cookie)], b""
        raise HTTPError(
            HTTPStatus.UNAUTHORIZED,
            "A token is required: send 'Authorization: Bearer <token>', "
            "or open the page once with ?token=<token>",
            [("WWW-Authenticate", 'Bearer realm="otel-jobtags"')],
        )

    # ------------------------------------------------------------------ routes

    def _route(
        self, base: str, path: str, query_string: str
    ) -> tuple[HTTPStatus, list[tuple[str, str]], bytes]:
        if path == "/":
            return self._html(self.overview(base, Query(query_string, {"window"})))
        if path.startswith("/jobs/") and path.count("/") == 2:
            allowed = {"level", "since", "until", "q", "run", "cursor"}
            return self._html(self.job(base, path[len("/jobs/") :], Query(query_string, allowed)))
        if path == "/api/v1/jobs":
            return self._json(self.jobs_json(Query(query_string, {"window"})))
        if path == "/api/v1/records":
            allowed = {*_RECORD_PARAMS.values(), "since", "until", "limit", "cursor", "after_id"}
            return self._json(self.records_json(Query(query_string, allowed)))
        if path.startswith("/static/") and path[len("/static/") :] in ASSETS:
            name = path[len("/static/") :]
            headers = [("Content-Type", ASSETS[name]), ("Cache-Control", "max-age=300")]
            return HTTPStatus.OK, headers, self._assets[name]
        raise HTTPError(HTTPStatus.NOT_FOUND, f"No page at {path[:200]!r}: the overview is at {base}/")

    @staticmethod
    def _html(text: str) -> tuple[HTTPStatus, list[tuple[str, str]], bytes]:
        return HTTPStatus.OK, [("Content-Type", "text/html; charset=utf-8")], text.encode("utf-8")

    @staticmethod
    def _json(value: object) -> tuple[HTTPStatus, list[tuple[str, str]], bytes]:
        body = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")).encode("utf-8")
        return HTTPStatus.OK, [("Content-Type", "application/json")], body

    # ------------------------------------------------------------------ pages

    def overview(self, base: str, query: Query) -> str:
        """The overview's HTML."""
        now = self.clock()
        span = window(query, self.window)
        rows = self.judge.rows(self.store, now, span, BUCKETS)
        return overview_page(base, rows, now, span)

    def _known_row(self, now: datetime, since: datetime, until: datetime, tag: str) -> JobRow:
        tag = job_tag(tag)
        if self.judge.known(tag) is None and tag not in self.store.job_tags():
            known = [t.name for t in self.judge.registry] if self.judge.registry is not None else []
            known += [t for t in self.store.job_tags() if t not in known]
            raise HTTPError(
                HTTPStatus.NOT_FOUND, f"Unknown job {tag!r}: known jobs are {', '.join(known) or 'none yet'}"
            )
        return self.judge.row(self.store, now, since, until, BUCKETS, tag)

    def job(self, base: str, tag: str, query: Query) -> str:
        """A job's page's HTML."""
        now = self.clock()
        f = record_filter(
            query, now, job=tag, default_since=self.window, default_limit=_PAGE_LINES, names=_PAGE_PARAMS
        )
        assert f.job_tag is not None
        until = f.until or now
        row = self._known_row(now, f.since, until, f.job_tag)
        lines = self._records(f)
        levels = self.store.levels_over_time(f.job_tag, since=f.since, until=until, buckets=BUCKETS)
        runs = self.store.runs(f.job_tag, since=f.since, until=until, limit=500)
        api = {
            "job.tag": f.job_tag,
            "severity": f.level or "",
            "text": f.text or "",
            "run_id": f.run_id or "",
        }
        given = {k: v for k in ("level", "since", "until", "q", "run") if (v := query.get(k))}
        return job_page(
            base,
            row,
            now=now,
            f=f,
            given=given,
            levels=levels,
            runs=runs,
            lines=lines,
            api_query=urlencode({k: v for k, v in api.items() if v}),
            default_since=self.window,
        )

    def _records(self, f: RecordFilter) -> Any:
        return self.store.records(
            job_tag=f.job_tag,
            min_severity=f.min_severity,
            since=f.since,
            until=f.until,
            text=f.text,
            run_id=f.run_id,
            limit=f.limit,
            cursor=f.cursor,
            after_id=f.after_id,
        )

    # ------------------------------------------------------------------ JSON

    def jobs_json(self, query: Query) -> dict[str, Any]:
        """``GET /api/v1/jobs``: the overview's figures."""
        now = self.clock()
        span = window(query, self.window)
        rows = self.judge.rows(self.store, now, span, BUCKETS)
        return {
            "now": now.isoformat(),
            "since": (now - span).isoformat(),
            "window_seconds": span.total_seconds(),
            "jobs": [_job_json(row) for row in rows],
        }

    def records_json(self, query: Query) -> dict[str, Any]:
        """``GET /api/v1/records``: records, newest first."""
        f = record_filter(
            query, self.clock(), job=None, default_since=self.window, default_limit=200, names=_RECORD_PARAMS
        )
        page = self._records(f)
        return {
            "records": [record.to_json() for record in page.records],
            "next_cursor": page.next_cursor,
            "latest_id": page.latest_id,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _job_json(row: JobRow) -> dict[str, Any]:
    a, policy = row.activity, row.policy
    rules = None
    if policy is not None:
        late = policy.late_window
        rules = {
            "late_after_seconds": None if late is None else late.total_seconds(),
            "failure_threshold": policy.failure_threshold,
            "failure_window_seconds": policy.failure_window.total_seconds(),
            "overlap_window_seconds": policy.overlap_window.total_seconds(),
        }
    return {
        "job_tag": row.tag,
        "job_id": row.job_id,
        "description": row.description,
        "schedule": row.schedule,
        "registered": row.schedule is not None,
        "status": None if row.status is None else (row.status[0] if row.status else "ok"),
        "alerts": None if row.status is None else list(row.status),
        "rules": rules,
        "records": a.records,
        "by_level": a.by_level,
        "volume": a.volume,
        "runs": a.runs,
        "failures": a.failures,
        "last_success": _iso(a.last_success),
        "last_run": _iso(a.last_run),
        "last_seen": _iso(a.last_seen),
        "p95_duration_ms": a.p95_duration_ms,
    }
