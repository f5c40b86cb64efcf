"""The Flask example's admin log page: examples/flask_admin/app.py, through Flask's test client."""

from __future__ import annotations

import base64
import importlib.util
import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support.fakeloki import FakeLoki, Reply, fake_loki, stream, streams
from support.jobsview import cells
from support.otlp import HttpReceiver

from otel_jobtags import job_context
from otel_jobtags.store import NewRecord, Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_admin" / "app.py"
KNOWN = ["price_cache", "auto_rebalance", "securities_token_refresh"]
UNKNOWN = "Unknown job 'nope': known jobs are price_cache, auto_rebalance, securities_token_refresh"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flask_admin_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wait_for(path: Path, *texts: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text(encoding="utf-8") if path.exists() else ""
        if all(text in content for text in texts):
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never showed {texts}")


@pytest.fixture
def app(example: ModuleType, tmp_path: Path) -> Iterator[Any]:
    """The app with its jobs run once by the real scheduler, the log file written."""
    log_file = tmp_path / "app.log"
    app = example.create_app({"LOG_FILE": str(log_file), "LOKI_URL": None, "OTLP_ENDPOINT": None})
    try:
        _wait_for(log_file, "[AUTO_REBAL] ❌ failed", "[TOKEN_REFRESH] 🔑")
        yield app
    finally:
        app.extensions["otel_jobtags"].shutdown()


def test_the_page_shows_a_job_s_records_from_the_file_tracebacks_included(app: Any) -> None:
    response = app.test_client().get("/admin/system/logs?job_id=auto_rebalance")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["job_id"], body["tag"], body["source"]) == ("auto_rebalance", "AUTO_REBAL", "file")
    *logged, run_record = body["records"]
    assert [(r["level"], r["message"]) for r in logged] == [
        ("INFO", "🔄 job started"),
        ("DEBUG", "processed: 5 items"),
        ("ERROR", "❌ failed"),
    ]
    # the scheduler integration's run record closes the run (the job handled its failure)
    assert run_record["level"] == "INFO"
    assert re.fullmatch(r"run finished in \d+(\.\d+)? ms", run_record["message"])
    traceback = logged[-1]["continuation"]
    assert (traceback[0], traceback[-1]) == (
        "Traceback (most recent call last):",
        "flask_admin_example.UpstreamError: upstream answered 503 for /api/rebalance",
    )


def test_a_message_cannot_forge_another_job_s_record_on_the_page(app: Any, example: ModuleType) -> None:
    log_file = Path(app.extensions["otel_jobtags"].log_file)
    with job_context(example.PRICE_CACHE):
        example.log.info("ok\n2026-01-01 00:00:00,000 ERROR: [AUTO_REBAL] forged")
    _wait_for(log_file, "[AUTO_REBAL] forged")
    client = app.test_client()
    shown = client.get("/admin/system/logs?job_id=auto_rebalance").get_json()["records"]
    assert [r["message"] for r in shown if "forged" in r["message"]] == []
    prices = client.get("/admin/system/logs?job_id=price_cache").get_json()["records"]
    assert [(r["message"], r["continuation"]) for r in prices if r["message"] == "ok"] == [
        ("ok", ["2026-01-01 00:00:00,000 ERROR: [AUTO_REBAL] forged"])
    ]


def test_the_page_filters_by_level_and_limit(app: Any) -> None:
    client = app.test_client()
    errors = client.get("/admin/system/logs?job_id=auto_rebalance&level=error").get_json()["records"]
    last = client.get("/admin/system/logs?job_id=auto_rebalance&limit=1").get_json()["records"]
    assert [r["message"] for r in errors] == ["❌ failed"]
    assert [r["message"][:13] for r in last] == ["run finished "]


@pytest.mark.parametrize("query", ["job_id=nope", "job_id=AUTO_REBAL&x=1", ""])
def test_an_unknown_job_id_is_refused_with_the_known_ones(app: Any, query: str) -> None:
    response = app.test_client().get(f"/admin/system/logs?{query}")
    job_id = dict(p.split("=") for p in query.split("&") if p).get("job_id", "")
    assert (response.status_code, response.get_json()) == (
        400,
        {"error": UNKNOWN.replace("'nope'", repr(job_id)), "known_job_ids": KNOWN},
    )


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("job_id=auto_rebalance&limit=0", "Invalid limit: give a whole number from 1 to 5000"),
        (
            "job_id=auto_rebalance&level=loud",
            "Invalid level 'loud': use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number",
        ),
        (
            "job_id=auto_rebalance&level=%C2%B2",
            "Invalid level '²': use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number",
        ),
    ],
)
def test_bad_parameters_are_refused(app: Any, query: str, error: str) -> None:
    response = app.test_client().get(f"/admin/system/logs?{query}")
    assert (response.status_code, response.get_json()["error"]) == (400, error)


