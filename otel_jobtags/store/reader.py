"""Reading the store: record pages, runs and per-job figures.

Every query here is answered from an index or the small tables kept at ingest
(``jobs``, ``counts``, ``runs``), so its cost follows the page or the window
asked for, not the size of the store.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from ..errors import StoreQueryError
from ..handler import ATTR_JOB_RUN_ID, ATTR_JOB_TAG
from .levels import LEVELS
from .records import JobActivity, RecordPage, Run, StoredRecord, from_ns
from .writer import NANOS_PER_MINUTE

__all__ = ["MAX_LIMIT", "job_activity", "levels_over_time", "read_records", "read_runs", "to_ns"]

MAX_LIMIT = 1000
"""The most records one page holds."""

_RECORD_COLUMNS = (
    "r.id, r.time_ns, r.severity, r.severity_text, r.body, r.job_tag, r.run_id, r.attributes, "
    "s.attributes, r.scope"
)


@contextlib.contextmanager
def _snapshot(connection: sqlite3.Connection) -> Iterator[None]:
    """Run the queries inside in one read transaction, so they see the same data."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")


def to_ns(moment: datetime, name: str) -> int:
    """Unix nanoseconds of an aware datetime.

    Raises:
        StoreQueryError: ``moment`` is naive.
    """
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise StoreQueryError(f"Invalid {name}={moment!r}: give a timezone-aware datetime, e.g. in UTC")
    return int(moment.timestamp() * 1_000_000) * 1000


def _record(row: tuple[Any, ...], resources: dict[str, dict[str, Any]]) -> StoredRecord:
    attributes: dict[str, Any] = {}
    if row[5] is not None:
        attributes[ATTR_JOB_TAG] = row[5]
    if row[6] is not None:
        attributes[ATTR_JOB_RUN_ID] = row[6]
    if row[7] != "{}":
        attributes.update(json.loads(row[7]))
    resource = resources.get(row[8])
    if resource is None:
        resource = resources[row[8]] = json.loads(row[8])
    return StoredRecord(row[0], row[1], row[2], row[3], row[4], attributes, dict(resource), row[9])


def _cursor(text: str) -> tuple[int, int]:
    time_part, _, id_part = text.partition(":")
    try:
        return int(time_part), int(id_part)
    except ValueError:
        raise StoreQueryError(
            f"Invalid cursor {text!r}: pass the next_cursor of the previous page unchanged"
        ) from None


def read_records(
    connection: sqlite3.Connection,
    *,
    job_tag: str | None,
    min_severity: int | None,
    since: datetime | None,
    until: datetime | None,
    text: str | None,
    run_id: str | None,
    attributes: Mapping[str, str] | None,
    limit: int,
    cursor: str | None,
    after_id: int | None,
) -> RecordPage:
    """A page of records matching every filter given, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise StoreQueryError(f"Invalid limit={limit!r}: give a whole number from 1 to {MAX_LIMIT}")
    where: list[str] = []
    params: list[Any] = []
    if job_tag is not None:
        where.append("r.job_tag = ?")
        params.append(job_tag)
    if min_severity is not None:
        where.append("r.severity >= ?")
        params.append(min_severity)
    if since is not None:
        where.append("r.time_ns >= ?")
        params.append(to_ns(since, "since"))
    if until is not None:
        where.append("r.time_ns < ?")
        params.append(to_ns(until, "until"))
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("r.body LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    if run_id is not None:
        where.append("r.run_id = ?")
        params.append(run_id)
    for name, value in (attributes or {}).items():
        if name in (ATTR_JOB_TAG, ATTR_JOB_RUN_ID):
            where.append("r.job_tag = ?" if name == ATTR_JOB_TAG else "r.run_id = ?")
        else:
            if not name or '"' in name or "\\" in name:
                raise StoreQueryError(
                    f"Invalid attribute name {name!r}: give a name without quotes or backslashes"
                )
            where.append("json_extract(r.attributes, ?) = ?")
            params.append(f'$."{name}"')
        params.append(value)
    if after_id is not None:
        where.append("r.id > ?")
        params.append(after_id)
    if cursor is not None:
        cursor_ns, cursor_id = _cursor(cursor)
        where.append("(r.time_ns < ? OR (r.time_ns = ? AND r.id < ?))")
        params.extend((cursor_ns, cursor_ns, cursor_id))
    sql = f"SELECT {_RECORD_COLUMNS} FROM records r JOIN resources s ON s.id = r.resource_id"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY r.time_ns DESC, r.id DESC LIMIT ?"
    params.append(limit + 1)
    with _snapshot(connection):
        rows = connection.execute(sql, params).fetchall()
        latest = connection.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0]
    resources: dict[str, dict[str, Any]] = {}
    records = [_record(row, resources) for row in rows[:limit]]
    next_cursor = f"{records[-1].time_ns}:{records[-1].id}" if len(rows) > limit else None
    return RecordPage(records, next_cursor, int(latest))


def _window(since: datetime, until: datetime | None) -> tuple[int, int]:
    start = to_ns(since, "since")
    end = to_ns(until, "until") if until is not None else to_ns(datetime.now(since.tzinfo), "until")
    if end <= start:
        raise StoreQueryError(f"Invalid window: since={since!r} is not before until={until!r}")
    return start, end


def _buckets(
    connection: sqlite3.Connection, job_tag: str | None, start: int, end: int, buckets: int
) -> dict[int, list[int]]:
    """Per level index: the counts of the minutes in [start, end), in ``buckets`` equal slices.

    A minute falls in the slice holding its middle. SQLite sums the slices, so
    a week of minutes costs one pass over the index and returns at most
    ``buckets`` rows per level, instead of every minute's row.
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= 1440:
        raise StoreQueryError(f"Invalid buckets={buckets!r}: give a whole number from 1 to 1440")
    first, last = _minute_range(start, end)
    # Integer arithmetic, all terms >= 0: floor((middle - start) * buckets / (end - start)).
    index = (
        f"min({buckets - 1}, ((minute * {NANOS_PER_MINUTE} + {NANOS_PER_MINUTE // 2} - ?) * {buckets}) / ?)"
    )
    where = "minute >= ? AND minute < ?" + ("" if job_tag is None else " AND job_tag = ?")
    params: list[Any] = [start, end - start, first, last] + ([] if job_tag is None else [job_tag])
    sql = f"SELECT {index} AS slice, level, sum(n) FROM counts WHERE {where} GROUP BY slice, level"
    series = {level: [0] * buckets for level in range(len(LEVELS))}
    for slice_, level, n in connection.execute(sql, params):
        series[level][slice_] += n
    return series


