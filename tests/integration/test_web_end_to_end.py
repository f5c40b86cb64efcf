"""From an application's log calls to the browser: install() -> ``serve`` (receiver, store, view).

A real APScheduler runs two jobs once, connected to the registry, exporting
with ``install()`` over OTLP/gRPC to the embedded server ``otel-jobtags serve``
runs (with a token, as beyond loopback); headless Chromium then opens its web
view with the token and reads the overview and a job page. What the pages
show must be what the jobs logged and how their runs ended.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from apscheduler.schedulers.background import BackgroundScheduler
from support.browser import PageWatch, launch

from otel_jobtags import TagRegistry, install
from otel_jobtags.receiver import Address, EmbeddedServer, ServeConfig
from otel_jobtags.scheduler import connect, trigger_for

log = logging.getLogger("shop.jobs")
TOKEN = "a-token-for-the-e2e-test"
LOOPBACK = Address("127.0.0.1", 0)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """The view's URL, once ``serve`` stored what one run of each of two scheduled jobs logged."""
    jobs = TagRegistry()
    export = jobs.define("NIGHTLY_EXPORT", "nightly_export", "export the day's trades", "daily 02:00")
    sync = jobs.define("ACCOUNT_SYNC", "account_sync", "sync the broker's accounts", "every 1 h")

    def nightly_export() -> None:
        log.info("exported %d trades", 1204)
        log.debug("wrote trades-2026-11-30.csv")

    def account_sync() -> None:
        log.warning("account %d locked, skipped", 7)
        raise ConnectionError("broker answered 503 for /accounts")

    config = ServeConfig(
        db=tmp_path / "jobs.db", otlp_grpc=LOOPBACK, otlp_http=None, http=LOOPBACK, registry=jobs, token=TOKEN
    )
    with EmbeddedServer(config) as server:
        assert server.grpc is not None and server.web_url is not None
        logging.getLogger("apscheduler").setLevel(logging.CRITICAL)  # only the jobs' own lines
        installation = install(
            jobs,
            service_name="shop",
            endpoint=server.grpc.endpoint,
            headers={"Authorization": f"Bearer {TOKEN}"},
            level="DEBUG",
        )
        scheduler = BackgroundScheduler()
        connect(scheduler, jobs)
        finished: set[str] = set()
        both = threading.Event()

        def done(event: Any) -> None:
            finished.add(event.job_id)
            if len(finished) == 2:
                both.set()

        scheduler.add_listener(done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        now = datetime.now().astimezone()
        scheduler.add_job(nightly_export, trigger_for(export), id=export.job_id, next_run_time=now)
        scheduler.add_job(account_sync, trigger_for(sync), id=sync.job_id, next_run_time=now)
        try:
            scheduler.start()
            assert both.wait(60), f"the jobs did not both run: {finished}"
        finally:
            scheduler.shutdown(wait=True)
            installation.shutdown()  # flushes: every record is acknowledged, so committed
            logging.getLogger("apscheduler").setLevel(logging.NOTSET)
        yield server.web_url.rstrip("/")


def _text(locator: Any) -> str:
    return " ".join(locator.inner_text().split())


def test_the_view_shows_what_the_jobs_logged(served: str) -> None:
    url = served
    with launch() as browser:
        assert browser.new_page().goto(f"{url}/").status == 401  # the token is demanded
        watch = PageWatch.open(browser)
        page = watch.page
        page.goto(f"{url}/?token={TOKEN}")  # sets the cookie, redirects to the overview
        assert page.url == f"{url}/"
        rows = {row.get_attribute("data-job"): row for row in page.locator("table.jobs tbody tr").all()}
        shown = {
            tag: tuple(_text(row.locator(f"td.{name}")) for name in ("status", "runs", "failures", "levels"))
            for tag, row in rows.items()
        }
        assert shown == {
            # two lines of its own and the run record
            "NIGHTLY_EXPORT": ("ok", "1", "0", "2 info 1 debug"),
            # its warning and the run record of the failure; never succeeded, so late as well
            "ACCOUNT_SYNC": ("failing late", "1", "1", "1 error 1 warning"),
        }
        rows["ACCOUNT_SYNC"].locator("td.job a").click()
        page.wait_for_url(f"{url}/jobs/ACCOUNT_SYNC")
        lines = page.locator("table.lines tbody tr")
        shown_lines = [
            (_text(line.locator("td.level")), _text(line.locator("td.msg"))) for line in lines.all()
        ]
        assert len(shown_lines) == 2
        assert shown_lines[1] == ("WARNING", "[ACCOUNT_SYNC] account 7 locked, skipped")
        assert re.fullmatch(
            r"\[ACCOUNT_SYNC\] run failed after \d+\.\d ms: ConnectionError: broker answered 503 for /accounts "
            "traceback",
            shown_lines[0][1],
        ), shown_lines[0]
        failure = lines.first
        assert _text(failure.locator("td.level")) == "ERROR"
        failure.locator("summary").click()
        trace = failure.locator("pre.trace").inner_text()
        assert trace.startswith("Traceback (most recent call last):")
        assert trace.rstrip().endswith("ConnectionError: broker answered 503 for /accounts")
        assert page.locator("svg.runs rect.run-error").count() == 1
        assert watch.problems() == []
