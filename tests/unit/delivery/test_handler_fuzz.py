"""Fuzzing the log call with Hypothesis: any message, arguments, ``extra``,
exception, lone surrogates, huge values, an argument whose ``str()`` raises or
logs. No exception reaches the application, and no record vanishes uncounted:
every record that reached the handler is delivered (or counted dropped).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

import otel_jobtags as oj
from otel_jobtags.configure import Installation

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class Raising:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


class Logging:
    def __str__(self) -> str:
        logging.getLogger("app.fuzz.inner").warning("logged from __str__")  # reaches the handler too
        return "logging"


surrogates = st.sampled_from(["\udce9", "\ud800", "\udfff"])
texts = st.lists(st.one_of(st.text(max_size=20), surrogates), max_size=6).map("".join)
huge = st.sampled_from(["x" * 300_000, "\udce9" * 50_000]).map(str)
values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        texts,
        st.binary(max_size=20),
        huge,
        st.builds(Raising),
        st.builds(Logging),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=6,
)
messages = st.one_of(texts, st.sampled_from(["%s", "%d items", "%(key)s", "%s %s", "100%", "{}"]), huge)
extras = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in _RESERVED), values, max_size=3
)


class Counter(logging.Filter):
    """Counts the records that reach the handler."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.count += 1
        return True


@pytest.fixture(scope="module")
def pipeline() -> Iterator[tuple[Installation, InMemoryLogRecordExporter, Counter]]:
    fuzz = logging.getLogger("app.fuzz")
    fuzz.propagate = False
    exporter = InMemoryLogRecordExporter()
    installation = oj.install(exporter=exporter, logger=fuzz, level="DEBUG", max_queue_bytes=64 * 1024 * 1024)
    counter = Counter()
    installation.handler.addFilter(counter)
    yield installation, exporter, counter
    oj.uninstall()
    fuzz.propagate = True


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    message=messages,
    args=st.one_of(
        st.just(()), st.lists(values, max_size=3).map(tuple), st.dictionaries(st.just("key"), values)
    ),
    extra=extras,
    raise_first=st.booleans(),
)
def test_any_log_call_returns_and_every_record_is_delivered_or_counted(
    pipeline: tuple[Installation, InMemoryLogRecordExporter, Counter],
    message: str,
    args: Any,
    extra: dict[str, Any],
    raise_first: bool,
) -> None:
    installation, exporter, counter = pipeline
    log = logging.getLogger("app.fuzz")
    before = counter.count
    exporter.clear()
    call_args = (args,) if isinstance(args, dict) and args else args
    exc_info = None
    if raise_first:
        try:
            raise ValueError(message)
        except ValueError:
            exc_info = sys.exc_info()
    level = logging.ERROR if raise_first else logging.WARNING
    record = log.makeRecord(log.name, level, "fuzz.py", 1, message, call_args, exc_info, extra=extra)
    # Straight to our handler: pytest's own capturing handler (which it puts
    # on every logger) raises on a message that cannot be formatted.
    installation.handler.handle(record)
    assert installation.force_flush(60_000)

    stats = installation.stats
    assert stats.emitted == counter.count
    assert stats.emitted == stats.delivered + stats.queued + stats.dropped + stats.rejected
    assert (stats.queued, stats.dropped, stats.rejected) == (0, 0, 0)
    exported = exporter.get_finished_logs()
    assert len(exported) == counter.count - before
    encode_logs(exported).SerializeToString()  # what an OTLP exporter sends: encodable