def _minute_range(start: int, end: int) -> tuple[int, int]:
    # Counts are kept per minute: a window covers the minutes that start inside it.
    return math.ceil(start / NANOS_PER_MINUTE), math.ceil(end / NANOS_PER_MINUTE)


def levels_over_time(
    connection: sqlite3.Connection, job_tag: str | None, since: datetime, until: datetime | None, buckets: int
) -> dict[str, list[int]]:
    """Record counts per level in equal slices of the window (minute resolution), oldest first."""
    start, end = _window(since, until)
    series = _buckets(connection, job_tag, start, end, buckets)
    return {LEVELS[level]: values for level, values in series.items()}


def _run_figures(
    connection: sqlite3.Connection, tag: str, start: int, end: int
) -> tuple[int, int, float | None]:
    """Runs (summaries count as the runs they stand for), failures and p95 duration in [start, end)."""
    window = "FROM runs WHERE job_tag = ? AND time_ns >= ? AND time_ns < ?"
    runs, failures, timed = connection.execute(
        f"SELECT coalesce(sum(runs), 0), coalesce(sum(outcome = 'error'), 0), count(duration_ms) {window}",
        (tag, start, end),
    ).fetchone()
    if not timed:
        return int(runs), int(failures), None
    # The nearest-rank 95th percentile: the ceil(0.95 n)-th smallest duration, found from
    # the top (SQLite's sorter then keeps only the largest 5 %, not every duration).
    from_top = timed - min(timed, math.ceil(0.95 * timed))
    p95 = connection.execute(
        f"SELECT duration_ms {window} AND duration_ms IS NOT NULL ORDER BY duration_ms DESC LIMIT 1 OFFSET ?",
        (tag, start, end, from_top),
    ).fetchone()[0]
    return int(runs), int(failures), float(p95)


def job_activity(
    connection: sqlite3.Connection, job_tags: list[str], since: datetime, until: datetime | None, buckets: int
) -> list[JobActivity]:
    """The figures of each job in ``job_tags`` (every known job when empty), sorted by tag."""
    start, end = _window(since, until)
    with _snapshot(connection):  # one read snapshot for every figure
        known = {
            tag: (job_id, seen)
            for tag, job_id, seen in connection.execute("SELECT job_tag, job_id, last_seen_ns FROM jobs")
        }
        out: list[JobActivity] = []
        for tag in sorted(job_tags or known):
            job_id, seen = known.get(tag, (None, None))
            series = _buckets(connection, tag, start, end, buckets)
            by_level = {LEVELS[level]: sum(values) for level, values in series.items()}
            volume = [sum(values[i] for values in series.values()) for i in range(buckets)]
            runs, failures, p95 = _run_figures(connection, tag, start, end)
            last_success, last_run = connection.execute(
                "SELECT (SELECT max(time_ns) FROM runs WHERE job_tag = ?1 AND outcome = 'success'), "
                "(SELECT max(time_ns) FROM runs WHERE job_tag = ?1)",
                (tag,),
            ).fetchone()
            out.append(
                JobActivity(
                    job_tag=tag,
                    job_id=job_id,
                    records=sum(by_level.values()),
                    by_level=by_level,
                    volume=volume,
                    runs=runs,
                    failures=failures,
                    last_success=None if last_success is None else from_ns(last_success),
                    last_run=None if last_run is None else from_ns(last_run),
                    p95_duration_ms=p95,
                    last_seen=None if seen is None else from_ns(seen),
                )
            )
    return out


def read_runs(
    connection: sqlite3.Connection, job_tag: str, since: datetime | None, until: datetime | None, limit: int
) -> list[Run]:
    """A job's runs, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise StoreQueryError(f"Invalid limit={limit!r}: give a whole number from 1 to 10000")
    sql = (
        "SELECT u.record_id, u.job_tag, u.job_id, u.run_id, u.outcome, u.time_ns, u.duration_ms, "
        "u.scheduled_time, u.runs, u.instance, r.body FROM runs u JOIN records r ON r.id = u.record_id "
        "WHERE u.job_tag = ?"
    )
    params: list[Any] = [job_tag]
    if since is not None:
        sql += " AND u.time_ns >= ?"
        params.append(to_ns(since, "since"))
    if until is not None:
        sql += " AND u.time_ns < ?"
        params.append(to_ns(until, "until"))
    sql += " ORDER BY u.time_ns DESC, u.record_id DESC LIMIT ?"
    params.append(limit)
    out = []
    for row in connection.execute(sql, params):
        end_ns, duration = row[5], row[6]
        start = None if duration is None else from_ns(end_ns - int(duration * 1_000_000))
        out.append(
            Run(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                from_ns(end_ns),
                start,
                duration,
                row[7],
                row[8],
                row[9],
                row[10],
            )
        )
    return out
