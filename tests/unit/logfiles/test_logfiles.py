"""Reading a job's records back from the text log: otel_jobtags.logfiles."""

from __future__ import annotations

import gzip
import io
import logging
import logging.handlers
import random
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from otel_jobtags import JobTag, JobTagFilter, TagRegistry, UnknownJobError
from otel_jobtags.errors import ConfigError, JobTagsError
from otel_jobtags.logfiles import (
    LineFormat,
    LogEntry,
    LogFilter,
    _filter,
    _reading,
    follow_job_logs,
    parse_level,
    parse_time,
    read_job_logs,
    rotated_files,
)

JOBS = TagRegistry()
AUTO_REBAL = JOBS.define("AUTO_REBAL", "auto_rebalance", "rebalance", "hourly at minute 17")
PRICE_CACHE = JOBS.define("PRICE_CACHE", "price_cache", "refresh prices", "every 5 s")
TOKEN_REFRESH = JOBS.define(
    "TOKEN_REFRESH", "securities_token_refresh", "refresh token", "hourly at minute 0"
)

UNKNOWN = "Unknown job 'nope': known jobs are auto_rebalance, price_cache, securities_token_refresh"

LOG = """\
2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] 🔄 job started
2025-10-23 14:30:45,200 DEBUG: [PRICE_CACHE] refreshed 12 prices
2025-10-23 14:30:46,234 DEBUG: [AUTO_REBAL] processed: 5 items
2025-10-23 14:30:46,500 INFO: Running job "auto_rebalance" ([AUTO_REBAL] in the middle is not a prefix)
2025-10-23 14:30:47,345 ERROR: [AUTO_REBAL] ❌ failed: upstream answered 503
Traceback (most recent call last):
  File "/srv/app/jobs.py", line 94, in job
    raise UpstreamError("503")
app.UpstreamError: 503
2025-10-23 14:30:48,000 WARNING: [PRICE_CACHE] slow upstream
[AUTO_REBAL] a continuation line that looks like a tag
2025-10-23 14:30:49,456 INFO: [AUTO_REBAL] ✅ done - processed: 5 items
2025-10-23 14:30:50,000 INFO: [NOT_A_JOB] an unregistered bracket word
2025-10-23 14:30:51,000 CRITICAL: [TOKEN_REFRESH] token endpoint down
  second line of a multi-line message

  after an empty line
"""


def entry(time: str, level: str, tag: JobTag, message: str, *cont: str, source: str = "") -> LogEntry:
    return LogEntry(
        time=datetime.strptime(time, "%Y-%m-%d %H:%M:%S,%f"),
        level=level,
        tag=tag.name,
        message=message,
        continuation=cont,
        job_id=tag.job_id,
        source=source,
    )


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    path.write_text(LOG, encoding="utf-8")
    return path


def test_a_job_s_records_come_back_whole_with_their_continuation_lines(log: Path) -> None:
    assert read_job_logs(log, "auto_rebalance", registry=JOBS) == [
        entry("2025-10-23 14:30:45,123", "INFO", AUTO_REBAL, "🔄 job started", source=str(log)),
        entry("2025-10-23 14:30:46,234", "DEBUG", AUTO_REBAL, "processed: 5 items", source=str(log)),
        entry(
            "2025-10-23 14:30:47,345",
            "ERROR",
            AUTO_REBAL,
            "❌ failed: upstream answered 503",
            "Traceback (most recent call last):",
            '  File "/srv/app/jobs.py", line 94, in job',
            '    raise UpstreamError("503")',
            "app.UpstreamError: 503",
            source=str(log),
        ),
        entry("2025-10-23 14:30:49,456", "INFO", AUTO_REBAL, "✅ done - processed: 5 items", source=str(log)),
    ]


def test_a_multi_line_message_keeps_its_empty_lines(log: Path) -> None:
    [record] = read_job_logs(log, "TOKEN_REFRESH", registry=JOBS)
    assert record.continuation == ("  second line of a multi-line message", "", "  after an empty line")


@pytest.mark.parametrize("job", ["auto_rebalance", "AUTO_REBAL", "[AUTO_REBAL]", AUTO_REBAL])
def test_a_job_id_a_tag_name_and_a_tag_select_the_same_records(log: Path, job: str | JobTag) -> None:
    assert [e.message for e in read_job_logs(log, job, registry=JOBS)] == [
        "🔄 job started",
        "processed: 5 items",
        "❌ failed: upstream answered 503",
        "✅ done - processed: 5 items",
    ]


