"""A line format that writes the job's tag before the message too: ``[%(job.tag)s] %(message)s``."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from otel_jobtags import JobTagFilter, read_job_logs
from otel_jobtags.demo import JOBS
from otel_jobtags.handler import JobTagFormatter
from otel_jobtags.logfiles import LogFilter

FORMAT = "%(asctime)s [%(job.tag)s] %(levelname)s %(message)s"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A log written the way a user with this format writes it: a file handler, the filter, the formatter."""
    path = tmp_path / "app.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.addFilter(JobTagFilter(JOBS))
    handler.setFormatter(JobTagFormatter(FORMAT))
    logger = logging.getLogger("test_tag_in_the_header")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("started", extra={"job_tag": "AUTO_REBAL"})
        logger.info("refreshed", extra={"job_tag": "PRICE_CACHE"})
        logger.warning("done, 5 orders", extra={"job_tag": "AUTO_REBAL"})
        logger.info("no job here")
    finally:
        logger.removeHandler(handler)
        handler.close()
    return path


def test_the_job_s_records_are_read_when_its_tag_also_stands_in_the_header(log: Path) -> None:
    entries = read_job_logs(log, "auto_rebalance", registry=JOBS, line_format=FORMAT)
    assert [(e.tag, e.level, e.message) for e in entries] == [
        ("AUTO_REBAL", "INFO", "started"),
        ("AUTO_REBAL", "WARNING", "done, 5 orders"),
    ]


def test_every_job_s_records_are_read_and_copied_when_the_tag_stands_in_the_header(log: Path) -> None:
    every = LogFilter(None, registry=JOBS, line_format=FORMAT)
    assert [(e.tag, e.message) for e in every.scan(log)] == [
        ("AUTO_REBAL", "started"),
        ("PRICE_CACHE", "refreshed"),
        ("AUTO_REBAL", "done, 5 orders"),
    ]
    assert [e.message for e in every.last(log, 1)] == ["done, 5 orders"]
    out = io.BytesIO()
    LogFilter("PRICE_CACHE", registry=JOBS, line_format=FORMAT).write(log, out)
    lines = log.read_bytes().splitlines(keepends=True)
    assert out.getvalue() == lines[1]
