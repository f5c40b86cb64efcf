"""Delivery guarantees against real OTLP receivers: text UTF-8 cannot encode,
signal handlers that log, the memory bound, receivers under backpressure or
refusing for good, and batches bounded by size.

The receivers are real (``support.otlp``), on real sockets; ``refuse`` makes
them answer as a collector does under memory-limiter backpressure (gRPC
UNAVAILABLE, HTTP 503/429) or when it refuses a request for good.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from support.otlp import GrpcReceiver, HttpReceiver, record_count
from support.processes import run_python

import otel_jobtags as oj
from otel_jobtags.delivery import DeliveryProcessor, DeliveryStats
from otel_jobtags.delivery.exporters import GrpcLogExporter
from otel_jobtags.handler import JobTagHandler

REPO_ROOT = Path(__file__).resolve().parents[2]


def _log() -> logging.Logger:
    logging.getLogger().setLevel(logging.INFO)
    return logging.getLogger("app.guarantees")


def _adds_up(stats: DeliveryStats) -> bool:
    return stats.emitted == stats.delivered + stats.queued + stats.dropped + stats.rejected


# -- text UTF-8 cannot encode ---------------------------------------------------------------

LATIN1_NAME = os.fsdecode(b"caf\xe9.csv")  # 'caf\udce9.csv': a lone surrogate


@pytest.mark.parametrize("spool", [False, True], ids=["memory", "spool"])
def test_a_lone_surrogate_is_delivered_replaced_and_counted_with_everything_around_it(
    receiver: GrpcReceiver, registry: oj.TagRegistry, tmp_path: Path, spool: bool
) -> None:
    receiver.stop()  # an outage first: the records wait (compacted, or in the spool)
    installation = oj.install(
        registry, endpoint=receiver.endpoint, spool_dir=tmp_path if spool else None, export_timeout=0.5
    )
    log = _log()
    log.info("before")
    log.warning("cannot parse %s", LATIN1_NAME, extra={"path": LATIN1_NAME})
    log.info("after")
    time.sleep(1.0)  # the worker forms (and spools) the batch while the receiver is down
    receiver.start()

    assert installation.force_flush(30_000)
    records = receiver.wait_for(3, timeout=5)
    assert [(r.body, r.attributes) for r in records] == [
        ("before", {}),
        ("cannot parse caf\ufffd.csv", {"path": "caf\ufffd.csv"}),
        ("after", {}),
    ]
    stats = installation.stats
    assert (stats.emitted, stats.delivered, stats.queued, stats.dropped, stats.rejected) == (3, 3, 0, 0, 0)
    assert stats.replaced == 1
    assert _adds_up(stats)


# -- signal handlers -------------------------------------------------------------------------

_SIGNAL_SCRIPT = r"""
import logging, os, signal, sys, threading
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
import otel_jobtags as oj
from otel_jobtags.delivery import DeliveryProcessor
from otel_jobtags.delivery.exporters import GrpcLogExporter
from otel_jobtags.handler import JobTagHandler

exporter = InMemoryLogRecordExporter()
installation = oj.install(exporter=exporter, level="INFO")
log = logging.getLogger("app")
handled = 0

def on_term(signum, frame):
    global handled
    handled += 1
    log.warning("shutting down (signal %d)", handled)

signal.signal(signal.SIGTERM, on_term)
done = threading.Event()

def kill():
    # Many signals, each interrupting the main thread wherever it is: inside
    # a log call, sooner or later inside the handler's critical section.
    while not done.is_set():
        os.kill(os.getpid(), signal.SIGTERM)
        done.wait(0.0005)

thread = threading.Thread(target=kill)
thread.start()
for i in range(int(sys.argv[1])):
    log.info("work %d", i)