def test_an_unknown_job_is_refused_before_any_file_is_opened(tmp_path: Path) -> None:
    with pytest.raises(UnknownJobError, match=f"^{re.escape(UNKNOWN)}$"):
        read_job_logs(tmp_path / "does-not-exist.log", "nope", registry=JOBS)


def test_a_tag_that_is_not_at_the_start_of_a_message_selects_nothing(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text(
        "2025-10-23 14:30:46,500 INFO: Running job ([AUTO_REBAL] mentioned)\n"
        "2025-10-23 14:30:47,000 ERROR: [PRICE_CACHE] failed\n"
        "Traceback (most recent call last):\n"
        "ValueError: [AUTO_REBAL] in an exception message\n"
        "[AUTO_REBAL] at the start of a continuation line\n",
        encoding="utf-8",
    )
    assert read_job_logs(path, "AUTO_REBAL", registry=JOBS) == []


def test_without_a_job_every_registered_job_is_selected_and_unregistered_words_are_not(log: Path) -> None:
    assert [(e.tag, e.message) for e in read_job_logs(log, None, registry=JOBS)] == [
        ("AUTO_REBAL", "🔄 job started"),
        ("PRICE_CACHE", "refreshed 12 prices"),
        ("AUTO_REBAL", "processed: 5 items"),
        ("AUTO_REBAL", "❌ failed: upstream answered 503"),
        ("PRICE_CACHE", "slow upstream"),
        ("AUTO_REBAL", "✅ done - processed: 5 items"),
        ("TOKEN_REFRESH", "token endpoint down"),
    ]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("debug", ["INFO", "DEBUG", "ERROR", "INFO"]),
        ("INFO", ["INFO", "ERROR", "INFO"]),
        ("warn", ["ERROR"]),
        (logging.ERROR, ["ERROR"]),
        ("41", []),
    ],
)
def test_a_minimum_level_keeps_that_level_and_above(log: Path, level: str | int, expected: list[str]) -> None:
    assert [e.level for e in read_job_logs(log, "AUTO_REBAL", registry=JOBS, level=level)] == expected


def test_custom_level_names_compare_by_their_number(tmp_path: Path) -> None:
    logging.addLevelName(35, "NOTICE")
    path = tmp_path / "app.log"
    path.write_text(
        "2025-10-23 14:30:45,123 NOTICE: [AUTO_REBAL] notice\n"
        "2025-10-23 14:30:45,124 Level 25: [AUTO_REBAL] unnamed level 25\n"
        "2025-10-23 14:30:45,125 INFO: [AUTO_REBAL] info\n",
        encoding="utf-8",
    )
    assert [e.message for e in read_job_logs(path, "AUTO_REBAL", registry=JOBS, level=21)] == [
        "notice",
        "unnamed level 25",
    ]


def test_since_is_inclusive_and_until_exclusive_to_the_millisecond(log: Path) -> None:
    records = read_job_logs(
        log,
        "AUTO_REBAL",
        registry=JOBS,
        since=datetime(2025, 10, 23, 14, 30, 46, 234000),
        until=datetime(2025, 10, 23, 14, 30, 49, 456000),
    )
    assert [e.message for e in records] == ["processed: 5 items", "❌ failed: upstream answered 503"]


def test_a_time_inside_a_millisecond_excludes_the_record_written_in_it(log: Path) -> None:
    records = read_job_logs(
        log, "AUTO_REBAL", registry=JOBS, since=datetime(2025, 10, 23, 14, 30, 46, 234001)
    )
    assert records[0].message == "❌ failed: upstream answered 503"


def test_an_aware_time_is_compared_in_local_time(log: Path) -> None:
    since = datetime(2025, 10, 23, 14, 30, 47, 345000).astimezone()  # local time, made aware
    assert len(read_job_logs(log, "AUTO_REBAL", registry=JOBS, since=since.astimezone(timezone.utc))) == 2


