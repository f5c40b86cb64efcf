"""The stack's collector: the real binary built from the builder manifest, run with the repo's config.

Loki itself is not run here (it is AGPL and not built in this project); a
real OTLP/HTTP receiver on Loki's path, ``/otlp/v1/logs``, stands in for it,
so these tests check everything up to the bytes Loki would receive.

The binary comes from ``scripts/build-collector.sh`` (cached after the first
build) or ``$OTEL_JOBTAGS_COLLECTOR``. Without it the tests skip on a
developer's machine and fail in CI.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from support.collector import COLLECTOR_CONFIG, Collector, find_collector_binary, poll_until, validate_config
from support.otlp import HttpReceiver, ReceivedLog
from support.prerequisites import REPO_ROOT, PrerequisiteError, unavailable

# The first test to ask for the binary may wait for a cold build.
pytestmark = [pytest.mark.collector, pytest.mark.timeout(1800)]

MANIFEST = REPO_ROOT / "collector" / "builder-config.yaml"
LOKI_OTLP_PATH = "/otlp/v1/logs"
OUTAGE_S = 20.0
# retry_on_failure.max_interval is 10 s; allow for jitter and a slow machine.
REDELIVERY_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def collector_binary() -> Path:
    """The collector binary; skips without it, fails without it in CI."""
    try:
        return find_collector_binary()
    except PrerequisiteError as exc:
        unavailable(f"no collector binary: {exc}")


@pytest.fixture
def loki() -> Iterator[HttpReceiver]:
    """A stand-in for Loki's OTLP endpoint: a real OTLP/HTTP receiver on ``/otlp/v1/logs``."""
    receiver = HttpReceiver(path=LOKI_OTLP_PATH)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def loki_endpoint(receiver: HttpReceiver) -> str:
    """What LOKI_OTLP_ENDPOINT is set to: Loki's base URL plus ``/otlp``."""
    return f"{receiver.base_url}/otlp"


@pytest.fixture
def collector(collector_binary: Path, loki: HttpReceiver, tmp_path: Path) -> Iterator[Collector]:
    """The collector running the repository's config, exporting to the ``loki`` stand-in."""
    with Collector(collector_binary, tmp_path, loki_endpoint=loki_endpoint(loki)) as running:
        yield running


@dataclass(frozen=True)
class Sent:
    """One log record a test sends through the SDK."""

    body: str
    severity: SeverityNumber
    severity_text: str
    attributes: dict[str, Any]


def send(collector: Collector, records: Sequence[Sent], *, protocol: str, resource: Resource) -> None:
    """Export ``records`` to the collector with the OpenTelemetry SDK and wait until it took them."""
    exporter: LogRecordExporter
    if protocol == "grpc":
        exporter = GrpcLogExporter(endpoint=collector.otlp_grpc_endpoint, insecure=True, timeout=10)
    else:
        exporter = HttpLogExporter(endpoint=f"{collector.otlp_http_endpoint}/v1/logs", timeout=10)
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("otel_jobtags.tests.collector")
    try:
        for record in records:
            logger.emit(
                body=record.body,
                severity_number=record.severity,
                severity_text=record.severity_text,
                attributes=record.attributes,
            )
        assert provider.force_flush(timeout_millis=15_000), "the SDK could not export to the collector"
    finally:
        provider.shutdown()


def job_record(seq: int, run: str) -> Sent:
    """A record as a tagged background job writes it, numbered for loss and duplicate checks."""
    return Sent(
        body=f"[QUEUE_REBAL] 📊 status summary - active: {seq}",
        severity=SeverityNumber.INFO,
        severity_text="INFO",
        attributes={"job.tag": "QUEUE_REBAL", "job.id": "queue_rebalancer", "test.run": run, "test.seq": seq},
    )


def seqs(records: Sequence[ReceivedLog], run: str) -> list[int]:
    """The ``test.seq`` numbers of one run's records, in arrival order."""
    return [r.attributes["test.seq"] for r in records if r.attributes.get("test.run") == run]


def wait_for_queue_drained(collector: Collector) -> None:
    """Wait until the exporter's persistent queue is empty: nothing left to (re)send."""
    poll_until(
        lambda: collector.metric("otelcol_exporter_queue_size") == 0,
        timeout=REDELIVERY_TIMEOUT_S,
        what="the collector's sending queue to drain",
    )


# --- the build ---------------------------------------------------------------


def _config_component_types(config: dict[str, Any]) -> dict[str, set[str]]:
    kinds = ("receivers", "processors", "exporters", "extensions")
    return {kind: {name.split("/")[0] for name in config.get(kind) or {}} for kind in kinds}


