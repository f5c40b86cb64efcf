"""The reader's cost grows with a line's length, never with its square, whatever the format.

Times are compared only with each other, within one test: reading a log whose
long lines are eight times longer may cost about eight times more CPU time (the
file is read, the tag searched), not sixty-four times. The bound, 24, is three
times the linear ratio and well under the quadratic one. CPU time of this
thread (neither other processes on the machine nor other threads of the test
process count), the least of five tries, the two sizes measured in turn so
that a busy moment weighs on both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_jobtags import JobTagFormatter, TagRegistry
from otel_jobtags.logfiles import LogFilter, read_job_logs

JOBS = TagRegistry()
AUTO_REBAL = JOBS.define("AUTO_REBAL", "auto_rebalance", "rebalance", "hourly at minute 17")

CUSTOM = "%(asctime)s %(name)s %(levelname)s: %(message)s"
SHORT, LONG = 10_000, 80_000  # bytes of a long line; LONG = 8 * SHORT
GROWTH = 24  # linear: ~8 (less with fixed costs); quadratic: ~64
TRIES = 5
NOISE_FLOOR_S = 5e-3
"""The short reading's cost is taken as at least this: below it the timer's resolution dominates."""


def cpu_times(*works: Callable[[], object]) -> list[float]:
    """The least CPU time of this thread each of ``works`` took over :data:`TRIES` rounds."""
    best = [float("inf")] * len(works)
    for _ in range(TRIES):
        for i, work in enumerate(works):
            start = time.thread_time()
            work()
            best[i] = min(best[i], time.thread_time() - start)
    return best


def record_line(fmt: str, message: str) -> str:
    record = logging.makeLogRecord(
        {
            "name": "app.jobs",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": message,
            "threadName": "Thread-1 (work)",
            "funcName": "refresh",
            "lineno": 42,
            "job.tag": AUTO_REBAL.name,
        }
    )
    return JobTagFormatter(fmt).format(record)


def write_log(path: Path, fmt: str, head: str, tail: str, size: int) -> None:
    """Two records of the job around long lines that look like a header, then do not match one."""
    filler = tail * (size // len(tail) + 1)
    lines = [
        record_line(fmt, "[AUTO_REBAL] first"),
        head + filler[:size],
        head + filler[:size] + " [AUTO_REBAL] late tag",
        filler[:size] + "[AUTO_REBAL] x",
        record_line(fmt, "[AUTO_REBAL] last"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def reading(path: Path, fmt: str) -> Callable[[], None]:
    """Every way of reading the log: a job's records, the filter, the last record."""

    def work() -> None:
        messages = [e.message for e in read_job_logs(path, "AUTO_REBAL", registry=JOBS, line_format=fmt)]
        assert messages[0] == "first" and messages[-1] == "last"
        LogFilter("AUTO_REBAL", registry=JOBS, line_format=fmt).write(path, BytesIO())
        LogFilter(None, registry=JOBS, line_format=fmt).last(path, 1)

    return work


def assert_linear(tmp_path: Path, fmt: str, head: str, tail: str) -> None:
    short, long = tmp_path / "short.log", tmp_path / "long.log"
    write_log(short, fmt, head, tail, SHORT)
    write_log(long, fmt, head, tail, LONG)
    reading(short, fmt)()  # warm up: imports, compiled patterns
    short_cost, long_cost = cpu_times(reading(short, fmt), reading(long, fmt))
    ratio = long_cost / max(short_cost, NOISE_FLOOR_S)
    assert ratio < GROWTH, f"8x longer lines cost {ratio:.1f}x the CPU time with {fmt!r}"


def test_an_80_kb_line_in_the_common_custom_format_is_read_in_linear_time(tmp_path: Path) -> None:
    # Once 4.8 s: a lazy %(name)s followed by the level tried every split of the line.
    head = record_line(CUSTOM, "x")[:24]  # the asctime and its space
    assert_linear(tmp_path, CUSTOM, head, "a ")
    path = tmp_path / "app.log"
    write_log(path, CUSTOM, head, "a ", 80_000)
    entries = read_job_logs(path, "auto_rebalance", registry=JOBS, line_format=CUSTOM)
    assert [(e.level, e.message, len(e.continuation)) for e in entries] == [
        ("INFO", "first", 3),
        ("INFO", "last", 0),
    ]


FIELDS = [
    "%(asctime)s",
    "%(name)s",
    "%(name)10s",
    "%(levelname)s",
    "%(levelname)-8s",
    "%(threadName)s",
    "%(funcName)s",
    "%(lineno)d",
    "%(msecs)03d",
    "%(job.tag)s",
]
SEPARATORS = [" ", ": ", " - ", " | ", " [", "] "]
TOKENS = ["a", " ", ":", ": ", "-", " - ", "[", "]", "|", "0", "INFO", "app.jobs", ",", "\t"]


@st.composite
def formats(draw: st.DrawFn) -> str:
    pieces = draw(
        st.lists(st.tuples(st.sampled_from(FIELDS), st.sampled_from(SEPARATORS)), min_size=1, max_size=4)
    )
    return "".join(field + sep for field, sep in pieces) + "%(message)s"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fmt=formats(),
    cut=st.floats(min_value=0, max_value=1),
    tail=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6).map("".join),
)
def test_every_format_reads_adversarial_lines_in_linear_time(
    tmp_path_factory: pytest.TempPathFactory, fmt: str, cut: float, tail: str
) -> None:
    full = record_line(fmt, "x")[:-1]  # the whole header, message left out
    head = full[: int(len(full) * cut)]
    assert_linear(tmp_path_factory.mktemp("fmt"), fmt, head, tail)