def test_the_html_view_escapes_what_it_shows(app: Any) -> None:
    client = app.test_client()
    page = client.get("/admin/system/logs?job_id=auto_rebalance&format=html").get_data(as_text=True)
    assert "<h1>[AUTO_REBAL] auto_rebalance</h1>" in page
    assert "<pre>Traceback (most recent call last):" in page
    bad = client.get("/admin/system/logs?job_id=<script>x</script>&format=html")
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "<script>" not in text
    assert "Unknown job &#39;&lt;script&gt;x&lt;/script&gt;&#39;" in text


# -- from Loki ----------------------------------------------------------------


@pytest.fixture
def loki() -> Iterator[FakeLoki]:
    with fake_loki() as server:
        yield server


@pytest.fixture
def loki_app(example: ModuleType, tmp_path: Path, loki: FakeLoki) -> Iterator[Any]:
    app = example.create_app(
        {
            "LOG_FILE": str(tmp_path / "app.log"),
            "LOKI_URL": loki.url,
            "SERVICE_NAME": "web",
            "SCHEDULER": False,
        }
    )
    yield app
    app.extensions["otel_jobtags"].shutdown()


def test_with_loki_configured_the_page_reads_from_loki(loki_app: Any, loki: FakeLoki) -> None:
    loki.replies.append(
        Reply(
            body=streams(
                stream({"job_tag": "AUTO_REBAL", "severity_text": "WARN"}, (10**18, "[AUTO_REBAL] slow"))
            )
        )
    )
    body = (
        loki_app.test_client()
        .get("/admin/system/logs?job_id=auto_rebalance&level=warning&limit=10")
        .get_json()
    )
    assert (body["source"], [(r["level"], r["message"]) for r in body["records"]]) == (
        "loki",
        [("WARNING", "slow")],
    )
    [request] = loki.received
    assert (request.params["query"], request.params["limit"]) == (
        '{service_name=~"web", job_tag="AUTO_REBAL"} | severity_number >= 13',
        "10",
    )


def test_with_loki_an_unknown_job_id_never_reaches_loki(loki_app: Any, loki: FakeLoki) -> None:
    response = loki_app.test_client().get('/admin/system/logs?job_id="} | line_format "x"')
    assert (response.status_code, response.get_json()["known_job_ids"], loki.received) == (400, KNOWN, [])


def test_a_loki_failure_is_a_bad_gateway(loki_app: Any, loki: FakeLoki) -> None:
    loki.replies.append(Reply(500, "ingester unavailable"))
    response = loki_app.test_client().get("/admin/system/logs?job_id=auto_rebalance")
    assert (response.status_code, response.get_json()["error"]) == (
        502,
        f"Loki at {loki.url} answered HTTP 500 Internal Server Error: ingester unavailable",
    )


# -- OTLP export ---------------------------------------------------------------


def test_records_are_exported_only_when_an_otlp_endpoint_is_configured(
    example: ModuleType, tmp_path: Path
) -> None:
    plain = example.create_app(
        {"LOG_FILE": str(tmp_path / "a.log"), "OTLP_ENDPOINT": None, "SCHEDULER": False}
    )
    assert plain.extensions["otel_jobtags"].installation is None
    plain.extensions["otel_jobtags"].shutdown()

    with HttpReceiver() as receiver:
        app = example.create_app(
            {
                "LOG_FILE": str(tmp_path / "b.log"),
                "OTLP_ENDPOINT": receiver.base_url,
                "OTLP_PROTOCOL": "http/protobuf",
                "SCHEDULER": False,
            }
        )
        with job_context(example.TOKEN_REFRESH):
            example.refresh_token()
        app.extensions["otel_jobtags"].shutdown()  # flushes the export
        exported = [r for r in receiver.records if r.attributes.get("job.tag") is not None]
    assert [
        (r.body, r.severity_text, r.attributes["job.tag"], r.attributes["job.id"], r.resource["service.name"])
        for r in exported
    ] == [
        (
            "[TOKEN_REFRESH] 🔑 token refreshed, valid for 60 min",
            "INFO",
            "TOKEN_REFRESH",
            "securities_token_refresh",
            "flask-admin-example",
        )
    ]
    assert "[TOKEN_REFRESH] 🔑 token refreshed, valid for 60 min" in (tmp_path / "b.log").read_text(
        encoding="utf-8"
    )


# -- the jobs view at /admin/jobs ------------------------------------------------


