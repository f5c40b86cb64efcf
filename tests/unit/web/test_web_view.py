"""The jobs view (otel_jobtags.web) over a store holding a known day of records, through WSGI calls."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from support.jobsview import EXPECTED, NOW, call, cells, scenario

from otel_jobtags import ConfigError, TagRegistry
from otel_jobtags.grafana import alert_policies, is_late
from otel_jobtags.store import NewRecord, Store
from otel_jobtags.web import CSP, create_app

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    _registry, records = scenario()
    with Store.open(tmp_path_factory.mktemp("view") / "jobs.db") as opened:
        opened.append(records)
        yield opened


@pytest.fixture(scope="module")
def registry(store: Store) -> TagRegistry:
    return scenario()[0]


@pytest.fixture(scope="module")
def app(store: Store, registry: TagRegistry) -> Any:
    return create_app(store, registry, clock=lambda: NOW)


def test_the_overview_shows_every_job_with_the_figures_logged(app: Any) -> None:
    answer = call(app, "/")
    assert answer.status == 200
    rows = cells(answer.text)
    assert list(rows) == [
        "PRICE_CACHE",
        "AUTO_REBAL",
        "TOKEN_REFRESH",
        "NIGHTLY_EXPORT",
        "REPORTS",
        "CLEANUP",  # registered, never logged: a row all the same
        "LEGACY_SYNC",  # logged, not registered
    ]
    shown = {
        tag: (row["status"], row["runs"], row["failures"], row["last-success"], row["p95"])
        for tag, row in rows.items()
    }
    assert shown == {
        "PRICE_CACHE": ("ok", "17,280", "0", "4 min 58 s ago", "14 ms"),
        "AUTO_REBAL": ("failing late", "24", "3", "3 h 42 min ago", "3.0 s"),
        "TOKEN_REFRESH": ("ok", "24", "0", "59 min 59 s ago", "480 ms"),
        "NIGHTLY_EXPORT": ("late", "1", "0", "2 d 9 h ago", "–"),
        "REPORTS": ("overlapping", "100", "0", "14 min 20 s ago", "40.0 s"),
        "CLEANUP": ("ok", "0", "0", "never", "–"),
        "LEGACY_SYNC": ("ok", "0", "0", "never", "–"),
    }
    for tag, row in rows.items():
        logged = EXPECTED[tag]
        assert (int(row["runs"].replace(",", "")), int(row["failures"])) == (logged.runs, logged.failures), (
            tag
        )
        levels = " ".join(f"{n:,} {level.lower()}" for level, n in reversed(logged.by_level.items()) if n)
        assert row["levels"] == (levels or "none"), tag


def test_each_row_links_to_its_job_and_draws_its_volume(app: Any) -> None:
    html = call(app, "/").text
    assert re.findall(r'<td class="job"><a href="([^"]+)">', html) == [
        f"/jobs/{tag}"
        for tag in (
            "PRICE_CACHE",
            "AUTO_REBAL",
            "TOKEN_REFRESH",
            "NIGHTLY_EXPORT",
            "REPORTS",
            "CLEANUP",
            "LEGACY_SYNC",
        )
    ]
    sparks = re.findall(r'<svg class="spark"[^>]*aria-label="([^"]*)"', html)
    assert sparks[:2] == ["864 records in the last 24 h", "75 records in the last 24 h"]


def test_the_jobs_api_gives_the_overview_s_figures(app: Any) -> None:
    answer = call(app, "/api/v1/jobs")
    assert (answer.status, answer.headers["Content-Type"]) == (200, "application/json")
    body = answer.json()
    assert (body["now"], body["since"], body["window_seconds"]) == (
        "2026-11-30T12:00:00+00:00",
        "2026-11-29T12:00:00+00:00",
        86400.0,
    )
    for job in body["jobs"]:
        logged = EXPECTED[job["job_tag"]]
        assert {
            k: job[k] for k in ("alerts", "runs", "failures", "records", "by_level", "p95_duration_ms")
        } == {
            "alerts": list(logged.status),
            "runs": logged.runs,
            "failures": logged.failures,
            "records": logged.records,
            "by_level": logged.by_level,
            "p95_duration_ms": logged.p95_duration_ms,
        }, job["job_tag"]
        assert job["last_success"] == (logged.last_success.isoformat() if logged.last_success else None)
        assert sum(job["volume"]) == logged.records and len(job["volume"]) == 60
    auto_rebal = body["jobs"][1]
    assert {k: auto_rebal[k] for k in ("job_tag", "job_id", "schedule", "registered", "status", "rules")} == {
        "job_tag": "AUTO_REBAL",
        "job_id": "auto_rebalance",
        "schedule": "hourly at minute 17",
        "registered": True,
        "status": "failing",
        "rules": {
            "late_after_seconds": 3960.0,
            "failure_threshold": 1,
            "failure_window_seconds": 3960.0,
            "overlap_window_seconds": 3960.0,
        },
    }


@pytest.mark.parametrize(
    ("now", "late"),
    [
        pytest.param(
            datetime(2026, 11, 30, 12, 6, 0, 999999, tzinfo=timezone.utc), False, id="a-microsecond-before"
        ),
        pytest.param(datetime(2026, 11, 30, 12, 6, 1, tzinfo=timezone.utc), True, id="at-the-window"),
    ],
)
def test_a_job_turns_late_exactly_when_the_alert_model_says(
    store: Store, registry: TagRegistry, now: datetime, late: bool
) -> None:
    # TOKEN_REFRESH last succeeded at 11:00:01; hourly + 6 min grace makes it late at 12:06:01.
    policy = alert_policies(registry)["TOKEN_REFRESH"]
    last = datetime(2026, 11, 30, 11, 0, 1, tzinfo=timezone.utc)
    assert is_late(policy.tag.schedule, last, now, policy.grace, policy.run_records) is late
    jobs = call(create_app(store, registry, clock=lambda: now), "/api/v1/jobs").json()["jobs"]
    assert jobs[2]["job_tag"] == "TOKEN_REFRESH"
    assert jobs[2]["alerts"] == (["late"] if late else [])


def test_alert_options_change_the_status_as_they_change_the_rules(
    store: Store, registry: TagRegistry
) -> None:
    lenient = create_app(
        store, registry, failure_threshold={"AUTO_REBAL": 4}, grace=timedelta(hours=4), clock=lambda: NOW
    )
    jobs = {job["job_tag"]: job for job in call(lenient, "/api/v1/jobs").json()["jobs"]}
    assert (jobs["AUTO_REBAL"]["alerts"], jobs["AUTO_REBAL"]["rules"]["failure_threshold"]) == ([], 4)


def test_the_job_page_shows_the_latest_lines_with_tracebacks_expandable(app: Any) -> None:
    answer = call(app, "/jobs/AUTO_REBAL", "level=error")
    assert answer.status == 200
    lines = cells(answer.text, "data-id")
    shown = [
        (row["time"], row["level"], row["run"], row["msg"].split("Traceback (most")[0])
        for row in lines.values()
    ]
    failed = "run failed after 2040.0 ms: shop.broker.UpstreamError: upstream answered 503 for /api/rebalance traceback"
    assert shown == [
        ("2026-11-30T11:17:03Z", "ERROR", "auto0026", failed),
        ("2026-11-30T11:17:02Z", "ERROR", "auto0026", "❌ failed <script>alert(1)</script> traceback"),
        ("2026-11-30T10:17:03Z", "ERROR", "auto0025", failed),
        ("2026-11-30T10:17:02Z", "ERROR", "auto0025", "❌ failed <script>alert(1)</script> traceback"),
        ("2026-11-30T09:17:03Z", "ERROR", "auto0024", failed),
        ("2026-11-30T09:17:02Z", "ERROR", "auto0024", "❌ failed <script>alert(1)</script> traceback"),
    ]
    assert answer.text.count('<pre class="trace">Traceback (most recent call last):\n') == 6
    assert "<details><summary>❌ failed &lt;script&gt;alert(1)&lt;/script&gt;" in answer.text


def test_the_job_page_explains_the_status_and_draws_levels_and_runs(app: Any) -> None:
    html = call(app, "/jobs/AUTO_REBAL").text
    assert (
        "<b>failing</b>: at least 1 failed run in the last 1 h 6 min, and none succeeded since the latest."
        in html
    )
    assert (
        "<b>late</b>: no successful run in the last 1 h 6 min (longest regular gap 1 h + grace 6 min)" in html
    )
    runs = re.findall(r'<rect class="run run-(\w+)"', html)
    assert (runs.count("success"), runs.count("error")) == (21, 3)
    titles = re.findall(r'<rect class="lvl-(\w+)"[^>]*><title>([^<]*)</title>', html)
    assert sum(int(t.split(": ")[1].split()[0]) for level, t in titles if level == "ERROR") == 6
    cards = dict(re.findall(r'<div class="card"><span>([^<]+)</span><b>([^<]+)</b>', html))
    assert cards == {
        "Runs": "24",
        "Failures": "3",
        "Last success": "3 h 42 min ago",
        "p95 duration": "3.0 s",
        "Records": "75",
    }


def test_the_job_page_of_overlapping_runs_names_the_processes(app: Any) -> None:
    html = call(app, "/jobs/REPORTS").text
    assert (
        "<b>overlapping</b>: processes <code>web-1</code> and <code>web-2</code> each kept running it "
        "throughout the last 16 min 30 s: every run happens once per process. 1 pair of runs at once, "
        "latest: processes <code>web-2</code> and <code>web-1</code> both running at 11:45:00.</li>" in html
    )
    assert re.findall(r'<text class="lane"[^>]*><title>([^<]+)</title>', html) == ["web-2", "web-1"]


@pytest.mark.parametrize(
    ("query", "runs"),
    [
        pytest.param("run=auto0025", {"auto0025"}, id="run-id"),
        pytest.param("q=FAILED&since=2h", {"auto0025", "auto0026"}, id="text-any-case-and-time"),
        pytest.param("since=2026-11-30T09:00:00Z&until=2026-11-30T10:00", {"auto0024"}, id="time-range"),
    ],
)
def test_the_job_page_filters_lines(app: Any, query: str, runs: set[str]) -> None:
    lines = cells(call(app, "/jobs/AUTO_REBAL", query).text, "data-id")
    assert {row["run"] for row in lines.values()} == runs


def test_the_records_api_answers_by_attribute(app: Any) -> None:
    answer = call(app, "/api/v1/records", "job.tag=AUTO_REBAL&severity=ERROR&since=1h&limit=200")
    assert answer.status == 200
    records = answer.json()["records"]
    assert [(r["time"], r["severity_text"], r["body"]) for r in records] == [
        (
            "2026-11-30T11:17:03+00:00",
            "ERROR",
            "run failed after 2040.0 ms: shop.broker.UpstreamError: upstream answered 503 for /api/rebalance",
        ),
        ("2026-11-30T11:17:02+00:00", "ERROR", "❌ failed <script>alert(1)</script>"),
    ]
    assert records[1]["attributes"]["job.run_id"] == "auto0026"
    assert records[1]["resource"] == {
        "service.name": "shop",
        "service.instance.id": "web-1",
        "process.pid": 4101,
    }


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("/api/v1/records", "limit=0", "Invalid limit='0': give a whole number from 1 to 1000"),
        ("/api/v1/records", "limit=abc", "Invalid limit='abc': give a whole number from 1 to 1000"),
        (
            "/api/v1/records",
            "severity=LOUD",
            "Invalid level 'LOUD': use a level name (TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL) or an OpenTelemetry severity number 0-24",
        ),
        (
            "/api/v1/records",
            "since=yesterday",
            "Invalid since='yesterday': give a duration before now ('15m', '2h', '1d') or an ISO 8601 time ('2026-11-30T14:30:00Z'; a time without an offset is UTC)",
        ),
        ("/api/v1/records", "since=1h&until=2h", "Invalid time range: until='2h' is not after since='1h'"),
        ("/api/v1/records", "since=60d", "Invalid since='60d': the range spans at most 31 days"),
        (
            "/api/v1/records",
            "job.tag=%3Cb%3E",
            "Invalid job tag '<b>': give a tag such as 'AUTO_REBAL' (letters, digits, '_', '.', ':', '-'; at most 64)",
        ),
        (
            "/api/v1/records",
            "jobtag=X",
            "Unknown parameter 'jobtag': this page takes after_id, cursor, job.tag, limit, run_id, severity, since, text, until",
        ),
        ("/api/v1/records", "limit=1&limit=2", "Parameter 'limit' is given 2 times: give it once"),
        ("/api/v1/records", "text=" + "x" * 201, "Invalid text: at most 200 characters, not 201"),
        (
            "/api/v1/jobs",
            "window=forever",
            "Invalid window='forever': give a duration such as '15m', '1h', '24h' or '7d'",
        ),
        ("/api/v1/jobs", "window=40d", "Invalid window='40d': give a duration from 1m to 31d"),
        ("/api/v1/records", "text=%ff", "Invalid query string: it is not UTF-8 text"),
        (
            "/api/v1/records",
            "after_id=-1",
            "Invalid after_id='-1': give a whole number from 0 to 4611686018427387904",
        ),
    ],
)
def test_bad_query_parameters_are_a_400_that_says_what_to_give(
    app: Any, path: str, query: str, message: str
) -> None:
    answer = call(app, path, query)
    assert (answer.status, answer.json()) == (400, {"error": message})


def test_a_bad_parameter_on_a_page_is_a_400_page_with_the_message_escaped(app: Any) -> None:
    answer = call(app, "/jobs/AUTO_REBAL", "level=%3Cscript%3E")
    assert answer.status == 400
    assert "Invalid level &#x27;&lt;script&gt;&#x27;: use a level name" in answer.text
    assert "<script>" not in answer.text


def test_an_unknown_job_is_a_404_naming_the_known_ones(app: Any) -> None:
    answer = call(app, "/jobs/NOPE")
    assert answer.status == 404
    assert (
        "Unknown job &#x27;NOPE&#x27;: known jobs are PRICE_CACHE, AUTO_REBAL, TOKEN_REFRESH, "
        "NIGHTLY_EXPORT, REPORTS, CLEANUP, LEGACY_SYNC" in answer.text
    )


def test_the_view_is_read_only(app: Any) -> None:
    answer = call(app, "/api/v1/records", method="POST")
    assert (answer.status, answer.headers["Allow"], answer.json()) == (
        405,
        "GET, HEAD",
        {"error": "POST is not allowed: the view is read-only"},
    )


def test_request_limits(app: Any) -> None:
    assert call(app, "/", "window=" + "1" * 5000).status == 414
    assert call(app, "/api/v1/jobs", body=b"x" * 10).status == 413


def test_head_answers_headers_only(app: Any) -> None:
    answer = call(app, "/", method="HEAD")
    assert (answer.status, answer.body) == (200, b"")


@pytest.mark.parametrize(
    "path", ["/", "/jobs/AUTO_REBAL", "/api/v1/jobs", "/static/view.css", "/nowhere", "/jobs/NOPE"]
)
def test_every_answer_carries_the_strict_content_security_policy(app: Any, path: str) -> None:
    headers = call(app, path).headers
    assert (
        headers["Content-Security-Policy"]
        == (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
        == CSP
    )
    assert (headers["X-Content-Type-Options"], headers["Referrer-Policy"]) == ("nosniff", "no-referrer")


@pytest.mark.parametrize("path", ["/", "/jobs/AUTO_REBAL", "/jobs/REPORTS"])
def test_pages_have_no_inline_script_or_style(app: Any, path: str) -> None:
    html = call(app, path).text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert re.findall(r"<style|\sstyle=|\son[a-z]+=", html) == []


def test_static_assets_come_from_the_package(app: Any) -> None:
    package = Path(__import__("otel_jobtags.web").web.__file__).parent / "static"
    for name, kind in [
        ("view.css", "text/css"),
        ("follow.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ]:
        answer = call(app, f"/static/{name}")
        assert (answer.status, answer.headers["Content-Type"].split(";")[0]) == (200, kind)
        assert answer.body == (package / name).read_bytes()
    assert call(app, "/static/../_app.py").status == 404


def test_mounted_under_a_prefix_every_link_keeps_it(app: Any) -> None:
    for path in ("/", "/jobs/AUTO_REBAL"):
        html = call(app, path, script_name="/admin/jobs").text
        links = re.findall(r'(?:href|src|action|data-api|data-base)="([^"]*)"', html)
        assert links and all(link.startswith("/admin/jobs") for link in links), links


def test_a_token_is_demanded_of_the_ui_and_the_api(store: Store, registry: TagRegistry) -> None:
    app = create_app(store, registry, token=TOKEN, clock=lambda: NOW)
    denied = call(app, "/api/v1/jobs")
    assert (denied.status, denied.headers["WWW-Authenticate"], denied.json()) == (
        401,
        'Bearer realm="otel-jobtags"',
        {
            "error": "A token is required: send 'Authorization: Bearer <token>', or open the page once with ?token=<token>"
        },
    )
    assert call(app, "/").status == 401
    assert call(app, "/", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status == 401
    assert call(app, "/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200
    login = call(app, "/jobs/AUTO_REBAL", f"token={TOKEN}&level=error", script_name="/admin/jobs")
    assert login.status == 303
    assert login.headers["Location"] == "/admin/jobs/jobs/AUTO_REBAL?level=error"
    cookie = login.headers["Set-Cookie"]
    assert TOKEN not in cookie and cookie.endswith("; Path=/admin/jobs; HttpOnly; SameSite=Strict")
    assert call(app, "/jobs/AUTO_REBAL", headers={"Cookie": cookie.split(";")[0]}).status == 200
    assert call(app, "/", f"token=not-{TOKEN}").status == 401


def test_create_app_opens_a_database_path_read_only(store: Store, registry: TagRegistry) -> None:
    app = create_app(store.path, registry, clock=lambda: NOW)
    assert cells(call(app, "/").text)["AUTO_REBAL"]["runs"] == "24"
    assert app.store.readonly


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"window": timedelta(seconds=5)},
            r"^Invalid window=datetime.timedelta\(seconds=5\): give a timedelta from 1 minute to 31 days$",
        ),
        (
            {"token": "short"},
            r"^Invalid token: give a secret of at least 16 characters without surrounding spaces$",
        ),
        (
            {"grace": timedelta(seconds=-1)},
            r"^Invalid grace datetime.timedelta\(days=-1, seconds=86399\) for PRICE_CACHE: give a timedelta of 0 s or more$",
        ),
    ],
)
def test_create_app_refuses_bad_settings(
    store: Store, registry: TagRegistry, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_app(store, registry, **kwargs)


def test_the_status_counts_only_records_up_to_now_as_the_rules_do(tmp_path: Path) -> None:
    # An hourly job succeeded at 09:00 and, after a gap, at 12:00. Viewed at 11:00 it is late:
    # the rules see nothing after 11:00, however new the store's latest success is.
    jobs = TagRegistry()
    jobs.define("HOURLY", "hourly", "", "every 1 h")
    nine = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    with Store.open(tmp_path / "jobs.db") as store:
        store.append(
            [
                NewRecord(
                    int(at.timestamp() * 1e9),
                    9,
                    "INFO",
                    "run finished in 5.0 ms",
                    {"job.tag": "HOURLY", "job.outcome": "success", "job.duration_ms": 5.0},
                )
                for at in (nine, nine + timedelta(hours=3))
            ]
        )
        for hour, alerts in ((10, []), (11, ["late"]), (12, [])):
            now = nine.replace(hour=hour)
            [job] = call(create_app(store, jobs, clock=lambda now=now: now), "/api/v1/jobs").json()["jobs"]  # type: ignore[misc]
            assert job["alerts"] == alerts, hour


def test_a_huge_record_is_shown_cut_and_whole_in_the_api(tmp_path: Path) -> None:
    body = "first line\n" + "x" * 1_000_000
    with Store.open(tmp_path / "jobs.db") as store:
        store.append(
            [
                NewRecord(
                    int(NOW.timestamp() * 1e9) - 10**9,
                    9,
                    "INFO",
                    body,
                    {"job.tag": "BIG", "blob": "y" * 50_000},
                )
            ]
        )
        app = create_app(store, clock=lambda: NOW)
        page = call(app, "/jobs/BIG")
        assert page.status == 200 and len(page.body) < 100_000
        assert (
            f'<pre class="full">first line\n{"x" * 19_989}<span class="muted">… 980,011 more characters</span></pre>'
            in page.text
        )
        assert "<dd>" + "y" * 20_000 + '<span class="muted">… 30,000 more characters</span></dd>' in page.text
        assert call(app, "/api/v1/records", "job.tag=BIG").json()["records"][0]["body"] == body


def test_the_default_window_is_the_one_given_to_create_app(store: Store, registry: TagRegistry) -> None:
    app = create_app(store, registry, window=timedelta(hours=6), clock=lambda: NOW)
    jobs = call(app, "/api/v1/jobs").json()
    assert (jobs["window_seconds"], jobs["jobs"][1]["runs"]) == (21600.0, 6)
    page = call(app, "/jobs/AUTO_REBAL").text
    assert '<select name="since"><option value="">last 6 h</option>' in page
    assert re.findall(r'<div class="card"><span>Runs</span><b>(\d+)</b>', page) == ["6"]
