"""Appending records: one transaction per batch, committed before the caller is answered."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from ..handler import ATTR_JOB_ID, ATTR_JOB_RUN_ID, ATTR_JOB_TAG
from ..scheduler import ATTR_JOB_DURATION_MS, ATTR_JOB_OUTCOME, ATTR_JOB_RUNS, ATTR_JOB_SCHEDULED_TIME
from .levels import LEVELS, level_of
from .records import NewRecord

__all__ = ["LEVEL_INDEX", "NANOS_PER_MINUTE", "Writer"]

NANOS_PER_MINUTE = 60_000_000_000
LEVEL_INDEX = {name: index for index, name in enumerate(LEVELS)}
_LEVEL_INDEX_BY_NUMBER = [LEVEL_INDEX[level_of(number)] for number in range(25)]
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def _level_index(severity: int) -> int:
    return _LEVEL_INDEX_BY_NUMBER[severity] if 0 <= severity <= 24 else LEVEL_INDEX["CRITICAL"]


def _instance(resource: Mapping[str, Any]) -> str | None:
    value = resource.get("service.instance.id", resource.get("process.pid"))
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class Writer:
    """Appends batches on one connection; not thread-safe (the store serialises calls)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._resources: dict[str, int] = {}

    def _resource_id(self, text: str) -> int:
        known = self._resources.get(text)
        if known is not None:
            return known
        connection = self._connection
        connection.execute("INSERT OR IGNORE INTO resources (attributes) VALUES (?)", (text,))
        row = connection.execute("SELECT id FROM resources WHERE attributes = ?", (text,)).fetchone()
        self._resources[text] = int(row[0])
        return int(row[0])

    def append(self, records: Sequence[NewRecord]) -> int:
        """Write ``records`` in one transaction; return once it is committed."""
        if not records:
            return 0
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            self._insert(records)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return len(records)

    def _insert(self, records: Sequence[NewRecord]) -> None:
        connection = self._connection
        next_id = int(connection.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0]) + 1
        rows: list[tuple[Any, ...]] = []
        runs: list[tuple[Any, ...]] = []
        counts: dict[tuple[str, int, int], int] = {}
        jobs: dict[str, tuple[str | None, int]] = {}
        resource_ids: dict[int, tuple[int, str | None]] = {}  # by id() of the mapping: batches share one
        for record in records:
            resource = record.resource
            known = resource_ids.get(id(resource))
            if known is None:
                known = (self._resource_id(_dumps(dict(resource))), _instance(resource))
                resource_ids[id(resource)] = known
            attributes = dict(record.attributes)
            tag = attributes.get(ATTR_JOB_TAG)
            if not isinstance(tag, str):
                tag = None
            else:
                del attributes[ATTR_JOB_TAG]
            run_id = attributes.get(ATTR_JOB_RUN_ID)
            if not isinstance(run_id, str):
                run_id = None
            else:
                del attributes[ATTR_JOB_RUN_ID]
            time_ns = record.time_ns
            severity = record.severity_number
            rows.append(
                (
                    next_id,
                    time_ns,
                    severity,
                    record.severity_text,
                    record.body,
                    tag,
                    run_id,
                    _dumps(attributes) if attributes else "{}",
                    known[0],
                    record.scope,
                )
            )
            key = (tag or "", time_ns // NANOS_PER_MINUTE, _level_index(severity))
            counts[key] = counts.get(key, 0) + 1
            if tag is not None:
                job_id = attributes.get(ATTR_JOB_ID)
                previous = jobs.get(tag)
                if previous is None or time_ns >= previous[1]:
                    jobs[tag] = (job_id if isinstance(job_id, str) else None, time_ns)
                outcome = attributes.get(ATTR_JOB_OUTCOME)
                if isinstance(outcome, str):
                    count = attributes.get(ATTR_JOB_RUNS)
                    scheduled = attributes.get(ATTR_JOB_SCHEDULED_TIME)
                    runs.append(
                        (
                            next_id,
                            tag,
                            job_id if isinstance(job_id, str) else None,
                            run_id,
                            outcome,
                            time_ns,
                            _number(attributes.get(ATTR_JOB_DURATION_MS)),
                            scheduled if isinstance(scheduled, str) else None,
                            count if isinstance(count, int) and not isinstance(count, bool) else 1,
                            known[1],
                        )
                    )
            next_id += 1
        connection.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if runs:
            connection.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", runs)
        connection.executemany(
            "INSERT INTO counts VALUES (?, ?, ?, ?) "
            "ON CONFLICT (job_tag, minute, level) DO UPDATE SET n = n + excluded.n",
            [(*key, n) for key, n in counts.items()],
        )
        connection.executemany(
            "INSERT INTO jobs VALUES (?, ?, ?) ON CONFLICT (job_tag) DO UPDATE SET "
            "job_id = CASE WHEN excluded.last_seen_ns >= last_seen_ns "
            "THEN coalesce(excluded.job_id, job_id) ELSE job_id END, "
            "last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)",
            [(tag, job_id, seen) for tag, (job_id, seen) in jobs.items()],
        )