@pytest.mark.parametrize(
    ("contains", "ignore_case", "expected"),
    [
        ("processed", False, ["processed: 5 items", "✅ done - processed: 5 items"]),
        ("UPSTREAMERROR", False, []),
        ("UPSTREAMERROR", True, ["❌ failed: upstream answered 503"]),  # found in the traceback
        ("job started", False, ["🔄 job started"]),
    ],
)
def test_contains_looks_in_the_message_and_its_continuation_lines(
    log: Path, contains: str, ignore_case: bool, expected: list[str]
) -> None:
    records = read_job_logs(log, "AUTO_REBAL", registry=JOBS, contains=contains, ignore_case=ignore_case)
    assert [e.message for e in records] == expected


def test_contains_sees_the_text_loki_sees_the_tag_but_not_the_date_or_level(log: Path) -> None:
    assert len(read_job_logs(log, "AUTO_REBAL", registry=JOBS, contains="[AUTO_REBAL] ")) == 4
    assert read_job_logs(log, "AUTO_REBAL", registry=JOBS, contains="2025-10") == []
    assert read_job_logs(log, "AUTO_REBAL", registry=JOBS, contains="DEBUG") == []


def test_limit_keeps_the_most_recent_records(log: Path) -> None:
    records = read_job_logs(log, "AUTO_REBAL", registry=JOBS, limit=2)
    assert [e.message for e in records] == [
        "❌ failed: upstream answered 503",
        "✅ done - processed: 5 items",
    ]


def test_rotated_generations_are_read_oldest_first_compressed_or_not(tmp_path: Path) -> None:
    def line(n: int) -> str:
        return f"2025-10-2{n} 10:00:00,000 INFO: [AUTO_REBAL] generation {n}\n"

    with gzip.open(tmp_path / "app.log.3.gz", "wt", encoding="utf-8") as f:
        f.write(line(1))
    with gzip.open(tmp_path / "app.log.2.gz", "wt", encoding="utf-8") as f:
        f.write(line(2))
    (tmp_path / "app.log.1").write_text(line(3), encoding="utf-8")
    (tmp_path / "app.log").write_text(line(4), encoding="utf-8")
    (tmp_path / "app.log.bak").write_text(line(9), encoding="utf-8")  # not a rotation name
    (tmp_path / "other.log.1").write_text(line(9), encoding="utf-8")

    records = read_job_logs(tmp_path / "app.log", "AUTO_REBAL", registry=JOBS)

    assert [(Path(e.source).name, e.message) for e in records] == [
        ("app.log.3.gz", "generation 1"),
        ("app.log.2.gz", "generation 2"),
        ("app.log.1", "generation 3"),
        ("app.log", "generation 4"),
    ]
    assert [
        e.message for e in read_job_logs(tmp_path / "app.log", "AUTO_REBAL", registry=JOBS, rotated=False)
    ] == ["generation 4"]


def test_rotated_files_knows_the_names_handlers_and_logrotate_give(tmp_path: Path) -> None:
    names = [
        "app.log",
        "app.log.1",
        "app.log.10",
        "app.log.2.gz",
        "app.log.2025-10-22",
        "app.log.2025-10-21_23-00",
        "app.log-20251020.gz",
        "app.log.old",
        "app.logger",
    ]
    for name in names:
        (tmp_path / name).write_text("")
    assert [p.name for p in rotated_files(tmp_path / "app.log")] == [
        "app.log-20251020.gz",
        "app.log.2025-10-21_23-00",
        "app.log.2025-10-22",
        "app.log.10",
        "app.log.2.gz",
        "app.log.1",
        "app.log",
    ]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.log"
    with pytest.raises(JobTagsError, match=f"^No such log file: {re.escape(repr(str(missing)))}$"):
        read_job_logs(missing, "AUTO_REBAL", registry=JOBS)


def test_bytes_that_are_not_utf8_are_replaced_in_records_and_kept_in_raw_output(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] caf\xe9 \xff\nbad \xc3 line\n")
    [record] = read_job_logs(path, "AUTO_REBAL", registry=JOBS)
    assert (record.message, record.continuation) == ("caf\ufffd \ufffd", ("bad \ufffd line",))
    assert list(LogFilter("AUTO_REBAL", registry=JOBS).scan_raw(path)) == [
        b"2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] caf\xe9 \xff\nbad \xc3 line\n"
    ]


def test_crlf_line_ends_are_not_part_of_the_text(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] windows\r\nsecond\r\n")
    [record] = read_job_logs(path, "AUTO_REBAL", registry=JOBS)
    assert (record.message, record.continuation) == ("windows", ("second",))


