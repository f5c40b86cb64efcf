"""structlog and loguru applications exporting over OTLP to a real receiver, as their users set them up."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator

import loguru
import pytest
import structlog
from support.otlp import GrpcReceiver

import otel_jobtags
from otel_jobtags import TagRegistry, job_context
from otel_jobtags.contrib.loguru import export_sink, patch_job_fields
from otel_jobtags.contrib.structlog import add_job_fields


@pytest.fixture
def receiver() -> Iterator[GrpcReceiver]:
    with GrpcReceiver() as r:
        yield r


@pytest.fixture(autouse=True)
def _reset_libraries() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    loguru.logger.remove()
    loguru.logger.configure(patcher=lambda record: None)


def test_a_structlog_app_exports_json_bodies_with_the_job_attributes(
    registry: TagRegistry, receiver: GrpcReceiver
) -> None:
    # The application's logging configuration, with the export as one of its handlers.
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
                    "foreign_pre_chain": [add_job_fields],
                }
            },
            "handlers": {"otel": {"class": "otel_jobtags.ExportHandler", "formatter": "json"}},
            "root": {"level": "INFO", "handlers": ["otel"]},
        }
    )
    structlog.configure(
        processors=[add_job_fields, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    installation = otel_jobtags.install(registry, endpoint=receiver.endpoint, body_prefix=False)
    with job_context(registry.AUTO_REBAL, run_id="run-1"):
        structlog.get_logger("app.orders").info("orders placed", orders=3)
        logging.getLogger("app.legacy").info("legacy %s", "line")
    assert installation.force_flush(30_000)
    records = receiver.wait_for(2, timeout=10)
    assert [(json.loads(r.body), r.attributes) for r in records] == [
        (
            {
                "event": "orders placed",
                "orders": 3,
                "job.tag": "AUTO_REBAL",
                "job.id": "auto_rebalance",
                "job.run_id": "run-1",
            },
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance", "job.run_id": "run-1"},
        ),
        (
            {
                "event": "legacy line",
                "job.tag": "AUTO_REBAL",
                "job.id": "auto_rebalance",
                "job.run_id": "run-1",
            },
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance", "job.run_id": "run-1"},
        ),
    ]


def test_a_loguru_app_exports_with_the_job_attributes(registry: TagRegistry, receiver: GrpcReceiver) -> None:
    installation = otel_jobtags.install(registry, endpoint=receiver.endpoint)
    logger = loguru.logger
    logger.remove()
    logger.configure(patcher=patch_job_fields)
    logger.add(export_sink, format="{message}")
    with job_context(registry.PRICE_CACHE):
        logger.bind(symbols=2).warning("stale quotes")
    assert installation.force_flush(30_000)
    (record,) = receiver.wait_for(1, timeout=10)
    assert (record.severity_text, record.body, record.attributes, record.scope) == (
        "WARN",
        "[PRICE_CACHE] stale quotes",
        {"symbols": 2, "job.tag": "PRICE_CACHE", "job.id": "price_cache"},
        __name__,
    )
