"""A message cannot pass a line of its own off as another job's record in the text log.

The application logs through the README's dictConfig (JobTagFilter and
JobTagFormatter on a file handler); the log is read back as an admin page and
``otel-jobtags logs`` read it.
"""

from __future__ import annotations

import io
import logging
import logging.config
import traceback
from pathlib import Path

import pytest

from otel_jobtags import JobTagFilter, TagRegistry, job_context, read_job_logs
from otel_jobtags.logfiles import CONTINUATION_MARK, LogFilter

JOBS = TagRegistry()
AUTO_REBAL = JOBS.define("AUTO_REBAL", "auto_rebalance", "rebalance", "hourly at minute 17")
PRICE_CACHE = JOBS.define("PRICE_CACHE", "price_cache", "refresh prices", "every 5 s")

FORGED = "ok\n2026-01-01 00:00:00,000 ERROR: [AUTO_REBAL] forged"
FORMAT = "%(asctime)s %(levelname)s: %(message)s"

log = logging.getLogger("app.jobs")


def configure(path: Path, formatter: str = "otel_jobtags.JobTagFormatter", fmt: str = FORMAT) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"jobtags": {"()": JobTagFilter, "registry": JOBS}},
            "formatters": {"plain": {"class": formatter, "format": fmt}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(path),
                    "filters": ["jobtags"],
                    "formatter": "plain",
                }
            },
            "root": {"level": "INFO", "handlers": ["file"]},
        }
    )


def close_handlers() -> None:
    for handler in logging.getLogger().handlers:
        handler.close()


@pytest.fixture
def app_log(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    configure(path)
    with job_context(PRICE_CACHE):
        log.info(FORGED)
    with job_context(AUTO_REBAL):
        log.info("real record")
    close_handlers()
    return path


def test_a_forged_line_is_not_read_back_as_another_job_s_record(app_log: Path) -> None:
    records = read_job_logs(app_log, "auto_rebalance", registry=JOBS)
    assert [(r.level, r.message) for r in records] == [("INFO", "real record")]
    assert [r.message for r in read_job_logs(app_log, "auto_rebalance", registry=JOBS, limit=5)] == [
        "real record"
    ]


def test_the_forged_line_stays_a_continuation_line_of_its_record(app_log: Path) -> None:
    (record,) = read_job_logs(app_log, "price_cache", registry=JOBS)
    assert (record.tag, record.message, record.continuation) == (
        "PRICE_CACHE",
        "ok",
        ("2026-01-01 00:00:00,000 ERROR: [AUTO_REBAL] forged",),
    )


def test_the_logs_command_path_copies_no_forged_record(app_log: Path) -> None:
    out = io.BytesIO()
    LogFilter("AUTO_REBAL", registry=JOBS).write(app_log, out)
    assert out.getvalue().decode().endswith(" INFO: [AUTO_REBAL] real record\n")
    assert b"forged" not in out.getvalue()
    every_job = [(r.tag, r.message) for r in LogFilter(registry=JOBS).scan(app_log)]
    assert every_job == [("PRICE_CACHE", "ok"), ("AUTO_REBAL", "real record")]


def test_a_marked_line_never_starts_a_record_whatever_the_format(tmp_path: Path) -> None:
    fmt = "%(name)s %(levelname)s: %(message)s"  # a free-text field first: "  | ..." could fill it
    path = tmp_path / "app.log"
    configure(path, fmt=fmt)
    with job_context(PRICE_CACHE):
        log.info("ok\nx WARNING: [AUTO_REBAL] forged")
    close_handlers()
    assert read_job_logs(path, "auto_rebalance", registry=JOBS, line_format=fmt) == []


def test_the_text_log_keeps_the_first_line_for_grep_and_marks_the_others(app_log: Path) -> None:
    lines = app_log.read_text(encoding="utf-8").splitlines()
    assert [line.split(" ", 2)[2] for line in lines[::2]] == [
        "INFO: [PRICE_CACHE] ok",
        "INFO: [AUTO_REBAL] real record",
    ]
    assert lines[1] == CONTINUATION_MARK + "2026-01-01 00:00:00,000 ERROR: [AUTO_REBAL] forged"
    assert [line for line in lines if "[AUTO_REBAL]" in line and not line.startswith("2")] == [lines[1]]


def test_a_traceback_is_read_back_as_it_was_raised(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    configure(path)
    with job_context(AUTO_REBAL):
        try:
            raise ValueError("boom\nsecond line")
        except ValueError as exc:
            log.exception("failed")
            expected = "".join(traceback.format_exception(exc)).rstrip("\n").split("\n")
    close_handlers()
    assert "\n  |   File " in path.read_text(encoding="utf-8")
    (record,) = read_job_logs(path, "auto_rebalance", registry=JOBS)
    assert (record.level, record.message, list(record.continuation)) == ("ERROR", "failed", expected)


def test_a_plain_logging_formatter_log_cannot_be_protected(tmp_path: Path) -> None:
    # Documented limit: nothing marks the lines logging.Formatter writes.
    path = tmp_path / "app.log"
    configure(path, formatter="logging.Formatter")
    with job_context(PRICE_CACHE):
        log.info(FORGED)
    close_handlers()
    assert [r.message for r in read_job_logs(path, "auto_rebalance", registry=JOBS)] == ["forged"]
