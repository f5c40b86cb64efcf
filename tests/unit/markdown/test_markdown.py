"""The registry as the seed's Markdown job table, and keeping it current between markers."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.grafana import REPO

from otel_jobtags import TagRegistry
from otel_jobtags.demo import JOBS
from otel_jobtags.markdown import (
    JOBS_TABLE_END,
    JOBS_TABLE_START,
    MarkerError,
    render_job_table,
    replace_between_markers,
    update_job_table,
)

# The table of the seed's design note, as written there.
SEED_TABLE = """\
| constant | tag | job id | what it does | schedule |
|---|---|---|---|---|
| PRECISION_CACHE | [PRECISION_CACHE] | precision_cache | refresh the price-precision cache | every 30 s |
| SYMBOL_VALID | [SYMBOL_VALID] | symbol_validator | refresh the symbol validator | every 30 s |
| MARKET_INFO | [MARKET_INFO] | market_info | refresh market info | every 30 s |
| PRICE_CACHE | [PRICE_CACHE] | price_cache | refresh the price cache | every 5 s |
| ORDER_UPDATE | [ORDER_UPDATE] | update_open_orders | update the status of open orders | every 29 s |
| PNL_CALC | [PNL_CALC] | update_positions | compute unrealised profit and loss | every 29 s |
| DAILY_SUMMARY | [DAILY_SUMMARY] | send_daily_summary | send the daily summary | daily 09:00 |
| PERF_CALC | [PERF_CALC] | calculate_daily_performance | compute daily performance | daily 09:05 |
| AUTO_REBAL | [AUTO_REBAL] | auto_rebalance | automatic portfolio rebalancing | hourly at minute 17 |
| TOKEN_REFRESH | [TOKEN_REFRESH] | securities_token_refresh | refresh the broker's OAuth token | hourly at minute 0 |
| QUEUE_REBAL | [QUEUE_REBAL] | queue_rebalancer | re-order the pending-order queue | every 1 s |
| LOCK_RELEASE | [LOCK_RELEASE] | release_stale_processing | release stale processing locks | every 5 min |
| WS_HEALTH | [WS_HEALTH] | websocket_health_monitor | monitor WebSocket connection health | every 30 s |
"""


def test_demo_registry_renders_as_the_seeds_table() -> None:
    assert render_job_table(JOBS) == SEED_TABLE


def test_cells_stay_on_one_line_and_keep_pipes_literal() -> None:
    jobs = TagRegistry()
    jobs.define("ODD", "odd|id", "does a | b\nthen  c", "cron: 0 9 * * 1-5")
    assert render_job_table(jobs).splitlines()[2] == (
        "| ODD | [ODD] | odd\\|id | does a \\| b then c | cron: 0 9 * * 1-5 |"
    )


def test_tag_cell_links_when_asked() -> None:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "rebalance", "hourly at minute 17")
    assert render_job_table(jobs, link=lambda tag: f"/d/x?var-job={tag.name}").splitlines()[2] == (
        "| AUTO_REBAL | [\\[AUTO_REBAL\\]](/d/x?var-job=AUTO_REBAL) | auto_rebalance | rebalance "
        "| hourly at minute 17 |"
    )


DOC = f"# Title\n\nIntro.\n\n{JOBS_TABLE_START}\nold table\nmore\n{JOBS_TABLE_END}\n\nOutro.\n"


def test_replace_between_markers_replaces_only_the_inside() -> None:
    assert replace_between_markers(DOC, "| new |\n") == (
        f"# Title\n\nIntro.\n\n{JOBS_TABLE_START}\n| new |\n{JOBS_TABLE_END}\n\nOutro.\n"
    )


def test_replace_between_markers_is_idempotent_and_adds_a_final_newline() -> None:
    once = replace_between_markers(DOC, "| new |")
    assert replace_between_markers(once, "| new |") == once
    assert f"| new |\n{JOBS_TABLE_END}" in once


def test_replace_between_markers_takes_other_markers() -> None:
    text = "a\n<!-- x -->\nb\n  <!-- y -->\nc"
    assert replace_between_markers(text, "T", start="<!-- x -->", end="<!-- y -->") == (
        "a\n<!-- x -->\nT\n  <!-- y -->\nc"
    )


def test_markers_mentioned_in_prose_are_not_markers() -> None:
    text = f"Put `{JOBS_TABLE_START}` and `{JOBS_TABLE_END}` around the table:\n\n{DOC}"
    assert replace_between_markers(text, "| new |") == (
        f"Put `{JOBS_TABLE_START}` and `{JOBS_TABLE_END}` around the table:\n\n"
        + replace_between_markers(DOC, "| new |")
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "no markers\n",
            r"^README.md has no line '<!-- jobs-table:start -->': put '<!-- jobs-table:start -->' "
            r"and '<!-- jobs-table:end -->' each on a line of their own, around the place the table goes$",
        ),
        (
            f"{JOBS_TABLE_START}\n{JOBS_TABLE_START}\n{JOBS_TABLE_END}\n",
            r"^README.md has 2 lines '<!-- jobs-table:start -->': ",
        ),
        (
            f"{JOBS_TABLE_START}\n",
            r"^README.md has no line '<!-- jobs-table:end -->': ",
        ),
        (
            f"{JOBS_TABLE_END}\n{JOBS_TABLE_START}\n",
            r"^README.md has '<!-- jobs-table:end -->' before '<!-- jobs-table:start -->': "
            r"put the start marker first$",
        ),
    ],
)
def test_replace_between_markers_rejects_bad_markers(text: str, message: str) -> None:
    with pytest.raises(MarkerError, match=message):
        replace_between_markers(text, "x", source="README.md")


def test_update_job_table_writes_checks_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(DOC, encoding="utf-8")
    assert update_job_table(path, JOBS, check=True) is True
    assert path.read_text(encoding="utf-8") == DOC  # check writes nothing
    assert update_job_table(path, JOBS) is True
    assert path.read_text(encoding="utf-8") == replace_between_markers(DOC, SEED_TABLE)
    assert update_job_table(path, JOBS, check=True) is False
    assert update_job_table(path, JOBS) is False


def test_update_job_table_needs_the_file(tmp_path: Path) -> None:
    with pytest.raises(
        MarkerError, match=r"does not exist: create it with the lines '<!-- jobs-table:start -->'"
    ):
        update_job_table(tmp_path / "missing.md", JOBS)


@pytest.mark.parametrize("page", ["docs/jobs.md", "README.md"])
def test_committed_job_tables_list_the_demo_registry(page: str) -> None:
    assert update_job_table(REPO / page, JOBS, check=True) is False, (
        f"regenerate with: otel-jobtags table --update {page}"
    )
