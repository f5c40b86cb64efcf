"""The delivery processor with in-memory exporters: exceptions, flush loops,
re-installation, and logging from inside the logging machinery.

Waits are bounded and generous; nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult

import otel_jobtags as oj


class FakeReceiver(InMemoryLogRecordExporter):
    """Keeps what it is sent; while ``down`` fails retryably (as a receiver that is down);
    raises ``raises`` times first; records every attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.raises = 0
        self.attempts: list[int] = []
        self.log_while_exporting: logging.Logger | None = None

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:  # type: ignore[override]
        self.attempts.append(len(batch))
        if self.log_while_exporting is not None:
            self.log_while_exporting.warning("exporting %d records", len(batch))
        if self.raises:
            self.raises -= 1
            raise ConnectionResetError("connection reset by peer")
        if self.down:
            return LogRecordExportResult.FAILURE
        return super().export(batch)

    def export_classified(self, batch: Sequence[ReadableLogRecord]) -> Any:
        from otel_jobtags.delivery.outcome import ExportResult, Outcome

        result = self.export(batch)
        return ExportResult(Outcome.SUCCESS if result is LogRecordExportResult.SUCCESS else Outcome.RETRYABLE)

    def bodies(self) -> list[str]:
        return [str(r.log_record.body) for r in self.get_finished_logs()]


@pytest.fixture
def log() -> Iterator[logging.Logger]:
    logger = logging.getLogger("app.processor")
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(logging.NOTSET)


@pytest.mark.slow  # waits through real retry backoff (seconds)
def test_an_exception_raised_by_the_exporter_is_retried_and_nothing_is_discarded(log: logging.Logger) -> None:
    receiver = FakeReceiver()
    receiver.raises = 3
    installation = oj.install(exporter=receiver)
    for i in range(600):
        log.info("record %d", i)
    assert installation.force_flush(60_000)

    assert receiver.bodies() == [f"record {i}" for i in range(600)]
    stats = installation.stats
    assert (stats.emitted, stats.delivered, stats.rejected, stats.dropped) == (600, 600, 0, 0)
    assert stats.failed_exports == 3


@pytest.mark.slow  # waits through real retry backoff (seconds)
def test_a_flush_loop_during_an_outage_neither_defeats_the_backoff_nor_fragments_the_backlog(
    log: logging.Logger,
) -> None:
    receiver = FakeReceiver()
    receiver.down = True
    installation = oj.install(exporter=receiver)
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < 3.0:
        log.info("record %d", sent)
        sent += 1
        installation.force_flush(10)  # as an application flushing after every record would
    attempts_during_outage = len(receiver.attempts)
    receiver.down = False
    assert installation.force_flush(60_000)

    # The backoff (0.5 s, doubling) allows a handful of attempts in 3 s, not one per flush.
    assert attempts_during_outage <= 8
    assert receiver.bodies() == [f"record {i}" for i in range(sent)]
    # After the outage the backlog goes in full batches (512), not a request per record.
    delivered_requests = len(receiver.attempts) - attempts_during_outage
    assert delivered_requests <= sent // 512 + 3


def test_reinstalling_while_logging_loses_nothing_and_exports_nothing_twice(log: logging.Logger) -> None:
    receivers = [FakeReceiver() for _ in range(4)]
    installations = [oj.install(exporter=receivers[0])]
    stop = threading.Event()
    logged = 0

    def chatter() -> None:
        nonlocal logged
        while not stop.is_set():
            log.info("record %d", logged)
            logged += 1

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        for receiver in receivers[1:]:
            time.sleep(0.1)
            installations.append(oj.install(exporter=receiver))
        time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
    assert installations[-1].force_flush(60_000)
    oj.uninstall()

    bodies = [body for receiver in receivers for body in receiver.bodies()]
    assert sorted(bodies, key=lambda b: int(b.split()[1])) == [f"record {i}" for i in range(logged)]
    stats = [i.stats for i in installations]
    assert sum(s.emitted for s in stats) == logged
    assert sum(s.delivered for s in stats) == logged
    assert sum(s.dropped + s.rejected + s.queued for s in stats) == 0


class _Loud:
    """An argument whose ``str()`` logs."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log

    def __str__(self) -> str:
        self.log.info("inside __str__")
        return "loud"


def test_logging_from_a_filter_a_formatter_an_argument_or_the_exporter_never_deadlocks(
    log: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver = FakeReceiver()
    receiver.log_while_exporting = logging.getLogger("app.exporter")
    installation = oj.install(exporter=receiver)
    handler = installation.handler
    inner = logging.getLogger("app.inner")
    inner.setLevel(logging.INFO)

    class LoggingFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.name != "app.inner":
                inner.info("from a filter")
            return True

    class LoggingFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            if record.name != "app.inner":
                inner.info("from a formatter")
            return super().format(record)

    handler.addFilter(LoggingFilter())
    handler.setFormatter(LoggingFormatter("%(message)s"))
    done = threading.Event()

    def work() -> None:
        for i in range(50):
            log.info("record %d %s", i, _Loud(inner))
        done.set()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert done.wait(60), "a log call deadlocked"
    assert installation.force_flush(60_000)

    bodies = receiver.bodies()
    assert [b for b in bodies if b.startswith("record")] == [f"record {i} loud" for i in range(50)]
    assert sorted({b for b in bodies if not b.startswith("record")}) == [
        "from a filter",
        "from a formatter",
        "inside __str__",
    ]
    # What the exporter logs while exporting goes to stderr, never into the stream.
    assert not any("exporting" in b for b in bodies)
    assert "otel-jobtags: app.exporter WARNING: exporting" in capsys.readouterr().err
    inner.setLevel(logging.NOTSET)
    stats = installation.stats
    assert stats.emitted == stats.delivered == len(bodies)


def test_counters_add_up_for_records_logged_after_shutdown(log: logging.Logger) -> None:
    receiver = FakeReceiver()
    installation = oj.install(exporter=receiver)
    log.info("before")
    installation.processor.shutdown()
    installation.handler.handle(log.makeRecord(log.name, logging.INFO, "f", 1, "after", (), None))
    stats: Any = installation.stats
    assert (stats.emitted, stats.delivered, stats.dropped, stats.queued) == (2, 1, 1, 0)


def test_a_record_carries_the_trace_context_of_the_log_call_not_of_the_export_thread(
    log: logging.Logger,
) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    receiver = FakeReceiver()
    installation = oj.install(exporter=receiver)
    span = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1)))
    with trace.use_span(span):
        log.info("inside a span")
    log.info("outside")
    assert installation.force_flush(60_000)

    inside, outside = (r.log_record for r in receiver.get_finished_logs())
    assert (inside.trace_id, inside.span_id, int(inside.trace_flags or 0)) == (0x1234, 0x5678, 1)
    assert (outside.trace_id or 0, outside.span_id or 0) == (0, 0)