def test_a_file_without_a_final_newline_keeps_its_last_record(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] last")
    assert [e.message for e in read_job_logs(path, "AUTO_REBAL", registry=JOBS)] == ["last"]


def _reference(text: str, tag: str) -> list[tuple[str, tuple[str, ...]]]:
    """The records of ``tag``, read line by line: the obviously correct slow way."""
    start = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d\d\d [^\n:]+: ")
    records: list[list[str]] = []
    for line in text.split("\n")[:-1]:
        if start.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    prefix = f"[{tag}] "
    found = []
    for lines in records:
        m = start.match(lines[0])
        if m and lines[0][m.end() :].startswith(prefix):
            found.append((lines[0][m.end() + len(prefix) :], tuple(lines[1:])))
    return found


def _random_log(rng: random.Random, records: int) -> str:
    out = []
    for i in range(records):
        tag = rng.choice(["AUTO_REBAL", "PRICE_CACHE", "OTHER", None])
        head = f"2025-10-23 14:{i // 60 % 60:02d}:{i % 60:02d},{rng.randint(0, 999):03d} "
        head += rng.choice(["INFO", "DEBUG", "ERROR", "Level 5"]) + ": "
        body = (f"[{tag}] " if tag else "") + rng.choice(["", "x", "payload [AUTO_REBAL] inside", "é🔄"])
        out.append(head + body + "\n")
        for _ in range(rng.choice([0, 0, 0, 1, 3])):
            out.append(
                rng.choice(["  File x", "", "[AUTO_REBAL] not a start", "2025-10-23 no header"]) + "\n"
            )
    return "".join(out)


@pytest.mark.parametrize("chunk", [16, 97, 4096])
@pytest.mark.parametrize("compressed", [False, True])
def test_records_are_the_same_whatever_the_buffer_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, compressed: bool
) -> None:
    text = _random_log(random.Random(chunk), 400)
    path = tmp_path / ("app.log.1.gz" if compressed else "app.log")
    if compressed:
        with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    monkeypatch.setattr(_reading, "CHUNK_SIZE", chunk)
    monkeypatch.setattr(_reading, "MAX_BUFFER", 1 << 20)
    selection = LogFilter("AUTO_REBAL", registry=JOBS)
    found = [(e.message, e.continuation) for e in selection.scan(path, rotated=False)]
    assert found == _reference(text, "AUTO_REBAL")
    for count in (1, 7, 10_000):  # read backwards from the end, or through for .gz
        assert [(e.message, e.continuation) for e in selection.last(path, count, rotated=False)] == found[
            -count:
        ]
    # write() copies runs of consecutive records at once: the same bytes as record by record.
    out = io.BytesIO()
    written = selection.write(path, out, rotated=False)
    assert out.getvalue() == b"".join(selection.scan_raw(path, rotated=False))
    assert written == len(out.getvalue())


def _reference_raw(text: str, tag: str) -> bytes:
    """The bytes of the records of ``tag``, continuation lines included, read line by line."""
    start = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d\d\d [^\n:]+: ")
    out: list[str] = []
    keep = False
    for line in text.split("\n")[:-1]:
        m = start.match(line)
        if m:
            keep = line[m.end() :].startswith(f"[{tag}] ")
        if keep:
            out.append(line + "\n")
    return "".join(out).encode()


# Lines that come close to starting a record of the job without doing so, and
# records of other jobs that mention it: inside a run the first must stay with
# the record above, the second must end the run.
_ALMOST = [
    "  File x",
    "",
    "[AUTO_REBAL] not a start",
    "2025-10-23 no header",
    "2025-10-23 14:30:4x,123 INFO: [AUTO_REBAL] a letter in the time",
    "2025-10-23 14:30:45,123 INFO:[AUTO_REBAL] no space after the level",
    "2025-10-23 14:30:45,123 IN:FO: [AUTO_REBAL] a colon in the level",
    "2025-10-23 14:30:45,123 : [AUTO_REBAL] no level",
    "2025-10-23 14:30:45,1234 INFO: [AUTO_REBAL] four digits of milliseconds",
    "xxxx-xx-xx xx:xx:xx,xxx INFO: [AUTO_REBAL] the width of a time, not one",
    "2025-10-23 14:30:45,123 INFO: [AUTO_REBAL]no space after the tag",
    "2025-10-23\t14:30:45,123 INFO: [AUTO_REBAL] a tab",
]


