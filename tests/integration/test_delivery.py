"""Delivery: every record reaches a real OTLP receiver, through bursts, outages, exits and forks.

Every test talks to a real receiver on a real socket (``support.otlp``) that it
stops and starts to simulate an outage. Subprocesses stand in for application
restarts and crashes.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from support.otlp import GrpcReceiver, HttpReceiver, ReceivedLog, free_port
from support.processes import run_python

import otel_jobtags as oj
from otel_jobtags import _diagnostics
from otel_jobtags._diagnostics import Throttle
from otel_jobtags.configure import DeliverySettings, resolve_delivery_settings
from otel_jobtags.context import use_registry
from otel_jobtags.delivery import RECORD_OVERHEAD, DeliveryProcessor, DeliveryStats
from otel_jobtags.handler import JobTagHandler
from otel_jobtags.spool import Spool, SpooledBatch


@pytest.fixture
def registry() -> oj.TagRegistry:
    jobs = oj.TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "rebalance", "hourly at minute 17")
    jobs.define("PRICE_CACHE", "price_cache", "refresh prices", "every 5 s")
    return jobs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    oj.uninstall()
    root.handlers[:] = handlers
    root.setLevel(level)


def _app_logger() -> logging.Logger:
    logging.getLogger().setLevel(logging.INFO)
    return logging.getLogger("app.jobs")


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("otel-jobtags: ")]


# -- burst ------------------------------------------------------------------------------


def test_a_burst_of_100000_records_is_delivered_completely(
    receiver: GrpcReceiver, registry: oj.TagRegistry
) -> None:
    installation = oj.install(registry, endpoint=receiver.endpoint, service_name="burst")
    log = _app_logger()
    with oj.job_context("auto_rebalance"):
        for i in range(100_000):
            log.info("processed: %d items", i)

    assert installation.force_flush(120_000)
    records = receiver.wait_for(100_000, timeout=30)
    assert len(records) == 100_000
    assert [r.body for r in records] == [f"[AUTO_REBAL] processed: {i} items" for i in range(100_000)]
    assert installation.stats == DeliveryStats(
        emitted=100_000, delivered=100_000, queued=0, dropped=0, rejected=0, failed_exports=0
    )


# -- outage -----------------------------------------------------------------------------


class _Emitter:
    """Logs ~200 records/s, alternating two jobs, and times every log call."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.seq = 0
        self.durations: list[float] = []

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for job in ("auto_rebalance", "price_cache"):
                with oj.job_context(job):
                    start = time.perf_counter()
                    self.log.info("record %d", self.seq, extra={"seq": self.seq})
                    self.durations.append(time.perf_counter() - start)
                self.seq += 1
            time.sleep(0.01)


_EXPORT_FAILED = re.compile(
    r"^otel-jobtags: export failed \(gRPC UNAVAILABLE.*\); \d+ records waiting, retrying \(records are kept\)"
    r"( -- hint: .*)?( \(\d+ similar messages? held back\))?$"
)


