"""structlog, configured as its users configure it, with install() exporting (real structlog)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

import otel_jobtags
from otel_jobtags import TagRegistry, format_background_log, job_context
from otel_jobtags.contrib.structlog import add_job_fields


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def stdlib_structlog(log_file: Path) -> None:
    """structlog's documented standard-library setup: a JSON log file through ProcessorFormatter."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.JSONRenderer(sort_keys=True),
                    ],
                    "foreign_pre_chain": [structlog.stdlib.add_log_level, add_job_fields],
                }
            },
            "handlers": {
                "file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "json"}
            },
            "root": {"level": "INFO", "handlers": ["file"]},
        }
    )
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            add_job_fields,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def file_lines(path: Path) -> list[dict[str, Any]]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_stdlib_integration_keeps_its_json_file_and_exports_the_job(
    registry: TagRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stdlib_structlog(tmp_path / "app.log")
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, exporter=sink, body_prefix=False)
    log = structlog.get_logger("app.orders")
    with job_context(registry.AUTO_REBAL, run_id="run-1"):
        log.info("orders placed", orders=3)
    log.info("idle")

    assert file_lines(tmp_path / "app.log") == [
        {
            "event": "exporting logs with InMemoryLogRecordExporter; 3 jobs (AUTO_REBAL, PRICE_CACHE, DAILY_SUMMARY)",
            "level": "info",
        },
        {
            "event": "orders placed",
            "orders": 3,
            "level": "info",
            "job.tag": "AUTO_REBAL",
            "job.id": "auto_rebalance",
            "job.run_id": "run-1",
        },
        {"event": "idle", "level": "info"},
    ]
    assert installation.force_flush()
    exported = [
        (json.loads(r.log_record.body), dict(r.log_record.attributes or {})) for r in sink.get_finished_logs()
    ]
    assert exported == [
        (
            {
                "event": "orders placed",
                "orders": 3,
                "level": "info",
                "job.tag": "AUTO_REBAL",
                "job.id": "auto_rebalance",
                "job.run_id": "run-1",
            },
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance", "job.run_id": "run-1"},
        ),
        ({"event": "idle", "level": "info"}, {}),
    ]
    assert capsys.readouterr().err == ""


def test_the_export_handler_can_render_with_the_users_processor_formatter(
    registry: TagRegistry, tmp_path: Path
) -> None:
    stdlib_structlog(tmp_path / "app.log")
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, exporter=sink, body_prefix=False)
    installation.handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
            foreign_pre_chain=[add_job_fields],
        )
    )
    with job_context(registry.PRICE_CACHE):
        structlog.get_logger("app.prices").warning("stale", symbols=["AAPL"])
        logging.getLogger("urllib3").warning("retrying %s", "/quotes")
    assert installation.force_flush()
    assert [r.log_record.body for r in sink.get_finished_logs()] == [
        '{"event": "stale", "job.id": "price_cache", "job.tag": "PRICE_CACHE", "level": "warning", "symbols": ["AAPL"]}',
        '{"event": "retrying /quotes", "job.id": "price_cache", "job.tag": "PRICE_CACHE"}',
    ]


def test_plain_logging_records_get_the_fields_by_the_same_rules(
    registry: TagRegistry, tmp_path: Path
) -> None:
    stdlib_structlog(tmp_path / "app.log")
    otel_jobtags.context.use_registry(registry)
    plain = logging.getLogger("app.legacy")
    plain.info(format_background_log(registry.DAILY_SUMMARY, "sent"))
    plain.info("sent", extra={"job_id": "price_cache"})
    with job_context(registry.AUTO_REBAL):
        plain.info("inside")
    assert file_lines(tmp_path / "app.log") == [
        {
            "event": "[DAILY_SUMMARY] sent",
            "level": "info",
            "job.tag": "DAILY_SUMMARY",
            "job.id": "send_daily_summary",
        },
        {"event": "sent", "level": "info", "job.tag": "PRICE_CACHE", "job.id": "price_cache"},
        {"event": "inside", "level": "info", "job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"},
    ]


def test_structlog_native_lines_carry_the_job_fields(registry: TagRegistry) -> None:
    out = io.StringIO()
    structlog.configure(
        processors=[add_job_fields, structlog.processors.JSONRenderer(sort_keys=True)],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    log = structlog.get_logger()
    with job_context(registry.AUTO_REBAL, run_id="r7"):
        log.info("rebalanced", accounts=2)
        log.info("explicit wins", **{"job.tag": "MANUAL"})
    log.info("outside")
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {
            "event": "rebalanced",
            "accounts": 2,
            "job.tag": "AUTO_REBAL",
            "job.id": "auto_rebalance",
            "job.run_id": "r7",
        },
        {"event": "explicit wins", "job.tag": "MANUAL", "job.id": "auto_rebalance", "job.run_id": "r7"},
        {"event": "outside"},
    ]