def _dense_log(rng: random.Random, records: int) -> str:
    out = []
    for i in range(records):
        tag = rng.choice(["AUTO_REBAL"] * 6 + ["OTHER", "AUTO_REBALANCE", None])
        head = f"2025-10-23 14:{i // 60 % 60:02d}:{i % 60:02d},{rng.randint(0, 999):03d} "
        head += rng.choice(["INFO", "DEBUG", "WARNING", "Level 5", "X"]) + ": "
        body = (f"[{tag}] " if tag else "") + rng.choice(["", "x", "see: [AUTO_REBAL] inside", "é🔄"])
        out.append(head + body + "\n")
        for _ in range(rng.choice([0, 0, 0, 0, 1, 2])):
            out.append(rng.choice(_ALMOST) + "\n")
    return "".join(out)


@pytest.mark.parametrize("chunk", [16, 97, 333, 4096, 1 << 20])
def test_write_copies_dense_runs_as_a_line_by_line_reading_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Runs of the job's records, broken by other records and by lines that
    # nearly start one, cut by buffer boundaries anywhere.
    text = _dense_log(random.Random(chunk), 600)
    path = tmp_path / "app.log"
    path.write_text(text, encoding="utf-8", newline="")
    monkeypatch.setattr(_reading, "CHUNK_SIZE", chunk)
    monkeypatch.setattr(_reading, "MAX_BUFFER", 1 << 20)
    selection = LogFilter("AUTO_REBAL", registry=JOBS)
    out = io.BytesIO()
    written = selection.write(path, out, rotated=False)
    expected = _reference_raw(text, "AUTO_REBAL")
    assert out.getvalue() == expected
    assert written == len(expected)
    assert b"".join(selection.scan_raw(path, rotated=False)) == expected
    # The same with the format given explicitly, and with one that has the same
    # layout but is not the default pattern (the general path of the runs).
    for fmt in ("%(asctime)s %(levelname)s: %(message)s", "%(asctime)s %(levelname)s:%(message)s"):
        other = LogFilter("AUTO_REBAL", registry=JOBS, line_format=fmt)
        out = io.BytesIO()
        other.write(path, out, rotated=False)
        assert out.getvalue() == b"".join(other.scan_raw(path, rotated=False))


def test_write_keeps_a_last_record_without_a_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(
        b"2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] first\n"
        b"2025-10-23 14:30:46,123 INFO: [AUTO_REBAL] last\n  continued"
    )
    out = io.BytesIO()
    LogFilter("AUTO_REBAL", registry=JOBS).write(path, out, rotated=False)
    assert out.getvalue() == path.read_bytes() + b"\n"


def test_a_record_longer_than_the_buffer_limit_is_cut_so_memory_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_reading, "CHUNK_SIZE", 64)
    monkeypatch.setattr(_reading, "MAX_BUFFER", 256)
    path = tmp_path / "app.log"
    huge = "".join(f"  traceback line {i}\n" for i in range(100))
    path.write_text(
        f"2025-10-23 14:30:45,123 ERROR: [AUTO_REBAL] huge\n{huge}"
        "2025-10-23 14:30:46,000 INFO: [AUTO_REBAL] next\n"
    )
    seen: list[int] = []
    original = _filter.read_chunks

    def spy(*args: object) -> object:
        for buf, end in original(*args):  # type: ignore[arg-type]
            seen.append(len(buf))
            yield buf, end

    monkeypatch.setattr(_filter, "read_chunks", spy)
    records = read_job_logs(path, "AUTO_REBAL", registry=JOBS)
    assert [r.message for r in records] == ["huge", "next"]
    assert 0 < len(records[0].continuation) < 100
    assert max(seen) <= 256 + 64


