"""The jobs view in a real browser (headless Chromium): what it shows is what was logged, and the CSP holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.browser import PageWatch, launch, save_screenshot
from support.jobsview import EXPECTED, NOW, scenario, serve_wsgi

from otel_jobtags.store import NewRecord, Store
from otel_jobtags.web import create_app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch() as running:
        yield running


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    _, records = scenario()
    with Store.open(tmp_path_factory.mktemp("browser") / "jobs.db") as opened:
        opened.append(records)
        yield opened


@pytest.fixture(scope="module")
def url(store: Store) -> Iterator[str]:
    with serve_wsgi(create_app(store, scenario()[0], clock=lambda: NOW)) as base:
        yield base


@pytest.fixture
def watch(browser: Any) -> Iterator[PageWatch]:
    watched = PageWatch.open(browser)
    yield watched
    watched.page.close()


def _text(locator: Any) -> str:
    return " ".join(locator.inner_text().split())


def test_the_overview_shows_the_logged_figures(url: str, watch: PageWatch, tmp_path: Path) -> None:
    page = watch.page
    page.goto(f"{url}/")
    rows = page.locator("table.jobs tbody tr")
    assert rows.count() == len(EXPECTED)
    for i in range(rows.count()):
        row = rows.nth(i)
        tag = row.get_attribute("data-job")
        logged = EXPECTED[tag]
        shown = {name: _text(row.locator(f"td.{name}")) for name in ("status", "runs", "failures", "levels")}
        levels = " ".join(f"{n:,} {level.lower()}" for level, n in reversed(logged.by_level.items()) if n)
        assert shown == {
            "status": " ".join(logged.status) or "ok",
            "runs": f"{logged.runs:,}",
            "failures": str(logged.failures),
            "levels": levels or "none",
        }, tag
    assert _text(page.locator(".summary")) == "4 ok 1 failing 2 late 1 overlapping"
    page.set_viewport_size({"width": 1400, "height": 600})
    save_screenshot(page, "overview.png", tmp_path)
    assert watch.problems() == []


def test_a_row_leads_to_the_job_page_with_its_lines_and_tracebacks(
    url: str, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    page.goto(f"{url}/")
    page.click("text=AUTO_REBAL")
    page.wait_for_url(f"{url}/jobs/AUTO_REBAL")
    assert _text(page.locator("h1")) == "[AUTO_REBAL] failing late"
    first_error = page.locator("tr.lvl-row-ERROR").nth(1)
    assert _text(first_error.locator("td.msg summary")) == "❌ failed <script>alert(1)</script> traceback"
    trace = first_error.locator("pre.trace")
    assert not trace.is_visible()
    first_error.locator("summary").click()
    assert trace.is_visible()
    assert (
        trace.inner_text().splitlines()[-1]
        == "shop.broker.UpstreamError: upstream answered 503 for /api/rebalance"
    )
    assert page.locator("table.runs tbody tr").count() == 8
    assert page.locator("svg.runs rect.run-error").count() == 3
    save_screenshot(page, "job.png", tmp_path, height=1900)
    assert watch.problems() == []


def test_the_filters_narrow_the_lines(url: str, watch: PageWatch) -> None:
    page = watch.page
    page.goto(f"{url}/jobs/AUTO_REBAL")
    page.select_option("select[name=level]", "ERROR")
    page.fill("input[name=run]", "auto0025")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/jobs/AUTO_REBAL?level=ERROR&since=&until=&q=&run=auto0025")
    times = [_text(cell) for cell in page.locator("table.lines td.time").all()]
    assert times == ["2026-11-30T10:17:03Z", "2026-11-30T10:17:02Z"]
    assert watch.problems() == []


def test_live_follow_shows_new_records_as_they_arrive(watch: PageWatch, tmp_path: Path) -> None:
    registry, _ = scenario()
    with (
        Store.open(tmp_path / "jobs.db") as store,
        serve_wsgi(create_app(store, registry, clock=lambda: NOW)) as url,
    ):
        _follow(url, store, watch)


def _follow(url: str, store: Store, watch: PageWatch) -> None:
    store.append(scenario()[1])
    page = watch.page
    page.goto(f"{url}/jobs/TOKEN_REFRESH#follow")
    assert page.locator("#follow").is_checked()
    before = page.locator("table.lines tbody tr").count()
    store.append(
        [
            NewRecord(
                time_ns=int((NOW - timedelta(seconds=1)).timestamp() * 1e9),
                severity_number=17,
                severity_text="ERROR",
                body="token endpoint answered 500 <b>now</b>\nsecond line",
                attributes={"job.tag": "TOKEN_REFRESH", "job.run_id": "toke9999"},
                resource={"service.name": "shop"},
            )
        ]
    )
    row = page.locator("tr[data-id]", has_text="token endpoint answered 500 <b>now</b>")
    row.wait_for(timeout=30_000)
    assert page.locator("table.lines tbody tr").count() == before + 1
    assert _text(page.locator("table.lines tbody tr").first.locator("td.run")) == "toke9999"
    assert page.locator("table.lines b").count() == 0  # the body is text, not markup
    assert watch.problems() == []
