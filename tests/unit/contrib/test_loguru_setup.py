"""loguru, configured as its users configure it, with install() exporting (real loguru)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import loguru
import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

import otel_jobtags
from otel_jobtags import TagRegistry, job_context
from otel_jobtags.contrib.loguru import export_sink, patch_job_fields

logger = loguru.logger


@pytest.fixture(autouse=True)
def _reset_loguru() -> Iterator[None]:
    logger.remove()
    yield
    logger.remove()
    logger.configure(patcher=lambda record: None)


@pytest.fixture
def sink() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()


def exported(
    installation: otel_jobtags.configure.Installation, sink: InMemoryLogRecordExporter
) -> list[tuple[Any, ...]]:
    assert installation.force_flush()
    return [
        (r.log_record.severity_text, r.log_record.body, dict(r.log_record.attributes or {}))
        for r in sink.get_finished_logs()
    ]


def test_loguru_records_are_exported_with_the_job_attributes(
    registry: TagRegistry, sink: InMemoryLogRecordExporter
) -> None:
    installation = otel_jobtags.install(registry, exporter=sink)
    logger.configure(patcher=patch_job_fields)
    logger.add(export_sink, format="{message}", level="DEBUG")
    with job_context(registry.AUTO_REBAL, run_id="run-1"):
        logger.bind(account="A-1").info("rebalanced {} accounts", 3)
    logger.warning("outside any job")
    assert exported(installation, sink) == [
        (
            "INFO",
            "[AUTO_REBAL] rebalanced 3 accounts",
            {"account": "A-1", "job.tag": "AUTO_REBAL", "job.id": "auto_rebalance", "job.run_id": "run-1"},
        ),
        ("WARN", "outside any job", {}),
    ]


def test_the_export_sink_attributes_by_context_without_the_patcher(
    registry: TagRegistry, sink: InMemoryLogRecordExporter
) -> None:
    installation = otel_jobtags.install(registry, exporter=sink, body_prefix=False)
    logger.add(export_sink, format="{message}")
    with job_context(registry.PRICE_CACHE):
        logger.success("prices refreshed")
    logger.bind(job_tag="DAILY_SUMMARY").info("sent")
    assert exported(installation, sink) == [
        ("SUCCESS", "prices refreshed", {"job.tag": "PRICE_CACHE", "job.id": "price_cache"}),
        ("INFO", "sent", {"job.tag": "DAILY_SUMMARY", "job.id": "send_daily_summary"}),
    ]


def test_an_exception_is_exported_with_its_attributes(
    registry: TagRegistry, sink: InMemoryLogRecordExporter
) -> None:
    installation = otel_jobtags.install(registry, exporter=sink)
    logger.add(export_sink, format="{message}")
    with job_context(registry.AUTO_REBAL):
        try:
            raise TimeoutError("broker did not answer")
        except TimeoutError:
            logger.exception("rebalance failed")
    ((severity, body, attributes),) = exported(installation, sink)
    assert (severity, body) == ("ERROR", "[AUTO_REBAL] rebalance failed")
    assert attributes["exception.type"] == "TimeoutError"
    assert attributes["exception.message"] == "broker did not answer"
    assert attributes["exception.stacktrace"].endswith("TimeoutError: broker did not answer\n")
    assert {k: attributes[k] for k in ("job.tag", "job.id")} == {
        "job.tag": "AUTO_REBAL",
        "job.id": "auto_rebalance",
    }


def test_the_patcher_gives_file_formats_the_fields_even_on_an_enqueued_sink(registry: TagRegistry) -> None:
    otel_jobtags.context.use_registry(registry)
    out = io.StringIO()
    logger.configure(patcher=patch_job_fields)
    logger.add(out, format="{level} [{extra[job.tag]}] {extra[job.run_id]} {message}", enqueue=True)
    with job_context(registry.AUTO_REBAL, run_id="r9"):
        logger.info("inside")
    logger.info("outside")
    logger.complete()
    assert out.getvalue() == "INFO [AUTO_REBAL] r9 inside\nINFO [-] - outside\n"


def test_an_intercept_handler_on_the_root_logger_does_not_send_records_round(
    registry: TagRegistry, sink: InMemoryLogRecordExporter
) -> None:
    class InterceptHandler(logging.Handler):  # loguru's documented recipe
        def emit(self, record: logging.LogRecord) -> None:
            logger.opt(depth=6, exception=record.exc_info).log(record.levelname, record.getMessage())

    installation = otel_jobtags.install(registry, exporter=sink, level="INFO")
    logging.getLogger().addHandler(InterceptHandler())
    logger.add(export_sink, format="{message}")
    with job_context(registry.AUTO_REBAL):
        logger.info("from loguru")
    assert [body for _, body, _ in exported(installation, sink)] == ["[AUTO_REBAL] from loguru"]