@pytest.mark.parametrize(
    ("fmt", "datefmt", "line", "expected"),
    [
        (
            "%(asctime)s [%(levelname)-8s] %(name)s: %(message)s",
            None,
            "2025-10-23 14:30:45,123 [WARNING ] app.jobs: [AUTO_REBAL] careful",
            ("WARNING", datetime(2025, 10, 23, 14, 30, 45, 123000)),
        ),
        (
            "%(asctime)s.%(msecs)03d %(levelname)s %(process)d %(message)s",
            "%Y-%m-%dT%H:%M:%S",
            "2025-10-23T14:30:45.007 ERROR 4242 [AUTO_REBAL] careful",
            ("ERROR", datetime(2025, 10, 23, 14, 30, 45, 7000)),
        ),
        (
            "%(levelname)s %(asctime)s %(message)s",
            "%d/%b/%Y %H:%M:%S",
            "INFO 23/Oct/2025 14:30:45 [AUTO_REBAL] careful",
            ("INFO", datetime(2025, 10, 23, 14, 30, 45)),
        ),
    ],
)
def test_a_logging_format_string_describes_other_layouts(
    tmp_path: Path, fmt: str, datefmt: str | None, line: str, expected: tuple[str, datetime]
) -> None:
    path = tmp_path / "app.log"
    path.write_text(f"{line}\n  continued\nnot a record line\n", encoding="utf-8")
    [record] = read_job_logs(
        path, "AUTO_REBAL", registry=JOBS, line_format=LineFormat(fmt, datefmt=datefmt), level="info"
    )
    assert (record.level, record.time, record.message, record.continuation) == (
        *expected,
        "careful",
        ("  continued", "not a record line"),
    )


def test_the_format_matches_what_logging_writes(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    fmt = "%(asctime)s | %(levelname)-8s | %(name)s | %(message)s"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(JobTagFilter(JOBS))
    logger = logging.getLogger("test_query.format")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.info("[AUTO_REBAL] started")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("[AUTO_REBAL] failed")
        logger.warning("[PRICE_CACHE] other job")
    finally:
        logger.removeHandler(handler)
        handler.close()
    records = read_job_logs(path, "AUTO_REBAL", registry=JOBS, line_format=fmt)
    assert [(r.level, r.message, r.continuation[-1:]) for r in records] == [
        ("INFO", "started", ()),
        ("ERROR", "failed", ("ValueError: boom",)),
    ]


def test_a_regex_describes_any_layout(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text(
        "[2025-10-23T14:30:45+02:00] <error> [AUTO_REBAL] boom\n    at step\n"
        "[2025-10-23T14:30:46+02:00] <info> [AUTO_REBAL] ok\n",
        encoding="utf-8",
    )
    line_format = LineFormat.from_regex(r"^\[(?P<time>[^\]]+)\] <(?P<level>\w+)> (?P<message>.*)$")
    records = read_job_logs(path, "AUTO_REBAL", registry=JOBS, line_format=line_format)
    offset = timezone(timedelta(hours=2))
    assert [(r.time, r.level, r.message, r.continuation) for r in records] == [
        (datetime(2025, 10, 23, 14, 30, 45, tzinfo=offset), "error", "boom", ("    at step",)),
        (datetime(2025, 10, 23, 14, 30, 46, tzinfo=offset), "info", "ok", ()),
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: LineFormat("%(message)s - %(asctime)s"),
            "Invalid line format '%(message)s - %(asctime)s': it must end with %(message)s (continuation "
            "lines follow the message); for other layouts use LineFormat.from_regex()",
        ),
        (
            lambda: LineFormat("%(message)s"),
            "Invalid line format '%(message)s': nothing comes before %(message)s, so a record's first "
            "line cannot be told from a continuation line; add %(asctime)s",
        ),
        (
            lambda: LineFormat.from_regex(r"(?P<time>\S+) .*"),
            r"Invalid line regex '(?P<time>\\S+) .*': it needs a (?P<message>...) group",
        ),
        (
            lambda: LogFilter(
                "AUTO_REBAL", registry=JOBS, level="info", line_format="%(asctime)s %(message)s"
            ),
            "Cannot filter by level: the line format LineFormat('%(asctime)s %(message)s', datefmt=None) "
            "has no level",
        ),
        (
            lambda: LogFilter("AUTO_REBAL", registry=JOBS, level="loud"),
            "Invalid level 'loud': use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number",
        ),
    ],
)
def test_unusable_settings_are_refused_with_the_reason(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        make()  # type: ignore[operator]


def test_a_log_entry_renders_as_logged_and_as_json() -> None:
    record = entry(
        "2025-10-23 14:30:47,345", "ERROR", AUTO_REBAL, "failed", "Traceback:", "  x", source="a.log"
    )
    assert str(record) == "2025-10-23 14:30:47,345 ERROR: [AUTO_REBAL] failed\nTraceback:\n  x"
    assert record.to_dict() == {
        "time": "2025-10-23T14:30:47.345000",
        "level": "ERROR",
        "tag": "AUTO_REBAL",
        "job_id": "auto_rebalance",
        "message": "failed",
        "continuation": ["Traceback:", "  x"],
        "source": "a.log",
    }
    assert (record.levelno, record.lines) == (logging.ERROR, ["[AUTO_REBAL] failed", "Traceback:", "  x"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-23", datetime(2025, 10, 23)),
        ("2025-10-23 14:30", datetime(2025, 10, 23, 14, 30)),
        ("2025-10-23T14:30:45,123", datetime(2025, 10, 23, 14, 30, 45, 123000)),
        (
            "2025-10-23T14:30:45+09:00",
            datetime(2025, 10, 23, 14, 30, 45, tzinfo=timezone(timedelta(hours=9))),
        ),
        ("15m", datetime(2025, 10, 23, 11, 45, tzinfo=timezone.utc)),
        ("2h", datetime(2025, 10, 23, 10, 0, tzinfo=timezone.utc)),
        ("1d", datetime(2025, 10, 22, 12, 0, tzinfo=timezone.utc)),
        ("now", datetime(2025, 10, 23, 12, 0, tzinfo=timezone.utc)),
    ],
)
def test_parse_time_reads_iso_8601_and_durations_ago(text: str, expected: datetime) -> None:
    assert parse_time(text, now=datetime(2025, 10, 23, 12, 0, tzinfo=timezone.utc)) == expected


def test_parse_time_says_which_forms_it_takes() -> None:
    with pytest.raises(ConfigError, match=r"^Invalid time 'yesterday': use ISO 8601 "):
        parse_time("yesterday")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("warning", 30), ("WARN", 30), ("fatal", 50), ("15", 15), (None, None), (40, 40)],
)
def test_parse_level_reads_names_and_numbers(text: str | int | None, expected: int | None) -> None:
    assert parse_level(text) == expected