def test_after_an_outage_every_record_arrives_once_in_order_and_nothing_else(
    receiver: GrpcReceiver,
    registry: oj.TagRegistry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A throttle of its own: what earlier tests said must not hold this one's lines back.
    monkeypatch.setattr(_diagnostics, "DEFAULT_THROTTLE", Throttle())
    installation = oj.install(registry, endpoint=receiver.endpoint, service_name="outage")
    emitter = _Emitter(_app_logger())
    emitter.run(1.0)
    outage = time.monotonic()
    receiver.stop()
    emitter.run(6.0)
    # The pipeline's own loggers, as a failing export makes them talk.
    logging.getLogger("opentelemetry.sdk._logs").warning("internal trouble")
    logging.getLogger("grpc._channel").warning("channel trouble")
    receiver.start()
    emitter.run(1.0)

    assert installation.force_flush(30_000)
    outage = time.monotonic() - outage
    records = receiver.wait_for(emitter.seq, timeout=5)
    seqs = [r.attributes["seq"] for r in records]
    assert sorted(seqs) == list(range(emitter.seq))  # all of them, each once
    for tag in ("AUTO_REBAL", "PRICE_CACHE"):
        per_job = [r.attributes["seq"] for r in records if r.attributes["job.tag"] == tag]
        assert per_job == sorted(per_job)
    assert {r.scope for r in records} == {"app.jobs"}
    assert {r.body for r in records} == {
        f"[{'AUTO_REBAL' if i % 2 == 0 else 'PRICE_CACHE'}] record {i}" for i in range(emitter.seq)
    }
    stats = installation.stats
    assert (stats.emitted, stats.delivered, stats.queued, stats.dropped) == (emitter.seq, emitter.seq, 0, 0)
    assert stats.failed_exports >= 1
    # How long a log call takes during an outage is measured by benchmarks/run.py;
    # test_log_calls_never_wait_for_a_stuck_exporter asserts that they do not wait.

    err = capsys.readouterr().err
    lines = _stderr_lines(err)
    assert "otel-jobtags: opentelemetry.sdk._logs WARNING: internal trouble" in lines
    assert "otel-jobtags: grpc._channel WARNING: channel trouble" in lines
    failed = [line for line in lines if line.startswith("otel-jobtags: export failed (gRPC UNAVAILABLE")]
    # Throttled: one line per 10 s, naming the cause; a later one says how many were held back.
    assert 1 <= len(failed) <= 1 + int(outage // 10), (outage, failed)
    assert [line for line in failed if not _EXPORT_FAILED.match(line)] == []


def test_log_calls_never_wait_for_a_stuck_exporter(registry: oj.TagRegistry) -> None:
    entered, release, left = threading.Event(), threading.Event(), threading.Event()

    class StuckExporter(InMemoryLogRecordExporter):
        def export(self, batch):  # type: ignore[no-untyped-def]
            entered.set()
            release.wait(30)  # like an export hanging on an unreachable collector
            left.set()
            return super().export(batch)

    sink = StuckExporter()
    installation = oj.install(registry, exporter=sink, level=logging.INFO)
    log = _app_logger()
    log.info("first")
    assert entered.wait(10), "the worker never started exporting"
    for i in range(5_000):  # all return while the export is still stuck
        log.info("record %d", i)
    assert not left.is_set(), "log calls waited for the export"
    assert len(sink.get_finished_logs()) == 0
    release.set()
    assert installation.force_flush(30_000)
    assert len(sink.get_finished_logs()) == 5_001
    installation.shutdown()


def test_over_http_an_outage_loses_nothing(registry: oj.TagRegistry) -> None:
    rx = HttpReceiver()
    rx.start()
    try:
        installation = oj.install(registry, endpoint=rx.base_url, protocol="http/protobuf")
        emitter = _Emitter(_app_logger())
        emitter.run(0.5)
        rx.stop()
        emitter.run(2.0)
        rx.start()
        assert installation.force_flush(30_000)
        records = rx.wait_for(emitter.seq, timeout=5)
        assert sorted(r.attributes["seq"] for r in records) == list(range(emitter.seq))
    finally:
        rx.stop()


# -- bounded memory -----------------------------------------------------------------------


def test_past_the_record_bound_the_oldest_records_are_dropped_counted_and_reported(
    receiver: GrpcReceiver, registry: oj.TagRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.stop()
    installation = oj.install(registry, endpoint=receiver.endpoint, max_queue_records=10)
    log = _app_logger()
    for i in range(25):
        log.info("record %02d", i)
    receiver.start()

    assert installation.force_flush(30_000)
    assert [r.body for r in receiver.wait_for(10, timeout=5)] == [f"record {i:02d}" for i in range(15, 25)]
    assert installation.stats == DeliveryStats(
        emitted=25, delivered=10, queued=0, dropped=15, rejected=0, failed_exports=0
    )
    assert _stderr_lines(capsys.readouterr().err) == [
        f"otel-jobtags: log queue full (10 records / {256 * 1024 * 1024} bytes): "
        "dropped the oldest records, 15 so far"
    ]


def test_past_the_byte_bound_the_oldest_records_are_dropped(
    receiver: GrpcReceiver, registry: oj.TagRegistry
) -> None:
    receiver.stop()
    per_record = len("record 00") + RECORD_OVERHEAD
    installation = oj.install(registry, endpoint=receiver.endpoint, max_queue_bytes=4 * per_record)
    log = _app_logger()
    for i in range(10):
        log.info("record %02d", i)
    receiver.start()

    assert installation.force_flush(30_000)
    assert [r.body for r in receiver.wait_for(4, timeout=5)] == [f"record {i:02d}" for i in range(6, 10)]
    assert installation.stats.dropped == 6


def test_with_a_spool_the_bound_drops_the_oldest_waiting_batch_and_its_file(
    receiver: GrpcReceiver, registry: oj.TagRegistry, tmp_path: Path
) -> None:
    receiver.stop()
    # A short attempt keeps the exporter from retrying inside one attempt, so
    # the worker is back at every tick to spool the queue.
    exporter = _CountingGrpcExporter(endpoint=receiver.endpoint, insecure=True, timeout=0.3)
    installation = oj.install(
        registry, exporter=exporter, max_queue_records=10, spool_dir=tmp_path, export_timeout=0.3
    )
    log = _app_logger()

    def wait_until(condition: Any, what: str) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    # Three batches of 5, each spooled at the next worker tick, before the next is logged.
    for start, files in ((0, 1), (5, 2)):
        for i in range(start, start + 5):
            log.info("record %02d", i)
        wait_until(lambda files=files: len(_batch_files(tmp_path)) == files, f"{files} spooled batches")
    for i in range(10, 15):
        log.info("record %02d", i)
    # Over the bound: the batch in flight (0-4) is kept, the next oldest (5-9) goes, with its file.
    wait_until(lambda: installation.stats.dropped == 5, "the oldest waiting batch to be dropped")
    wait_until(lambda: len(_batch_files(tmp_path)) == 2, "the newest batch to be spooled")
    assert installation.stats.dropped == 5
    receiver.start()

    assert installation.force_flush(30_000)
    expected = [f"record {i:02d}" for i in (*range(5), *range(10, 15))]
    assert [r.body for r in receiver.wait_for(10, timeout=5)] == expected
    assert exporter.failures >= 1
    assert installation.stats == DeliveryStats(
        emitted=15,
        delivered=10,
        queued=0,
        dropped=5,
        rejected=0,
        failed_exports=exporter.failures,
    )
    assert _batch_files(tmp_path) == []


class _CountingGrpcExporter(OTLPLogExporter):
    """The real OTLP/gRPC exporter, counting what it is asked to send and how that ends."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probes: list[LogRecordExportResult] = []  # the results of the empty exports
        self.failures = 0  # exports holding records that failed

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = super().export(batch)
        if not batch:
            self.probes.append(result)
        elif result is not LogRecordExportResult.SUCCESS:
            self.failures += 1
        return result


# -- a record the receiver refuses ------------------------------------------------------


class _RefusingExporter(InMemoryLogRecordExporter):
    """Fails every batch holding a record whose body has "POISON", as a receiver answering
    HTTP 400 to one malformed record does; while ``down``, fails every batch. An empty
    batch succeeds unless ``down``, as with the OTLP exporters (an empty request)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.probes = 0
        self.failed: list[list[str]] = []  # the bodies of each batch it failed, in order

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:  # type: ignore[override]
        if not batch:
            self.probes += 1
        if self.down or any("POISON" in str(r.log_record.body) for r in batch):
            if batch:
                self.failed.append([str(r.log_record.body) for r in batch])
            return LogRecordExportResult.FAILURE
        return super().export(batch)

    def bodies(self) -> list[str]:
        return [str(r.log_record.body) for r in self.get_finished_logs()]


# Retries every 10-50 ms. Partial batches are formed only on a flush or after
# a failure, so that the batches are the same at every run.
_FAST_RETRY: dict[str, Any] = {"schedule_delay": 5.0, "retry_initial": 0.01, "retry_max": 0.05}


@contextmanager
def _logging_to(processor: DeliveryProcessor) -> Iterator[logging.Logger]:
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    log = logging.getLogger("app.refused")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = JobTagHandler(provider)
    log.addHandler(handler)
    try:
        yield log
    finally:
        log.removeHandler(handler)
        log.propagate = True
        processor.shutdown()


def _refused_lines(err: str) -> list[str]:
    return [line for line in _stderr_lines(err) if "the receiver refused" in line]


def test_a_record_the_receiver_refuses_is_rejected_and_reported_and_the_others_are_delivered_in_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = _RefusingExporter()
    processor = DeliveryProcessor(
        sink, max_batch_size=10, probe_after_failures=3, throttle=Throttle(), **_FAST_RETRY
    )
    poison = "POISON " + "x" * 100
    with _logging_to(processor) as log:
        for i in range(25):
            log.info("before %d", i)
        log.error(poison)  # in the third batch of ten, with before 20-24 and after 0-3
        for i in range(74):
            log.info("after %d", i)
        assert processor.force_flush(30_000)
        stats = processor.stats

    assert sink.bodies() == [f"before {i}" for i in range(25)] + [f"after {i}" for i in range(74)]
    # 3 failures of its batch, 1 of each part holding it (split at its first
    # failure: 5 records, then 2), then 3 on its own, each followed by an
    # accepted empty export (not counted: it sends no record).
    assert stats == DeliveryStats(
        emitted=100, delivered=99, queued=0, dropped=0, rejected=1, failed_exports=3 + 2 + 3
    )
    assert sink.probes == 3
    assert _refused_lines(capsys.readouterr().err) == [
        "otel-jobtags: the receiver refused a record 3 times while accepting empty requests; "
        f"rejected it: app.refused ERROR: {poison[:80]!r}"
    ]


def test_a_refused_record_logged_last_is_rejected_with_nothing_behind_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = _RefusingExporter()
    processor = DeliveryProcessor(
        sink, max_batch_size=10, probe_after_failures=3, throttle=Throttle(), **_FAST_RETRY
    )
    with _logging_to(processor) as log:
        for i in range(10):  # one full batch
            log.info("before %d", i)
        log.error("POISON last")  # alone in the batch the flush forms, nothing behind it
        assert processor.force_flush(30_000)
        stats = processor.stats

    assert sink.bodies() == [f"before {i}" for i in range(10)]
    # 3 failures before it is probed at all (a batch of one is not split), then
    # 2 more: 3 failures each followed by an accepted empty export.
    assert stats == DeliveryStats(
        emitted=11, delivered=10, queued=0, dropped=0, rejected=1, failed_exports=3 + 2
    )
    assert sink.probes == 3
    assert _refused_lines(capsys.readouterr().err) == [
        "otel-jobtags: the receiver refused a record 3 times while accepting empty requests; "
        "rejected it: app.refused ERROR: 'POISON last'"
    ]


def test_a_refused_batch_is_split_until_its_other_records_are_delivered_in_order() -> None:
    sink = _RefusingExporter()
    processor = DeliveryProcessor(
        sink, max_batch_size=100, probe_after_failures=2, throttle=Throttle(), **_FAST_RETRY
    )
    with _logging_to(processor) as log:
        for i in range(100):  # one batch
            log.info("record %d POISON" if i == 37 else "record %d", i)
        for i in range(300):
            log.info("after %d", i)
        assert processor.force_flush(30_000)
        stats = processor.stats

    assert sink.bodies() == [f"record {i}" for i in range(100) if i != 37] + [
        f"after {i}" for i in range(300)
    ]
    # The batch fails twice whole, then is halved: each failing part is the
    # half that holds record 37, down to that record alone, which fails
    # twice more (the probes) and is rejected; every other half is delivered.
    assert [(len(b), b[0]) for b in sink.failed] == [
        (100, "record 0"),
        (100, "record 0"),
        (50, "record 0"),
        (25, "record 25"),
        (13, "record 37 POISON"),
        (6, "record 37 POISON"),
        (3, "record 37 POISON"),
        (1, "record 37 POISON"),
        (1, "record 37 POISON"),
    ]
    assert stats == DeliveryStats(
        emitted=400, delivered=399, queued=0, dropped=0, rejected=1, failed_exports=len(sink.failed)
    )


def test_an_exporter_that_fails_empty_exports_never_gets_a_record_rejected() -> None:
    class FailingEmpty(_RefusingExporter):
        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:  # type: ignore[override]
            result = super().export(batch)
            return result if batch else LogRecordExportResult.FAILURE

    sink = FailingEmpty()
    processor = DeliveryProcessor(
        sink,
        max_batch_size=2,
        probe_after_failures=2,
        shutdown_timeout=0.5,
        throttle=Throttle(),
        **_FAST_RETRY,
    )
    with _logging_to(processor) as log:
        log.error("POISON")
        log.info("after")  # a full batch: sent at once
        deadline = time.monotonic() + 30
        while sink.probes < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = processor.stats

    # No evidence that the receiver accepts anything: kept, as during an outage.
    assert sink.probes >= 10
    assert stats.rejected == 0 and stats.queued == 2 and sink.bodies() == []


def test_during_an_outage_failing_batches_are_never_rejected(
    receiver: GrpcReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    exporter = _CountingGrpcExporter(endpoint=receiver.endpoint, insecure=True, timeout=0.5)
    processor = DeliveryProcessor(
        exporter, max_batch_size=20, probe_after_failures=2, throttle=Throttle(), **_FAST_RETRY
    )
    with _logging_to(processor) as log:
        for i in range(50):
            log.info("record %d", i)
        assert processor.force_flush(10_000)
        receiver.stop()
        for i in range(50, 250):
            log.info("record %d", i)
        # Long enough for the head batch to be split down to one record (after
        # 2 + 4 failures) and for that record to fail and be probed 6 times:
        # 3 times as many as would reject it, were the probes not failing too.
        deadline = time.monotonic() + 60
        while len(exporter.probes) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(exporter.probes) >= 6
        assert set(exporter.probes) == {LogRecordExportResult.FAILURE}
        assert processor.stats.rejected == 0
        receiver.start()
        for i in range(250, 300):
            log.info("record %d", i)
        assert processor.force_flush(30_000)
        stats = processor.stats

    # Nothing sent out of order, nothing twice, after the outage either.
    assert [r.body for r in receiver.wait_for(300, timeout=5)] == [f"record {i}" for i in range(300)]
    assert exporter.failures >= 6
    assert stats == DeliveryStats(
        emitted=300, delivered=300, queued=0, dropped=0, rejected=0, failed_exports=exporter.failures
    )
    assert _refused_lines(capsys.readouterr().err) == []


def test_with_a_spool_a_refused_record_is_set_aside_and_not_sent_again_by_the_next_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A process that died with two batches on disk, the first holding a
    # record the receiver refuses.
    dead = Spool(tmp_path)
    dead.write(_spooled_records("good 0", "good 1", "POISON 2", "good 3"), 400)
    dead.write(_spooled_records(*(f"good {i}" for i in range(4, 10))), 600)
    dead.close()

    sink = _RefusingExporter()
    processor = DeliveryProcessor(
        sink, spool=Spool(tmp_path), probe_after_failures=2, throttle=Throttle(), **_FAST_RETRY
    )
    assert processor.force_flush(30_000)
    stats = processor.stats
    processor.shutdown()

    assert sink.bodies() == [f"good {i}" for i in range(10) if i != 2]
    # The first spooled batch fails twice, then its half holding "POISON 2"
    # once, then that record alone twice before it is rejected.
    assert [len(b) for b in sink.failed] == [4, 4, 2, 1, 1]
    assert stats == DeliveryStats(
        emitted=10, delivered=9, queued=0, dropped=0, rejected=1, failed_exports=len(sink.failed)
    )
    assert _batch_files(tmp_path) == []
    (aside,) = [p for p in tmp_path.iterdir() if p.name.endswith(".batch.rejected")]
    assert [r.log_record.body for r in Spool(tmp_path).read(SpooledBatch(aside, 1, 100))] == ["POISON 2"]
    assert _refused_lines(capsys.readouterr().err) == [
        "otel-jobtags: the receiver refused a record 2 times while accepting empty requests; "
        f"rejected it: app INFO: 'POISON 2'; kept as {aside.name}"
    ]

    accepting = InMemoryLogRecordExporter()
    following = DeliveryProcessor(accepting, spool=Spool(tmp_path), **_FAST_RETRY)
    assert following.force_flush(10_000)
    following.shutdown()
    assert following.stats == DeliveryStats(
        emitted=0, delivered=0, queued=0, dropped=0, rejected=0, failed_exports=0
    )
    assert accepting.get_finished_logs() == ()
    assert aside.exists()


# -- stderr ---------------------------------------------------------------------------


def test_internal_warnings_reach_stderr_throttled_with_a_count_of_those_held_back() -> None:
    out = io.StringIO()
    stream = logging.StreamHandler(out)
    stream.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
    stream.setLevel(logging.WARNING)
    provider = LoggerProvider(shutdown_on_exit=False)
    handler = JobTagHandler(provider, stderr=stream, throttle_interval=0.3)
    internal = logging.getLogger("grpc._channel")
    internal.addHandler(handler)
    internal.propagate = False
    try:
        for _ in range(5):
            internal.warning("connection refused to %s", "127.0.0.1")
        internal.info("not a warning")
        time.sleep(0.35)
        internal.warning("connection refused to %s", "127.0.0.1")
    finally:
        internal.removeHandler(handler)
        internal.propagate = True
    assert out.getvalue().splitlines() == [
        "grpc._channel WARNING: connection refused to 127.0.0.1",
        "grpc._channel WARNING: connection refused to 127.0.0.1 (4 similar held back)",
    ]


# -- shutdown -------------------------------------------------------------------------


def test_shutdown_delivers_every_buffered_record_when_the_receiver_is_up(
    receiver: GrpcReceiver, registry: oj.TagRegistry
) -> None:
    installation = oj.install(registry, endpoint=receiver.endpoint)
    log = _app_logger()
    for i in range(1000):
        log.info("record %d", i)
    installation.shutdown()
    assert [r.body for r in receiver.records] == [f"record {i}" for i in range(1000)]


def test_shutdown_with_the_receiver_down_ends_within_its_timeout_and_says_what_was_lost(
    registry: oj.TagRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    installation = oj.install(registry, endpoint=f"http://127.0.0.1:{free_port()}", shutdown_timeout=1.0)
    log = _app_logger()
    for i in range(7):
        log.info("record %d", i)
    start = time.monotonic()
    installation.shutdown()
    # The timeout, the stderr report, and slack for a loaded machine; without the
    # timeout the exporter's own retries would keep it for tens of seconds.
    assert time.monotonic() - start < 1.0 + 1.5
    assert _stderr_lines(capsys.readouterr().err)[-1] == (
        "otel-jobtags: 7 log records were not delivered before exit (receiver unavailable for 1s); "
        "set a spool directory to keep them"
    )


_EXIT_SCRIPT = """
import logging, sys
import otel_jobtags as oj
oj.install(endpoint=sys.argv[1], service_name="exit")
logging.getLogger().setLevel(logging.INFO)
for i in range(int(sys.argv[2])):
    logging.getLogger("app").info("record %d", i)
"""


def test_at_exit_buffered_records_are_delivered(receiver: GrpcReceiver) -> None:
    result = run_python(_EXIT_SCRIPT, receiver.endpoint, "500")
    assert result.returncode == 0, result.stderr
    assert [r.body for r in receiver.records] == [f"record {i}" for i in range(500)]


# Registered before install(), so that (last in, first out) it runs after the
# library's exit hook: it prints how long that hook took, from the end of the
# script's own work.
_TIMED_EXIT_SCRIPT = (
    """
import atexit, time
_end = []
atexit.register(lambda: print(f"exit hook took {time.monotonic() - _end[0]:.3f} s"))
"""
    + _EXIT_SCRIPT
    + """
_end.append(time.monotonic())
"""
)


def test_at_exit_with_the_receiver_down_the_process_ends_within_5_seconds() -> None:
    result = run_python(_TIMED_EXIT_SCRIPT, f"http://127.0.0.1:{free_port()}", "3")
    assert result.returncode == 0
    (line,) = result.stdout.splitlines()
    took = float(line.removeprefix("exit hook took ").removesuffix(" s"))
    # The shutdown timeout (5 s), plus a margin for one export attempt's end.
    assert took <= 5.5, line
    assert _stderr_lines(result.stderr)[-1] == (
        "otel-jobtags: 3 log records were not delivered before exit (receiver unavailable for 5s); "
        "set a spool directory to keep them"
    )


# -- restart with a spool ---------------------------------------------------------------

_SPOOL_SCRIPT = """
import logging, os, signal, sys, time
import otel_jobtags as oj
endpoint, spool, count, prefix, end = sys.argv[1:6]
oj.install(endpoint=endpoint, service_name="spooled", spool_dir=spool, shutdown_timeout=1)
logging.getLogger().setLevel(logging.INFO)
for i in range(int(count)):
    logging.getLogger("app").info("%s %d", prefix, i)
if end == "kill":
    time.sleep(1.5)  # longer than the schedule delay: the records are on disk
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _batch_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".batch"))


def test_records_left_at_exit_are_delivered_by_the_next_process_with_the_same_spool(
    tmp_path: Path,
) -> None:
    rx = GrpcReceiver()
    spool = tmp_path / "spool"
    first = run_python(_SPOOL_SCRIPT, rx.endpoint, str(spool), "50", "first", "exit")
    assert first.returncode == 0, first.stderr
    assert _stderr_lines(first.stderr)[-1] == (
        f"otel-jobtags: 50 log records not delivered before exit are kept in {spool} for the next start"
    )
    assert _batch_files(spool) != []

    with rx:
        second = run_python(_SPOOL_SCRIPT, rx.endpoint, str(spool), "5", "second", "exit")
        assert second.returncode == 0, second.stderr
        bodies = [r.body for r in rx.wait_for(55, timeout=5)]
    assert bodies == [f"first {i}" for i in range(50)] + [f"second {i}" for i in range(5)]
    assert _batch_files(spool) == []
    assert [p.name for p in spool.iterdir()] == ["spool.key"]  # no lock, no batch left


def test_records_spooled_before_a_sigkill_are_delivered_by_the_next_process(tmp_path: Path) -> None:
    rx = GrpcReceiver()
    spool = tmp_path / "spool"
    killed = run_python(_SPOOL_SCRIPT, rx.endpoint, str(spool), "50", "killed", "kill")
    assert killed.returncode == -signal.SIGKILL

    with rx:
        second = run_python(_SPOOL_SCRIPT, rx.endpoint, str(spool), "0", "second", "exit")
        assert second.returncode == 0, second.stderr
        bodies = [r.body for r in rx.wait_for(50, timeout=5)]
    assert bodies == [f"killed {i}" for i in range(50)]
    assert _batch_files(spool) == []


def _spooled_records(*bodies: str) -> list[ReadableLogRecord]:
    resource = Resource({"service.name": "spooled", "process.pid": 1})
    scope = InstrumentationScope("app")
    return [
        ReadableLogRecord(
            log_record=LogRecord(
                timestamp=1_700_000_000_000_000_000 + i,
                severity_text="INFO",
                severity_number=SeverityNumber.INFO,
                body=body,
                attributes={"job.tag": "AUTO_REBAL", "n": i, "ratio": 0.5, "raw": b"\x00\x01", "tags": ["a"]},
            ),
            resource=resource,
            instrumentation_scope=scope,
        )
        for i, body in enumerate(bodies)
    ]


def test_corrupt_and_truncated_spool_files_are_skipped_with_a_warning(
    receiver: GrpcReceiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A process that died with four batches on disk, three of them damaged.
    dead = Spool(tmp_path)
    good = dead.write(_spooled_records("good 0", "good 1", "good 2"), 300)
    truncated = dead.write(_spooled_records("truncated"), 100)
    flipped = dead.write(_spooled_records("flipped"), 100)
    garbage = dead.write(_spooled_records("garbage"), 100)
    dead.close()
    truncated.path.write_bytes(truncated.path.read_bytes()[:-7])
    data = bytearray(flipped.path.read_bytes())
    data[-3] ^= 0xFF
    flipped.path.write_bytes(bytes(data))
    garbage.path.write_bytes(b"not a spool file" * 4)

    installation = oj.install(endpoint=receiver.endpoint, spool_dir=tmp_path)
    assert installation.force_flush(10_000)

    records = receiver.wait_for(3, timeout=5)
    assert [(r.body, r.attributes, r.resource, r.scope) for r in records] == [
        (
            f"good {i}",
            {"job.tag": "AUTO_REBAL", "n": i, "ratio": 0.5, "raw": b"\x00\x01", "tags": ["a"]},
            {"service.name": "spooled", "process.pid": 1},
            "app",
        )
        for i in range(3)
    ]
    # Every damaged file is refused when adopted, before its records are counted.
    assert installation.stats == DeliveryStats(
        emitted=3, delivered=3, queued=0, dropped=0, rejected=0, failed_exports=0
    )
    err = _stderr_lines(capsys.readouterr().err)
    assert len(err) == 3
    assert re.fullmatch(
        r"otel-jobtags: skipping spool file .*-0000000002\.batch: .*-0000000002\.batch: truncated "
        r"\(\d+ bytes, expected \d+\); kept as .*-0000000002\.batch\.corrupt",
        err[0],
    )
    assert re.fullmatch(
        r"otel-jobtags: skipping spool file .*\.batch: .*\.batch: checksum mismatch \(damaged, or not "
        r"written by this spool: its HMAC does not match spool\.key\); kept as .*\.corrupt",
        err[1],
    )
    assert re.fullmatch(
        r"otel-jobtags: skipping spool file .*-0000000004\.batch: .*-0000000004\.batch: not a spool batch "
        r"\(bad magic\); kept as .*\.corrupt",
        err[2],
    )
    assert good.path.name not in os.listdir(tmp_path)
    assert len([n for n in os.listdir(tmp_path) if n.endswith(".corrupt")]) == 3
    assert _batch_files(tmp_path) == []


# -- fork -----------------------------------------------------------------------------


def _wait_child(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish in {timeout}s (deadlock?)")


def test_a_forked_child_exports_its_own_records_as_its_own_process(
    http_receiver: HttpReceiver, registry: oj.TagRegistry
) -> None:
    receiver = http_receiver
    # Only our handler on this logger: the test is about our locks. (A stdlib
    # stream handler written to by another thread during fork can hang the
    # child on the stream's own buffer lock, whoever installed it.)
    log = logging.getLogger("forking")
    log.propagate = False
    log.setLevel(logging.INFO)
    installation = oj.install(
        registry, endpoint=receiver.base_url, protocol="http/protobuf", service_name="forking", logger=log
    )
    for i in range(100):
        log.info("parent %d", i)  # still queued at the fork
    # Another thread logging hard while the process forks: nothing may deadlock.
    stop = threading.Event()

    def chatter() -> None:
        while not stop.is_set():
            log.info("chatter")

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        time.sleep(0.05)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                for i in range(10):
                    log.info("child %d", i)
                oj.uninstall()
                code = 0
            finally:
                os._exit(code)
    finally:
        stop.set()
        thread.join()
        log.propagate = True
    assert _wait_child(pid, timeout=20) == 0
    assert installation.force_flush(30_000)

    records = [r for r in receiver.records if r.body != "chatter"]
    parent_resource = dict(installation.resource.attributes)
    parent = [r for r in records if r.body.startswith("parent ")]
    child = [r for r in records if r.body.startswith("child ")]
    assert [r.body for r in parent] == [f"parent {i}" for i in range(100)]  # once each, by the parent
    assert {r.resource["process.pid"] for r in parent} == {os.getpid()}
    assert [r.body for r in child] == [f"child {i}" for i in range(10)]
    child_resource = child[0].resource
    assert child_resource["process.pid"] == pid
    assert child_resource["service.instance.id"] != parent_resource["service.instance.id"]
    assert {k: v for k, v in child_resource.items() if k not in ("process.pid", "service.instance.id")} == {
        k: v for k, v in parent_resource.items() if k not in ("process.pid", "service.instance.id")
    }


def _child_job(count: int) -> None:
    log = logging.getLogger("app.jobs")
    with oj.job_context("price_cache"):
        for i in range(count):
            log.info("mp child %d", i)
    oj.uninstall()


def test_multiprocessing_fork_children_export_their_records(
    http_receiver: HttpReceiver, registry: oj.TagRegistry
) -> None:
    receiver = http_receiver
    installation = oj.install(
        registry, endpoint=receiver.base_url, protocol="http/protobuf", service_name="pool"
    )
    _app_logger().info("parent")
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_child_job, args=(20,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(20)
        assert child.exitcode == 0
    assert installation.force_flush(10_000)

    records = receiver.wait_for(41, timeout=5)
    by_pid: dict[int, list[ReceivedLog]] = {}
    for r in records:
        by_pid.setdefault(r.resource["process.pid"], []).append(r)
    assert sorted(by_pid) == sorted([os.getpid(), *(c.pid for c in children)])
    assert [r.body for r in by_pid[os.getpid()]] == ["parent"]
    for child in children:
        assert child.pid is not None
        assert [r.body for r in by_pid[child.pid]] == [f"[PRICE_CACHE] mp child {i}" for i in range(20)]
    assert len({r.resource["service.instance.id"] for r in records}) == 3


# -- what records look like --------------------------------------------------------------


def test_records_keep_body_severity_attributes_exception_and_resource(
    receiver: GrpcReceiver, registry: oj.TagRegistry
) -> None:
    installation = oj.install(
        registry,
        endpoint=receiver.endpoint,
        service_name="shape",
        resource_attributes={"deployment.environment": "test"},
    )
    log = _app_logger()
    with oj.job_context("auto_rebalance", run_id="run-1"):
        log.info("started %s", "now", extra={"items": 5})
        try:
            raise ValueError("bad price")
        except ValueError:
            log.exception("failed")
    log.warning("outside")
    assert installation.force_flush(10_000)

    started, failed, outside = receiver.wait_for(3, timeout=5)
    assert (started.body, started.severity_text, started.severity_number, started.scope) == (
        "[AUTO_REBAL] started now",
        "INFO",
        9,
        "app.jobs",
    )
    assert started.attributes == {
        "job.tag": "AUTO_REBAL",
        "job.id": "auto_rebalance",
        "job.run_id": "run-1",
        "items": 5,
    }
    assert (failed.body, failed.severity_text, failed.severity_number) == ("[AUTO_REBAL] failed", "ERROR", 17)
    stacktrace = failed.attributes.pop("exception.stacktrace")
    assert (
        stacktrace.startswith("Traceback (most recent call last):") and "ValueError: bad price" in stacktrace
    )
    assert failed.attributes == {
        "job.tag": "AUTO_REBAL",
        "job.id": "auto_rebalance",
        "job.run_id": "run-1",
        "exception.type": "ValueError",
        "exception.message": "bad price",
    }
    assert (outside.body, outside.severity_text, outside.severity_number, outside.attributes) == (
        "outside",
        "WARN",
        13,
        {},
    )
    assert started.resource == {**dict(installation.resource.attributes)}
    assert started.resource["service.name"] == "shape"
    assert started.resource["deployment.environment"] == "test"
    assert started.resource["process.pid"] == os.getpid()


def _exported(handler_factory: type[logging.Handler] | None, records: list[logging.LogRecord]) -> list[Any]:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler: logging.Handler = (
        JobTagHandler(provider) if handler_factory is None else handler_factory(logger_provider=provider)  # type: ignore[call-arg]
    )
    for record in records:
        handler.handle(logging.makeLogRecord(dict(record.__dict__)))
    return [
        (
            r.log_record.body,
            r.log_record.severity_text,
            r.log_record.severity_number,
            dict(r.log_record.attributes or {}),
            r.log_record.event_name,
            r.instrumentation_scope.name if r.instrumentation_scope else None,
        )
        for r in exporter.get_finished_logs()
    ]


def test_records_translate_exactly_as_the_contrib_handler_translates_them(registry: oj.TagRegistry) -> None:
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    log = logging.getLogger("app.shape")
    use_registry(registry)
    try:
        records: list[logging.LogRecord] = []
        filt = oj.JobTagFilter(registry)

        def add(record: logging.LogRecord) -> None:
            filt.filter(record)  # what JobTagHandler's own filter does first, in the job's context
            records.append(record)

        with oj.job_context("auto_rebalance"):
            add(log.makeRecord("app.shape", logging.INFO, "f.py", 1, "plain %d", (1,), None))
            add(
                log.makeRecord(
                    "app.shape", logging.WARNING, "f.py", 2, "with extra", (), None, extra={"items": 3}
                )
            )
        try:
            raise KeyError("missing")
        except KeyError:
            add(log.makeRecord("app.shape", logging.ERROR, "f.py", 3, "boom", (), sys.exc_info()))
        add(
            log.makeRecord(
                "app.shape", logging.CRITICAL, "f.py", 4, "event", (), None, extra={"event.name": "e1"}
            )
        )
        add(log.makeRecord("app.shape", 5, "f.py", 5, "[PRICE_CACHE] by prefix", (), None))
    finally:
        use_registry(None)
    assert _exported(None, records) == _exported(LoggingHandler, records)
    assert [body for body, *_ in _exported(None, records)] == [
        "[AUTO_REBAL] plain 1",
        "[AUTO_REBAL] with extra",
        "boom",
        "event",
        "[PRICE_CACHE] by prefix",
    ]


# -- configuration --------------------------------------------------------------------


def test_delivery_settings_resolve_from_arguments_then_environment_then_defaults(tmp_path: Path) -> None:
    assert resolve_delivery_settings(environ={}) == DeliverySettings(
        max_queue_records=250_000,
        max_queue_bytes=256 * 1024 * 1024,
        shutdown_timeout=5.0,
        spool_dir=None,
        export_timeout=2.0,
    )
    env = {
        "OTEL_JOBTAGS_MAX_QUEUE_RECORDS": "1000",
        "OTEL_JOBTAGS_MAX_QUEUE_BYTES": "1_000_000",
        "OTEL_JOBTAGS_SHUTDOWN_TIMEOUT": "2.5",
        "OTEL_JOBTAGS_SPOOL_DIR": str(tmp_path),
        "OTEL_JOBTAGS_EXPORT_TIMEOUT": "1",
    }
    assert resolve_delivery_settings(environ=env) == DeliverySettings(1000, 1_000_000, 2.5, tmp_path, 1.0)
    assert resolve_delivery_settings(max_queue_records=7, shutdown_timeout=1, environ=env) == (
        DeliverySettings(7, 1_000_000, 1.0, tmp_path, 1.0)
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OTEL_JOBTAGS_MAX_QUEUE_RECORDS": "0"},
            "Invalid OTEL_JOBTAGS_MAX_QUEUE_RECORDS='0': use a positive whole number of records, e.g. 250000",
        ),
        (
            {"OTEL_JOBTAGS_MAX_QUEUE_RECORDS": "lots"},
            "Invalid OTEL_JOBTAGS_MAX_QUEUE_RECORDS='lots': use a positive whole number of records, "
            "e.g. 250000",
        ),
        (
            {"OTEL_JOBTAGS_MAX_QUEUE_BYTES": "64MB"},
            "Invalid OTEL_JOBTAGS_MAX_QUEUE_BYTES='64MB': use a positive whole number of bytes, "
            "e.g. 268435456",
        ),
        (
            {"OTEL_JOBTAGS_SHUTDOWN_TIMEOUT": "soon"},
            "Invalid OTEL_JOBTAGS_SHUTDOWN_TIMEOUT='soon': use a positive number of seconds, e.g. 5",
        ),
        (
            {"OTEL_JOBTAGS_EXPORT_TIMEOUT": "-1"},
            "Invalid OTEL_JOBTAGS_EXPORT_TIMEOUT='-1': use a positive number of seconds, e.g. 2",
        ),
    ],
)
def test_invalid_environment_values_are_rejected_naming_variable_and_value(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(oj.ConfigError, match=rf"^{re.escape(message)}$"):
        resolve_delivery_settings(environ=env)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"max_queue_records": 0},
            "Invalid max_queue_records=0: use a positive whole number of records, e.g. 250000",
        ),
        (
            {"max_queue_bytes": 1.5},
            "Invalid max_queue_bytes=1.5: use a positive whole number of bytes, e.g. 268435456",
        ),
        ({"shutdown_timeout": 0}, "Invalid shutdown_timeout=0: use a positive number of seconds, e.g. 5"),
    ],
)
def test_invalid_arguments_are_rejected_naming_argument_and_value(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(oj.ConfigError, match=rf"^{re.escape(message)}$"):
        oj.install(exporter=None, endpoint="http://127.0.0.1:1", **kwargs)  # type: ignore[arg-type]


def test_a_spool_dir_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "spool"
    file.write_text("")
    with pytest.raises(
        oj.ConfigError,
        match=rf"^Invalid OTEL_JOBTAGS_SPOOL_DIR={re.escape(repr(str(file)))}: "
        r"it is a file; give a directory$",
    ):
        resolve_delivery_settings(environ={"OTEL_JOBTAGS_SPOOL_DIR": str(file)})


def test_a_spool_dir_that_cannot_be_created_is_rejected_at_install(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    spool = tmp_path / "file" / "spool"
    with pytest.raises(
        oj.ConfigError,
        match=rf"^Cannot use the spool directory {re.escape(repr(str(spool)))}: Not a directory; "
        r"give a directory this process can create and write$",
    ):
        oj.install(exporter=None, endpoint="http://127.0.0.1:1", spool_dir=spool)