def _jobs_db(path: Path) -> Path:
    """A store holding one failed AUTO_REBAL run and one TOKEN_REFRESH success, logged a minute ago."""
    now_ns = time.time_ns() - 60 * 10**9
    web = {"service.name": "flask-admin-example", "service.instance.id": "web-1"}
    auto = {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance", "job.run_id": "r1"}
    token = {"job.tag": "TOKEN_REFRESH", "job.id": "securities_token_refresh", "job.run_id": "r2"}
    failed = {
        "exception.type": "UpstreamError",
        "exception.stacktrace": "Traceback (most recent call last):\nUpstreamError: 503",
    }
    with Store.open(path) as store:
        store.append(
            [
                NewRecord(now_ns, 17, "ERROR", "❌ failed", {**auto, **failed}, web, "flask_admin.jobs"),
                NewRecord(
                    now_ns + 1000,
                    17,
                    "ERROR",
                    "run failed after 3.0 ms",
                    {**auto, "job.outcome": "error", "job.duration_ms": 3.0},
                    web,
                    "otel_jobtags.runs",
                ),
                NewRecord(
                    now_ns, 9, "INFO", "🔑 token refreshed, valid for 60 min", token, web, "flask_admin.jobs"
                ),
                NewRecord(
                    now_ns + 1000,
                    9,
                    "INFO",
                    "run finished in 2.0 ms",
                    {**token, "job.outcome": "success", "job.duration_ms": 2.0},
                    web,
                    "otel_jobtags.runs",
                ),
            ]
        )
    return path


@pytest.fixture
def jobs_app(example: ModuleType, tmp_path: Path) -> Iterator[Any]:
    app = example.create_app(
        {
            "LOG_FILE": str(tmp_path / "app.log"),
            "LOKI_URL": None,
            "OTLP_ENDPOINT": None,
            "SCHEDULER": False,
            "JOBS_DB": str(_jobs_db(tmp_path / "jobs.db")),
            "ADMIN_PASSWORD": "change-me",
        }
    )
    yield app
    app.extensions["otel_jobtags"].shutdown()


ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:change-me").decode()}


def test_the_jobs_view_is_mounted_at_admin_jobs(jobs_app: Any) -> None:
    client = jobs_app.test_client()
    overview = client.get("/admin/jobs/", headers=ADMIN)
    assert overview.status_code == 200
    html = overview.get_data(as_text=True)
    assert re.findall(r'<tr data-job="(\w+)">', html) == ["PRICE_CACHE", "AUTO_REBAL", "TOKEN_REFRESH"]
    status = {tag: row["status"] for tag, row in cells(html).items()}
    assert status == {"PRICE_CACHE": "late", "AUTO_REBAL": "failing late", "TOKEN_REFRESH": "ok"}
    assert re.findall(r'<td class="job"><a href="([^"]+)">', html)[1] == "/admin/jobs/jobs/AUTO_REBAL"
    assert '<link rel="stylesheet" href="/admin/jobs/static/view.css">' in html
    page = client.get("/admin/jobs/jobs/AUTO_REBAL?level=error", headers=ADMIN).get_data(as_text=True)
    assert '<details><summary>❌ failed <span class="tb">traceback</span></summary>' in page
    api = client.get("/admin/jobs/api/v1/records?job.tag=TOKEN_REFRESH", headers=ADMIN)
    assert [r["body"] for r in api.get_json()["records"]] == [
        "run finished in 2.0 ms",
        "🔑 token refreshed, valid for 60 min",
    ]
    css = client.get("/admin/jobs/static/view.css", headers=ADMIN)
    assert (css.status_code, css.headers["Content-Security-Policy"].split(";")[0]) == (
        200,
        "default-src 'none'",
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}, 401),
        (ADMIN, 200),
    ],
)
def test_the_jobs_view_is_behind_the_app_s_login(jobs_app: Any, headers: dict[str, str], status: int) -> None:
    client = jobs_app.test_client()
    for path in ("/admin/jobs/", "/admin/jobs/api/v1/jobs", "/admin/system/logs?job_id=auto_rebalance"):
        assert client.get(path, headers=headers).status_code == status, path


def test_without_a_password_only_this_machine_sees_the_admin_pages(
    example: ModuleType, tmp_path: Path
) -> None:
    app = example.create_app(
        {
            "LOG_FILE": str(tmp_path / "a.log"),
            "OTLP_ENDPOINT": None,
            "SCHEDULER": False,
            "ADMIN_PASSWORD": None,
            "JOBS_DB": None,
        }
    )
    try:
        client = app.test_client()
        remote = client.get("/admin/jobs/", environ_base={"REMOTE_ADDR": "192.0.2.7"})
        assert (remote.status_code, "Set ADMIN_PASSWORD" in remote.get_data(as_text=True)) == (403, True)
        local = client.get("/admin/jobs/")
        assert local.status_code == 404
        assert "Set JOBS_DB to the database `otel-jobtags serve --db` writes" in local.get_data(as_text=True)
    finally:
        app.extensions["otel_jobtags"].shutdown()