@pytest.mark.parametrize("text", ["²", "٣", "-1", "1.5", "", "loud", "WARNING!"])
def test_parse_level_refuses_anything_else_with_the_library_error(text: str) -> None:
    message = f"Invalid level {text!r}: use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        parse_level(text)


# -- following ---------------------------------------------------------------


def _collect(records: object, expected: int, timeout: float = 10.0) -> list[str]:
    """Messages from a follow generator until ``expected`` arrived (or the timeout)."""
    found: list[str] = []
    deadline = time.monotonic() + timeout
    for record in records:  # type: ignore[attr-defined]
        found.append(record.message)
        if len(found) >= expected or time.monotonic() > deadline:
            break
    return found


def test_follow_keeps_reading_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=300, backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    logger = logging.getLogger("test_query.follow")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("[AUTO_REBAL] before following")
    done = threading.Event()
    deadline = time.monotonic() + 10

    def write() -> None:
        time.sleep(0.2)
        for i in range(12):  # ~80 bytes each: rotates every few records
            logger.info("[AUTO_REBAL] record %d", i)
            logger.info("[PRICE_CACHE] noise %d", i)
            time.sleep(0.03)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        records = follow_job_logs(
            path,
            "AUTO_REBAL",
            registry=JOBS,
            history=None,
            poll_interval=0.02,
            stop=lambda: time.monotonic() > deadline,
        )
        found = _collect(records, 13)
    finally:
        writer.join()
        logger.removeHandler(handler)
        handler.close()
    assert len(rotated_files(path)) > 2  # it did rotate, several times
    assert found == ["before following"] + [f"record {i}" for i in range(12)]


def test_follow_starts_with_the_last_records_then_waits_for_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("".join(f"2025-10-23 14:30:4{i},000 INFO: [AUTO_REBAL] old {i}\n" for i in range(5)))

    def append() -> None:
        time.sleep(0.2)
        with open(path, "a", encoding="utf-8") as f:
            f.write("2025-10-23 14:31:00,000 ERROR: [AUTO_REBAL] new\nTraceback (most recent call last):\n")
            f.flush()

    threading.Thread(target=append).start()
    records = LogFilter("AUTO_REBAL", registry=JOBS).follow(path, history=2, poll_interval=0.02)
    found = []
    for record in records:
        found.append((record.message, record.continuation))
        if len(found) == 3:
            break
    assert found == [("old 3", ()), ("old 4", ()), ("new", ("Traceback (most recent call last):",))]


