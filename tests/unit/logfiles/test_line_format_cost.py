"""The reader's cost grows with a line's length, never with its square, whatever the format.

Times are compared only with each other, within one test: reading a log whose
long lines are four times longer may cost about four times more CPU time (the
file is read, the tag searched), not sixteen times. CPU time of this process,
the least of three tries, so that other processes on the machine do not count.
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
SHORT, LONG = 20_000, 80_000  # bytes of a long line; LONG = 4 * SHORT
GROWTH = 8  # linear: ~4 (less with fixed costs); quadratic: ~16


def cpu_time(work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
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


def read_cost(path: Path, fmt: str) -> float:
    def work() -> None:
        messages = [e.message for e in read_job_logs(path, "AUTO_REBAL", registry=JOBS, line_format=fmt)]
        assert messages[0] == "first" and messages[-1] == "last"
        LogFilter("AUTO_REBAL", registry=JOBS, line_format=fmt).write(path, BytesIO())
        LogFilter(None, registry=JOBS, line_format=fmt).last(path, 1)

    return cpu_time(work)


def assert_linear(tmp_path: Path, fmt: str, head: str, tail: str) -> None:
    short, long = tmp_path / "short.log", tmp_path / "long.log"
    write_log(short, fmt, head, tail, SHORT)
    write_log(long, fmt, head, tail, LONG)
    read_cost(short, fmt)  # warm up: imports, compiled patterns
    ratio = read_cost(long, fmt) / max(read_cost(short, fmt), 5e-3)  # a floor for timer noise
    assert ratio < GROWTH, f"4x longer lines cost {ratio:.1f}x the CPU time with {fmt!r}"


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
