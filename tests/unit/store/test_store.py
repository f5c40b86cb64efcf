"""The embedded store: what is appended is read back, filtered, paged, counted and expired."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from otel_jobtags.errors import StoreError, StoreQueryError
from otel_jobtags.store import LEVELS, NewRecord, Retention, Store, level_of, severity_number_of

RESOURCE = {"service.name": "web", "service.instance.id": "i-1", "process.pid": 42}
T0 = 1_780_000_000_000_000_000  # 2026-05-28T20:26:40Z
SECOND = 1_000_000_000


def at(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def job_record(
    body: str,
    ns: int,
    *,
    tag: str = "AUTO_REBAL",
    severity: int = 9,
    run_id: str | None = None,
    **attrs: object,
) -> NewRecord:
    attributes: dict[str, object] = {"job.tag": tag, "job.id": tag.lower()}
    if run_id is not None:
        attributes["job.run_id"] = run_id
    attributes.update(attrs)
    return NewRecord(ns, severity, level_of(severity), body, attributes, RESOURCE, "app")


def run_record(tag: str, ns: int, outcome: str, duration_ms: float | None, **attrs: object) -> NewRecord:
    attributes: dict[str, object] = {"job.tag": tag, "job.id": tag.lower(), "job.outcome": outcome}
    if duration_ms is not None:
        attributes["job.duration_ms"] = duration_ms
    attributes.update(attrs)
    severity = 17 if outcome == "error" else 9
    return NewRecord(
        ns, severity, level_of(severity), f"run {outcome}", attributes, RESOURCE, "otel_jobtags.runs"
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "jobs.db") as opened:
        yield opened


def test_a_record_reads_back_whole(store: Store) -> None:
    store.append([job_record("rebalanced 3 portfolios", T0, run_id="r-1", **{"code.lineno": 7})])

    (record,) = store.records().records

    assert record.to_json() == {
        "id": 1,
        "time": "2026-05-28T20:26:40+00:00",
        "time_unix_nano": T0,
        "severity_number": 9,
        "severity_text": "INFO",
        "body": "rebalanced 3 portfolios",
        "attributes": {
            "job.tag": "AUTO_REBAL",
            "job.run_id": "r-1",
            "job.id": "auto_rebal",
            "code.lineno": 7,
        },
        "resource": RESOURCE,
        "scope": "app",
    }


def test_records_come_newest_first_whatever_the_arrival_order(store: Store) -> None:
    store.append(
        [job_record("second", T0 + SECOND), job_record("first", T0), job_record("third", T0 + 2 * SECOND)]
    )

    assert [r.body for r in store.records().records] == ["third", "second", "first"]


def test_filters_combine(store: Store) -> None:
    store.append(
        [
            job_record("price ok", T0, tag="PRICE_CACHE"),
            job_record("upstream 503", T0 + 1000, severity=17, run_id="r-1"),
            job_record("Upstream slow", T0 + 2000, severity=13, run_id="r-1"),
            job_record("upstream 503 again", T0 + 3000, severity=17, run_id="r-2"),
            job_record("late", T0 + 10 * SECOND, severity=17, run_id="r-2"),
        ]
    )

    def bodies(**filters: object) -> list[str]:
        return [r.body for r in store.records(**filters).records]  # type: ignore[arg-type]

    assert bodies(job_tag="AUTO_REBAL", min_severity=17) == ["late", "upstream 503 again", "upstream 503"]
    assert bodies(text="UPSTREAM") == ["upstream 503 again", "Upstream slow", "upstream 503"]
    assert bodies(run_id="r-1") == ["Upstream slow", "upstream 503"]
    assert bodies(since=at(T0 + 2000), until=at(T0 + 10 * SECOND)) == ["upstream 503 again", "Upstream slow"]
    assert bodies(job_tag="PRICE_CACHE") == ["price ok"]
    assert bodies(attributes={"job.id": "price_cache"}) == ["price ok"]


def test_text_filter_takes_percent_and_underscore_literally(store: Store) -> None:
    store.append([job_record("100% done", T0), job_record("100 percent", T0 + 1), job_record("a_b", T0 + 2)])

    assert [r.body for r in store.records(text="0%").records] == ["100% done"]
    assert [r.body for r in store.records(text="a_").records] == ["a_b"]


def test_pages_follow_the_cursor_to_the_end(store: Store) -> None:
    store.append([job_record(f"line {i}", T0 + (i // 2)) for i in range(7)])  # equal times across pages

    seen: list[str] = []
    cursor = None
    while True:
        page = store.records(limit=3, cursor=cursor)
        seen += [r.body for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == [f"line {i}" for i in (6, 5, 4, 3, 2, 1, 0)]


def test_after_id_gives_only_what_arrived_later(store: Store) -> None:
    store.append([job_record("old", T0)])
    latest = store.records().latest_id
    store.append([job_record("new", T0 - SECOND)])

    assert [r.body for r in store.records(after_id=latest).records] == ["new"]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"limit": 0}, r"^Invalid limit=0: give a whole number from 1 to 1000$"),
        ({"cursor": "x"}, r"^Invalid cursor 'x': pass the next_cursor of the previous page unchanged$"),
        ({"since": datetime(2026, 1, 1)}, r"^Invalid since=.*: give a timezone-aware datetime, e.g. in UTC$"),
    ],
)
def test_invalid_filters_say_what_to_pass(store: Store, filters: dict[str, object], message: str) -> None:
    with pytest.raises(StoreQueryError, match=message):
        store.records(**filters)  # type: ignore[arg-type]


def test_severity_names_map_to_the_lowest_number_of_their_range() -> None:
    assert [severity_number_of(n) for n in ("trace", "DEBUG", "info", "WARN", "WARNING", "error", "FATAL")] == [
        1, 5, 9, 13, 13, 17, 21,
    ]  # fmt: skip
    assert [level_of(n) for n in (0, 1, 8, 9, 13, 17, 21, 24)] == [
        "INFO", "DEBUG", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "CRITICAL",
    ]  # fmt: skip
    with pytest.raises(StoreQueryError, match=r"^Invalid level 'LOUD': use a level name"):
        severity_number_of("LOUD")


def test_job_figures_count_levels_runs_and_volume_over_the_window(store: Store) -> None:
    base = T0 - T0 % (60 * SECOND)  # a minute boundary
    store.append(
        [
            job_record("a", base, severity=9),
            job_record("b", base + 61 * SECOND, severity=13),
            job_record("c", base + 150 * SECOND, severity=17),
            run_record("AUTO_REBAL", base + 10 * SECOND, "success", 100.0),
            run_record("AUTO_REBAL", base + 70 * SECOND, "error", 300.0),
            run_record("AUTO_REBAL", base + 130 * SECOND, "success", 200.0, **{"job.runs": 5}),
            run_record("AUTO_REBAL", base - 3600 * SECOND, "success", 999.0),  # before the window
            job_record("other", base, tag="PRICE_CACHE"),
        ]
    )

    activity = store.job("AUTO_REBAL", since=at(base), until=at(base + 180 * SECOND), buckets=3)

    assert activity.by_level == {"DEBUG": 0, "INFO": 3, "WARNING": 1, "ERROR": 2, "CRITICAL": 0}
    assert activity.records == 6
    assert activity.volume == [2, 2, 2]
    assert (activity.runs, activity.failures, activity.p95_duration_ms) == (7, 1, 300.0)
    assert activity.last_success == at(base + 130 * SECOND)
    assert activity.last_seen == at(base + 150 * SECOND)
    assert activity.job_id == "auto_rebal"
    assert [a.job_tag for a in store.jobs(since=at(base), until=at(base + 180 * SECOND))] == [
        "AUTO_REBAL",
        "PRICE_CACHE",
    ]
    assert store.levels_over_time(None, since=at(base), until=at(base + 180 * SECOND), buckets=3)["INFO"] == [
        3,
        0,
        1,
    ]
    assert list(store.levels_over_time("AUTO_REBAL", since=at(base), until=at(base + 60 * SECOND))) == list(
        LEVELS
    )


def test_a_job_never_seen_has_zero_figures(store: Store) -> None:
    activity = store.job("NEVER", since=at(T0), until=at(T0 + SECOND), buckets=2)

    assert (activity.records, activity.volume, activity.runs, activity.last_seen) == (0, [0, 0], 0, None)


def test_runs_read_back_with_start_instance_and_body(store: Store) -> None:
    store.append(
        [
            run_record("AUTO_REBAL", T0, "success", 1500.0, **{"job.run_id": "r-1"}),
            run_record(
                "AUTO_REBAL",
                T0 + SECOND,
                "missed",
                None,
                **{"job.scheduled_time": "2026-05-28T20:26:00+00:00"},
            ),
        ]
    )

    missed, success = store.runs("AUTO_REBAL")

    assert (success.outcome, success.run_id, success.duration_ms, success.instance) == (
        "success",
        "r-1",
        1500.0,
        "i-1",
    )
    assert success.start == at(T0 - 1_500_000_000)
    assert success.end == at(T0)
    assert (missed.outcome, missed.start, missed.scheduled_time) == (
        "missed",
        None,
        "2026-05-28T20:26:00+00:00",
    )
    assert missed.as_alert_run() == (at(T0 + SECOND), "missed", "i-1")


def test_retention_deletes_records_older_than_max_age(tmp_path: Path) -> None:
    now = time.time_ns()
    with Store.open(
        tmp_path / "r.db", retention=Retention(max_age=timedelta(hours=1), max_bytes=None)
    ) as store:
        store.append([job_record("old", now - 2 * 3600 * SECOND), job_record("new", now)])
        store.append([run_record("AUTO_REBAL", now - 2 * 3600 * SECOND, "success", 1.0)])

        assert store.enforce_retention() == 2
        assert [r.body for r in store.records().records] == ["new"]
        assert store.runs("AUTO_REBAL") == []


def test_retention_keeps_the_store_under_max_bytes_deleting_the_oldest(tmp_path: Path) -> None:
    now = time.time_ns()
    with Store.open(tmp_path / "r.db", retention=Retention(max_age=None, max_bytes=400_000)) as store:
        for batch in range(10):
            store.append([job_record("x" * 200, now + batch * 1000 + i) for i in range(1000)])
        before = store.stats().records

        deleted = store.enforce_retention()

        remaining = store.records(limit=1000).records
        assert deleted > 0 and store.stats().records == before - deleted
        assert remaining[0].time_ns == now + 9 * 1000 + 999  # the newest stays
        assert min(r.time_ns for r in remaining) > now  # the oldest went first


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"not a database" * 100)

    with pytest.raises(StoreError, match=r"^Cannot open the store .*notes\.db'"):
        Store.open(path)


def test_a_readonly_store_reads_what_another_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with Store.open(path) as writer, Store.open(path, readonly=True) as reader:
        writer.append([job_record("hello", T0)])

        assert [r.body for r in reader.records().records] == ["hello"]
        with pytest.raises(StoreError, match=r"is read-only$"):
            reader.append([job_record("no", T0)])


def test_reads_from_many_short_lived_threads_do_not_keep_connections_open(store: Store) -> None:
    """A threading web server reads from a new thread per request: connections must be reused."""
    import os
    import threading

    store.append([job_record("hello", T0)])
    store.records()
    before = len(os.listdir("/proc/self/fd"))

    for _ in range(100):
        thread = threading.Thread(target=store.records)
        thread.start()
        thread.join()

    assert len(os.listdir("/proc/self/fd")) - before <= 3


def test_an_attribute_name_that_would_break_the_json_path_is_refused(store: Store) -> None:
    with pytest.raises(
        StoreQueryError,
        match=r"""^Invalid attribute name 'a"b': give a name without quotes or backslashes$""",
    ):
        store.records(attributes={'a"b': "x"})
