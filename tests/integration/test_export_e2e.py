"""End to end: a job's log call reaches a real OTLP receiver on a real socket."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from support.otlp import GrpcReceiver, HttpReceiver, ReceivedLog

import otel_jobtags
from otel_jobtags import TagRegistry, format_background_log, job_context

log = logging.getLogger("app.jobs")


@pytest.fixture(params=["grpc", "http/protobuf"])
def receiver(request: pytest.FixtureRequest) -> Iterator[GrpcReceiver | HttpReceiver]:
    r: GrpcReceiver | HttpReceiver = GrpcReceiver() if request.param == "grpc" else HttpReceiver()
    r.start()
    yield r
    r.stop()


def _install(
    registry: TagRegistry, receiver: GrpcReceiver | HttpReceiver
) -> otel_jobtags.configure.Installation:
    if isinstance(receiver, GrpcReceiver):
        return otel_jobtags.install(
            registry, endpoint=receiver.endpoint, protocol="grpc", service_name="web", level=logging.DEBUG
        )
    return otel_jobtags.install(
        registry,
        endpoint=receiver.base_url,
        protocol="http/protobuf",
        service_name="web",
        level=logging.DEBUG,
    )


def _without_volatile(r: ReceivedLog) -> tuple[object, ...]:
    return (r.body, r.severity_text, r.severity_number, r.attributes, r.scope)


def test_job_records_arrive_with_tag_attributes_prefixed_body_severity_and_resource(
    registry: TagRegistry, receiver: GrpcReceiver | HttpReceiver
) -> None:
    installation = _install(registry, receiver)
    with job_context(registry.AUTO_REBAL):
        log.info("🔄 job started")
        logging.getLogger("exchange.client").debug("GET /balances -> %d", 200)
        log.warning(format_background_log(registry.AUTO_REBAL, "⚠️ drift %.1f%%"), 3.5)
    log.info(format_background_log(registry.PRICE_CACHE, "refreshed"))
    log.info("not a job")
    assert installation.force_flush(10_000)
    # OTLP groups records by scope (logger name): restore the logging order.
    records = sorted(receiver.wait_for(5), key=lambda r: r.time_unix_nano)
    assert [_without_volatile(r) for r in records] == [
        (
            "[AUTO_REBAL] 🔄 job started",
            "INFO",
            9,
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"},
            "app.jobs",
        ),
        (
            "[AUTO_REBAL] GET /balances -> 200",
            "DEBUG",
            5,
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"},
            "exchange.client",
        ),
        (
            "[AUTO_REBAL] ⚠️ drift 3.5%",
            "WARN",
            13,
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"},
            "app.jobs",
        ),
        (
            "[PRICE_CACHE] refreshed",
            "INFO",
            9,
            {"job.tag": "PRICE_CACHE", "job.id": "price_cache"},
            "app.jobs",
        ),
        ("not a job", "INFO", 9, {}, "app.jobs"),
    ]
    resource = records[0].resource
    assert resource["service.name"] == "web"
    assert resource["service.instance.id"] == installation.resource.attributes["service.instance.id"]
    assert isinstance(resource["process.pid"], int)
    assert resource["telemetry.sdk.name"] == "opentelemetry"


def test_exceptions_in_a_job_keep_exception_attributes_and_the_tag(
    registry: TagRegistry, receiver: GrpcReceiver | HttpReceiver
) -> None:
    installation = _install(registry, receiver)
    with job_context(registry.AUTO_REBAL):
        try:
            raise TimeoutError("broker did not answer")
        except TimeoutError:
            log.exception("❌ failed")
    installation.force_flush(10_000)
    (record,) = receiver.wait_for(1)
    attributes = dict(record.attributes)
    stacktrace = attributes.pop("exception.stacktrace")
    assert (record.body, record.severity_text) == ("[AUTO_REBAL] ❌ failed", "ERROR")
    assert attributes == {
        "job.tag": "AUTO_REBAL",
        "job.id": "auto_rebalance",
        "exception.type": "TimeoutError",
        "exception.message": "broker did not answer",
    }
    assert stacktrace.startswith("Traceback (most recent call last):")
    assert stacktrace.endswith("TimeoutError: broker did not answer\n")


def test_shutdown_delivers_what_was_logged_just_before(
    registry: TagRegistry, receiver: GrpcReceiver | HttpReceiver
) -> None:
    installation = _install(registry, receiver)
    with job_context("price_cache"):
        for i in range(50):
            log.info("tick %d", i)
    installation.shutdown()
    records = receiver.wait_for(50, timeout=5)
    assert [r.body for r in records] == [f"[PRICE_CACHE] tick {i}" for i in range(50)]
