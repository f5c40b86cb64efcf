"""The documentation's example LogQL queries parse with Grafana's LogQL grammar.

The checker needs Node.js (see support/logql.py); without it these tests
skip on a developer's machine and fail in CI.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from support.logql import LogqlCheckerUnavailableError, assert_logql_parses, ensure_checker_installed
from support.prerequisites import REPO_ROOT, unavailable

STACK_DOC = REPO_ROOT / "docs" / "stack.md"
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def logql_blocks(page: Path = STACK_DOC) -> list[str]:
    """The queries of a page's fenced ```logql blocks, one per line."""
    text = page.read_text(encoding="utf-8")
    blocks = re.findall(r"^```logql\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def logql_checker() -> None:
    if shutil.which("node") is None:
        unavailable("node (Node.js) is not on PATH; the LogQL checker needs it")
    try:
        ensure_checker_installed()
    except LogqlCheckerUnavailableError as exc:
        unavailable(f"the LogQL checker is not available: {exc}")


def test_stack_doc_queries_use_job_tag() -> None:
    queries = logql_blocks()

    assert len(queries) == 4
    assert all("job_tag" in q or "job_id" in q for q in queries)


def test_stack_doc_queries_parse(logql_checker: None) -> None:
    assert_logql_parses(logql_blocks())


def test_every_documented_query_parses(logql_checker: None) -> None:
    queries = [query for page in PAGES for query in logql_blocks(page)]
    assert len(queries) >= 8
    assert_logql_parses(queries)