done.set()
thread.join()
assert installation.force_flush(60_000)
stats = installation.stats
print(handled, stats.emitted, stats.delivered, stats.dropped, len(exporter.get_finished_logs()))
"""


def test_a_signal_handler_that_logs_never_deadlocks_and_its_records_are_delivered() -> None:
    result = run_python(_SIGNAL_SCRIPT, "100000", timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    handled, emitted, delivered, dropped, exported = map(int, result.stdout.split())
    assert handled > 0
    assert (emitted, delivered, dropped, exported) == (100_000 + handled,) * 2 + (0, 100_000 + handled)


# -- the memory bound --------------------------------------------------------------------------

_MEMORY_SCRIPT = r"""
import logging, sys
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
import otel_jobtags as oj
from otel_jobtags.delivery import DeliveryProcessor
from otel_jobtags.delivery.exporters import GrpcLogExporter
from otel_jobtags.handler import JobTagHandler

class Down(LogRecordExporter):
    def export(self, batch):
        return LogRecordExportResult.FAILURE
    def shutdown(self):
        pass
    def force_flush(self, timeout_millis=0):
        return True

def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

installation = oj.install(exporter=Down(), level="INFO", max_queue_bytes=8 * 1024 * 1024, shutdown_timeout=0.5)
log = logging.getLogger("app")
before = rss_kib()
for i in range(400):
    log.info("record %d", i, extra={"blob": ("%06d" % i) * (512 * 1024 // 6)})
after = rss_kib()
stats = installation.stats
print(stats.emitted, stats.queued, stats.dropped, stats.emitted == stats.queued + stats.dropped, after - before)
"""


def test_the_memory_bound_counts_attributes_and_holds() -> None:
    result = run_python(_MEMORY_SCRIPT)
    assert result.returncode == 0, result.stderr[-2000:]
    emitted, queued, dropped, adds_up, grown_kib = result.stdout.split()
    assert int(emitted) == 400 and adds_up == "True"
    # 512 KiB a record under an 8 MiB bound: at most 16 kept; the worker may
    # hold up to one bound's worth more until its next pass.
    assert int(queued) <= 2 * 16
    assert int(dropped) >= 400 - 2 * 16
    # 400 x 512 KiB = 200 MiB were logged; twice the bound, and the
    # interpreter's own slack, is all that may stay.
    assert int(grown_kib) < 48 * 1024


# -- backpressure and refusal (the OTLP retry rules) -------------------------------------------


def _data_only(answer: Any) -> Any:
    """Refuse requests holding records with ``answer``; accept empty ones, as the collector does."""

    def refuse(request: logs_service_pb2.ExportLogsServiceRequest) -> Any:
        return answer if record_count(request) else None

    return refuse


@pytest.mark.parametrize(
    "answer",
    [(grpc.StatusCode.UNAVAILABLE, None), (grpc.StatusCode.RESOURCE_EXHAUSTED, 0.01)],
    ids=["unavailable", "resource-exhausted-with-retry-info"],
)
def test_under_backpressure_records_are_kept_never_rejected_and_delivered_in_order(
    receiver: GrpcReceiver, answer: Any
) -> None:
    receiver.refuse = _data_only(answer)  # a memory limiter refusing data; empty exports succeed
    exporter = GrpcLogExporter(endpoint=receiver.endpoint, insecure=True, timeout=1.0)
    # Fast retries and a low threshold: were retryable failures taken for
    # refusals, the records would be split and rejected within a few dozen.
    processor = DeliveryProcessor(
        exporter, retry_initial=0.01, retry_max=0.05, probe_after_failures=2, shutdown_timeout=1.0
    )
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    log = logging.getLogger("app.backpressure")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = JobTagHandler(provider)
    log.addHandler(handler)
    try:
        for i in range(40):
            log.info("record %d", i)
        deadline = time.monotonic() + 60
        while processor.stats.failed_exports < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processor.stats.failed_exports >= 60
        assert processor.stats.rejected == 0
        receiver.refuse = None
        assert processor.force_flush(60_000)
        stats = processor.stats
    finally:
        log.removeHandler(handler)
        log.propagate = True
        processor.shutdown()

    assert [r.body for r in receiver.wait_for(40, timeout=5)] == [f"record {i}" for i in range(40)]
    assert (stats.emitted, stats.delivered, stats.rejected, stats.dropped) == (40, 40, 0, 0)


def test_over_http_503_and_429_are_retried_honouring_retry_after(http_receiver: HttpReceiver) -> None:
    answers = iter([(503, None), (429, 1.0)])
    attempts: list[float] = []

    def refuse(request: logs_service_pb2.ExportLogsServiceRequest) -> Any:
        if not record_count(request):
            return None
        attempts.append(time.monotonic())
        return next(answers, None)

    http_receiver.refuse = refuse
    installation = oj.install(endpoint=http_receiver.endpoint, protocol="http/protobuf")
    _log().info("kept")
    assert installation.force_flush(60_000)
    assert [r.body for r in http_receiver.records] == ["kept"]
    assert len(attempts) == 3
    assert attempts[2] - attempts[1] >= 0.95  # Retry-After: 1 was honoured
    assert installation.stats.rejected == 0


def test_a_record_the_receiver_refuses_for_good_is_rejected_and_the_others_delivered(
    receiver: GrpcReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(request: logs_service_pb2.ExportLogsServiceRequest) -> Any:
        bodies = [
            lr.body.string_value
            for rl in request.resource_logs
            for sl in rl.scope_logs
            for lr in sl.log_records
        ]
        return (grpc.StatusCode.INVALID_ARGUMENT, None) if any("POISON" in b for b in bodies) else None

    receiver.refuse = refuse
    installation = oj.install(endpoint=receiver.endpoint)
    log = _log()
    for i in range(20):
        log.info("POISON %d" if i == 7 else "record %d", i)
    assert installation.force_flush(60_000)

    assert [r.body for r in receiver.records] == [f"record {i}" for i in range(20) if i != 7]
    stats = installation.stats
    assert (stats.emitted, stats.delivered, stats.rejected, stats.dropped) == (20, 19, 1, 0)
    assert [line for line in capsys.readouterr().err.splitlines() if "rejected it" in line] == [
        "otel-jobtags: the receiver refused a record while accepting empty requests; "
        "rejected it: app.guarantees INFO: 'POISON 7'"
    ]


# -- batches bounded by size --------------------------------------------------------------------


def test_records_of_10_kb_go_in_batches_under_the_grpc_message_limit(
    receiver: GrpcReceiver, registry: oj.TagRegistry
) -> None:
    installation = oj.install(registry, endpoint=receiver.endpoint)
    log = _log()
    with oj.job_context("auto_rebalance"):
        for i in range(1536):
            log.info("record %04d %s", i, "x" * 10_000)
    assert installation.force_flush(120_000)

    records = receiver.wait_for(1536, timeout=10)
    assert [r.body[13:24] for r in records] == [f"record {i:04d}" for i in range(1536)]
    stats = installation.stats
    # Not one request over the receiver's 4 MiB limit: none failed.
    assert (stats.delivered, stats.failed_exports, stats.rejected) == (1536, 0, 0)


def test_a_record_bigger_than_the_receiver_accepts_is_rejected_alone(
    receiver: GrpcReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    installation = oj.install(endpoint=receiver.endpoint)
    log = _log()
    log.info("before")
    log.info("huge %s", "x" * (5 * 1024 * 1024))  # over gRPC's 4 MiB
    log.info("after")
    assert installation.force_flush(60_000)

    assert [r.body for r in receiver.records] == ["before", "after"]
    stats = installation.stats
    assert (stats.emitted, stats.delivered, stats.rejected) == (3, 2, 1)
    assert any(
        "rejected it: app.guarantees INFO: 'huge xxx" in line for line in capsys.readouterr().err.splitlines()
    )
