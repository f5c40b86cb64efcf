"""How long and how much the store keeps: the oldest records go first."""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import ConfigError
from .writer import NANOS_PER_MINUTE

__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_MAX_BYTES", "Retention", "enforce", "used_bytes"]

DEFAULT_MAX_AGE = timedelta(days=7)
"""Records older than this are deleted, by default."""
DEFAULT_MAX_BYTES = 1 << 30
"""The database is kept under this size (1 GiB), by default, deleting the oldest records."""
_CHUNK = 5000
"""Records deleted per transaction, so ingest goes on between them."""
_SIZE_TARGET = 0.9
"""Over the size limit, delete down to this fraction of it, so deletion does not run at every check."""


@dataclass(frozen=True)
class Retention:
    """What the store keeps.

    Args:
        max_age: delete records older than this; ``None`` keeps them whatever their age.
        max_bytes: keep the records' pages under this many bytes, deleting the
            oldest records; ``None`` for no limit. The file does not shrink:
            freed pages are reused by new records.

    Raises:
        ConfigError: a limit is not positive.
    """

    max_age: timedelta | None = DEFAULT_MAX_AGE
    max_bytes: int | None = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.max_age is not None and (
            not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0)
        ):
            raise ConfigError(f"Invalid max_age={self.max_age!r}: give a positive timedelta, or None")
        if self.max_bytes is not None and (
            isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) or self.max_bytes <= 0
        ):
            raise ConfigError(
                f"Invalid max_bytes={self.max_bytes!r}: give a positive number of bytes, or None"
            )


def used_bytes(connection: sqlite3.Connection) -> int:
    """Bytes of the database's pages that hold data (free pages excluded)."""
    pages = int(connection.execute("PRAGMA page_count").fetchone()[0])
    free = int(connection.execute("PRAGMA freelist_count").fetchone()[0])
    size = int(connection.execute("PRAGMA page_size").fetchone()[0])
    return (pages - free) * size


def _delete_before(connection: sqlite3.Connection, cutoff_ns: int, lock: AbstractContextManager[Any]) -> int:
    """Delete records (and what was derived from them) older than ``cutoff_ns``, in chunks."""
    deleted = 0
    while True:
        with lock:
            connection.execute("BEGIN IMMEDIATE")
            ids = [
                row[0]
                for row in connection.execute(
                    "SELECT id FROM records WHERE time_ns < ? ORDER BY time_ns LIMIT ?", (cutoff_ns, _CHUNK)
                )
            ]
            if ids:
                marks = ",".join("?" * len(ids))
                connection.execute(f"DELETE FROM records WHERE id IN ({marks})", ids)
                connection.execute(f"DELETE FROM runs WHERE record_id IN ({marks})", ids)
            connection.execute("COMMIT")
        deleted += len(ids)
        if len(ids) < _CHUNK:
            break
    with lock:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("DELETE FROM counts WHERE minute < ?", (cutoff_ns // NANOS_PER_MINUTE,))
        connection.execute("DELETE FROM jobs WHERE last_seen_ns < ?", (cutoff_ns,))
        connection.execute("COMMIT")
    return deleted


def enforce(connection: sqlite3.Connection, retention: Retention, lock: AbstractContextManager[Any]) -> int:
    """Delete what ``retention`` does not keep; return how many records went.

    ``lock`` is the writer's lock: deletion runs in short transactions under
    it, so exports keep being answered meanwhile.
    """
    deleted = 0
    if retention.max_age is not None:
        cutoff = time.time_ns() - int(retention.max_age.total_seconds() * 1e9)
        deleted += _delete_before(connection, cutoff, lock)
    if retention.max_bytes is not None:
        used = used_bytes(connection)
        if used > retention.max_bytes:
            total = int(connection.execute("SELECT count(*) FROM records").fetchone()[0])
            excess = total - int(total * retention.max_bytes * _SIZE_TARGET / used)
            row = connection.execute(
                "SELECT time_ns FROM records ORDER BY time_ns LIMIT 1 OFFSET ?", (max(0, excess - 1),)
            ).fetchone()
            if row is not None:
                deleted += _delete_before(connection, int(row[0]) + 1, lock)
    if deleted:
        with lock:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return deleted