def test_follow_starts_over_when_the_file_is_truncated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("2025-10-23 14:30:40,000 INFO: [AUTO_REBAL] before the truncation, long enough\n")

    def truncate_then_write() -> None:
        time.sleep(0.2)
        with open(path, "r+", encoding="utf-8") as f:  # logrotate's copytruncate
            f.truncate(0)
        with open(path, "a", encoding="utf-8") as f:
            f.write("2025-10-23 14:30:50,000 INFO: [AUTO_REBAL] after\n")

    threading.Thread(target=truncate_then_write).start()
    deadline = time.monotonic() + 10
    records = LogFilter("AUTO_REBAL", registry=JOBS).follow(
        path, history=None, poll_interval=0.02, stop=lambda: time.monotonic() > deadline
    )
    assert _collect(records, 2) == ["before the truncation, long enough", "after"]


def test_follow_returns_when_stop_says_so(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("2025-10-23 14:30:40,000 INFO: [AUTO_REBAL] only\n")
    started = time.monotonic()
    records = list(
        LogFilter("AUTO_REBAL", registry=JOBS).follow(
            path, poll_interval=0.02, stop=lambda: time.monotonic() - started > 0.2
        )
    )
    assert [r.message for r in records] == ["only"]
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("deleted", [False, True])
def test_follow_reads_every_generation_rotated_while_it_was_not_looking(
    tmp_path: Path, deleted: bool
) -> None:
    path = tmp_path / "app.log"

    def write(name: str) -> None:
        path.write_text(f"2025-10-23 14:30:40,000 INFO: [AUTO_REBAL] {name}\n", encoding="utf-8")

    def rotate() -> None:  # what RotatingFileHandler does: shift the numbered files, then app.log -> .1
        for n in (2, 1):
            if (tmp_path / f"app.log.{n}").exists():
                (tmp_path / f"app.log.{n}").rename(tmp_path / f"app.log.{n + 1}")
        path.rename(tmp_path / "app.log.1")

    write("A")
    deadline = time.monotonic() + 10
    records = LogFilter("AUTO_REBAL", registry=JOBS).follow(
        path, history=None, poll_interval=0.01, stop=lambda: time.monotonic() > deadline
    )
    found = [next(records).message]  # A is open now; rotate twice before the reader looks again
    rotate()
    write("B")
    rotate()
    write("C")
    if deleted:  # the backup count removed the generation the reader had open
        (tmp_path / "app.log.2").unlink()
    found += [next(records).message, next(records).message]
    assert found == ["A", "B", "C"]


def test_follow_history_reaches_into_rotated_generations(tmp_path: Path) -> None:
    (tmp_path / "app.log.1").write_text(
        "".join(f"2025-10-23 14:30:4{i},000 INFO: [AUTO_REBAL] older {i}\n" for i in range(3))
    )
    (tmp_path / "app.log").write_text("2025-10-23 14:30:50,000 INFO: [AUTO_REBAL] newest\n")
    records = LogFilter("AUTO_REBAL", registry=JOBS).follow(
        tmp_path / "app.log", history=3, stop=lambda: True
    )
    assert [r.message for r in records] == ["older 1", "older 2", "newest"]


def test_last_raw_gives_the_last_records_as_written(log: Path) -> None:
    assert LogFilter("PRICE_CACHE", registry=JOBS).last_raw(log, 1) == [
        b"2025-10-23 14:30:48,000 WARNING: [PRICE_CACHE] slow upstream\n"
        b"[AUTO_REBAL] a continuation line that looks like a tag\n"
    ]


def test_a_timestamp_that_is_no_date_does_not_stop_the_reading(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text(
        "2025-13-45 99:30:45,123 INFO: [AUTO_REBAL] garbled clock\n"
        "2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] fine\n"
    )
    assert [(r.time, r.message) for r in read_job_logs(path, "AUTO_REBAL", registry=JOBS)] == [
        (datetime.min, "garbled clock"),
        (datetime(2025, 10, 23, 14, 30, 45, 123000), "fine"),
    ]