def test_binary_has_exactly_the_components_the_config_uses(collector_binary: Path) -> None:
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text(encoding="utf-8"))
    proc = subprocess.run(
        [str(collector_binary), "components"], capture_output=True, text=True, timeout=60, check=True
    )
    components = yaml.safe_load(proc.stdout)

    built = {kind: {c["name"] for c in components[kind] or []} for kind in _config_component_types(config)}
    assert built == _config_component_types(config)
    assert components["connectors"] == []
    assert {p["scheme"] for p in components["providers"]} == {"env", "file"}


def test_every_module_is_at_the_manifest_release(collector_binary: Path) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    release = manifest["dist"]["version"]
    proc = subprocess.run(
        [str(collector_binary), "components"], capture_output=True, text=True, timeout=60, check=True
    )
    components = yaml.safe_load(proc.stdout)
    versions = {
        c["module"].split()[1]
        for kind in ("receivers", "processors", "exporters", "extensions", "providers")
        for c in components[kind]
    }

    assert components["buildinfo"]["version"] == release
    # Core and contrib modules at v<release>; the stable core modules of that
    # release (the config providers) at their 1.x counterpart.
    assert versions - {f"v{release}"} == {"v1.71.0"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", release)


# --- the config --------------------------------------------------------------


def test_validate_accepts_the_repo_config(collector_binary: Path) -> None:
    proc = validate_config(collector_binary)

    assert proc.returncode == 0, proc.stderr


def test_validate_accepts_the_debug_exporter_opt_in(collector_binary: Path) -> None:
    proc = validate_config(collector_binary, env={"COLLECTOR_LOGS_EXPORTERS": "[otlp_http/loki, debug]"})

    assert proc.returncode == 0, proc.stderr


def test_validate_rejects_an_unknown_exporter_in_the_list(collector_binary: Path) -> None:
    proc = validate_config(collector_binary, env={"COLLECTOR_LOGS_EXPORTERS": "[otlp_http/loki, nowhere]"})

    assert proc.returncode != 0
    assert 'references exporter "nowhere" which is not configured' in proc.stderr


def test_collector_starts_and_health_check_answers(collector: Collector) -> None:
    assert collector.healthy()
    assert collector.running


def test_collector_stops_cleanly_on_sigterm(collector: Collector) -> None:
    assert collector.stop() == 0


# --- end to end: SDK -> collector -> Loki's OTLP endpoint -----------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_records_reach_loki_path_whole(collector: Collector, loki: HttpReceiver, protocol: str) -> None:
    resource = Resource.create({"service.name": "jobtags-e2e", "service.instance.id": "e2e-1"})
    sent = [
        Sent(
            "[AUTO_REBAL] 🔄 job started",
            SeverityNumber.INFO,
            "INFO",
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"},
        ),
        Sent(
            "[AUTO_REBAL] processed: 5 items",
            SeverityNumber.DEBUG,
            "DEBUG",
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"},
        ),
        Sent(
            "[WS_HEALTH] 웹소켓 연결 지연 - 2초",
            SeverityNumber.WARN,
            "WARNING",
            {"job.tag": "WS_HEALTH", "job.id": "websocket_health_monitor"},
        ),
        Sent(
            "[AUTO_REBAL] ❌ failed: timeout",
            SeverityNumber.ERROR,
            "ERROR",
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance", "exception.type": "TimeoutError"},
        ),
    ]

    send(collector, sent, protocol=protocol, resource=resource)
    received = loki.wait_for(len(sent), timeout=30)

    assert [(r.body, r.severity_number, r.severity_text, r.attributes) for r in received] == [
        (s.body, s.severity.value, s.severity_text, s.attributes) for s in sent
    ]
    assert all(r.resource == dict(resource.attributes) for r in received)
    assert {r.resource["service.name"] for r in received} == {"jobtags-e2e"}
    assert {r.scope for r in received} == {"otel_jobtags.tests.collector"}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_an_app_using_install_reaches_loki_path_through_the_collector(
    collector: Collector, loki: HttpReceiver, protocol: str
) -> None:
    import logging

    import otel_jobtags
    from otel_jobtags.demo import JOBS

    endpoint = (
        f"http://{collector.otlp_grpc_endpoint}" if protocol == "grpc" else collector.otlp_http_endpoint
    )
    installation = otel_jobtags.install(
        JOBS, endpoint=endpoint, protocol=protocol, service_name="jobtags-app", level=logging.INFO
    )
    log = logging.getLogger("app.jobs")
    with otel_jobtags.job_context("auto_rebalance"):
        log.info("🔄 job started")
        try:
            raise TimeoutError("broker did not answer")
        except TimeoutError:
            log.exception("❌ failed")
    log.warning(otel_jobtags.format_background_log(JOBS.WS_HEALTH, "웹소켓 연결 지연 - 2초"))
    assert installation.force_flush(15_000)
    received = sorted(loki.wait_for(3, timeout=30), key=lambda r: r.time_unix_nano)

    assert [
        (r.body, r.severity_text, r.attributes.get("job.tag"), r.attributes.get("job.id")) for r in received
    ] == [
        ("[AUTO_REBAL] 🔄 job started", "INFO", "AUTO_REBAL", "auto_rebalance"),
        ("[AUTO_REBAL] ❌ failed", "ERROR", "AUTO_REBAL", "auto_rebalance"),
        ("[WS_HEALTH] 웹소켓 연결 지연 - 2초", "WARN", "WS_HEALTH", "websocket_health_monitor"),
    ]
    assert received[1].attributes["exception.type"] == "TimeoutError"
    assert {r.resource["service.name"] for r in received} == {"jobtags-app"}
    assert {r.resource["process.pid"] for r in received} == {installation.resource.attributes["process.pid"]}


def test_debug_exporter_prints_records_when_opted_in(
    collector_binary: Path, loki: HttpReceiver, tmp_path: Path
) -> None:
    env = {"COLLECTOR_LOGS_EXPORTERS": "[otlp_http/loki, debug]"}
    with Collector(collector_binary, tmp_path, loki_endpoint=loki_endpoint(loki), env=env) as collector:
        send(
            collector,
            [job_record(0, "debug")],
            protocol="http/protobuf",
            resource=Resource.create({"service.name": "jobtags-debug"}),
        )
        loki.wait_for(1, timeout=30)
        poll_until(
            lambda: "[QUEUE_REBAL] 📊 status summary - active: 0" in collector.output(500),
            timeout=10,
            what="the debug exporter's output",
        )

    assert seqs(loki.records, "debug") == [0]


# --- a Loki outage loses nothing ------------------------------------------------


def test_loki_outage_loses_nothing_and_duplicates_nothing(collector: Collector, loki: HttpReceiver) -> None:
    run = uuid.uuid4().hex
    resource = Resource.create({"service.name": "jobtags-outage"})
    send(collector, [job_record(i, run) for i in range(50)], protocol="http/protobuf", resource=resource)
    loki.wait_for(50, timeout=30, predicate=lambda r: r.attributes.get("test.run") == run)

    loki.stop()
    outage_started = time.monotonic()
    send(collector, [job_record(i, run) for i in range(50, 150)], protocol="http/protobuf", resource=resource)
    # The collector has accepted the records and holds them in its disk queue.
    poll_until(
        lambda: (collector.metric("otelcol_exporter_queue_size") or 0) >= 1,
        timeout=10,
        what="the records to wait in the sending queue",
    )
    poll_until(
        lambda: "Exporting failed. Will retry the request after interval." in collector.output(500),
        timeout=10,
        what="a failed export attempt during the outage",
    )
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))  # the outage itself
    assert sorted(seqs(loki.records, run)) == list(range(50))
    loki.start()  # same port, same path

    loki.wait_for(150, timeout=REDELIVERY_TIMEOUT_S, predicate=lambda r: r.attributes.get("test.run") == run)
    wait_for_queue_drained(collector)

    assert sorted(seqs(loki.records, run)) == list(range(150))


def test_records_queued_in_an_outage_survive_a_collector_restart(
    collector: Collector, loki: HttpReceiver
) -> None:
    run = uuid.uuid4().hex
    loki.stop()
    send(
        collector,
        [job_record(i, run) for i in range(40)],
        protocol="grpc",
        resource=Resource.create({"service.name": "jobtags-restart"}),
    )
    poll_until(
        lambda: (collector.metric("otelcol_exporter_queue_size") or 0) >= 1,
        timeout=10,
        what="the records to wait in the sending queue",
    )

    assert collector.stop() == 0
    assert any(collector.storage_dir.iterdir()), "the queue left nothing on disk"
    loki.start()
    collector.start()  # same ports, same file_storage directory

    loki.wait_for(40, timeout=REDELIVERY_TIMEOUT_S, predicate=lambda r: r.attributes.get("test.run") == run)
    wait_for_queue_drained(collector)

    assert sorted(seqs(loki.records, run)) == list(range(40))
