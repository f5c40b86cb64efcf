"""The :class:`Store`: one SQLite database file holding log records, read by many threads."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType

from ..errors import StoreError
from . import reader
from .records import JobActivity, NewRecord, RecordPage, Run, StoreStats, from_ns
from .retention import Retention, enforce
from .schema import connect
from .writer import Writer

__all__ = ["Store"]

_MAX_IDLE = 8
"""Idle read connections kept open for reuse."""


class Store:
    """Log records in an embedded SQLite database (WAL mode).

    Open one with :meth:`open`. Reads may come from any number of threads,
    each on its own connection, and never wait for a write; writes are
    serialised and each :meth:`append` returns once its batch is committed.
    """

    def __init__(self, path: Path, *, retention: Retention, readonly: bool) -> None:
        self.path = path
        self.retention = retention
        self.readonly = readonly
        # Idle read connections, reused by whichever thread reads next: a threading
        # web server starts a thread per request, so per-thread connections would pile up.
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer: Writer | None = None
        self._write_connection: sqlite3.Connection | None = None
        self._closed = False
        if not readonly:
            self._write_connection = connect(path, create=True)
            self._writer = Writer(self._write_connection)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, retention: Retention | None = None, readonly: bool = False
    ) -> Store:
        """Open the store at ``path``, creating it (and its schema) unless ``readonly``.

        Args:
            path: the database file (``otel-jobtags.db``).
            retention: what :meth:`enforce_retention` keeps; default :class:`Retention()`.
            readonly: read an existing store (one another process writes) without writing.

        Raises:
            StoreError: the file cannot be opened or is not a store.
        """
        resolved = Path(path)
        if str(path) == ":memory:":
            raise StoreError("The store needs a file (it is shared by threads in WAL mode): give a path")
        if readonly and not resolved.exists():
            raise StoreError(f"No store at {str(resolved)!r}: give the --db path `otel-jobtags serve` writes")
        return cls(resolved, retention=retention or Retention(), readonly=readonly)

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read connection for the duration of one query (an idle one if there is one)."""
        if self._closed:
            raise StoreError(f"The store {str(self.path)!r} is closed")
        with self._idle_lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = connect(self.path, readonly=self.readonly)
            connection.isolation_level = None
        try:
            yield connection
        finally:
            with self._idle_lock:
                keep = not self._closed and len(self._idle) < _MAX_IDLE
                if keep:
                    self._idle.append(connection)
            if not keep:
                connection.close()

    # ------------------------------------------------------------------ writing

    def append(self, records: Sequence[NewRecord]) -> int:
        """Append records in one transaction; return their number once committed.

        Raises:
            StoreError: the store is read-only or closed, or the write failed.
        """
        if self._writer is None or self._closed:
            raise StoreError(f"The store {str(self.path)!r} is {'closed' if self._closed else 'read-only'}")
        with self._write_lock:
            try:
                return self._writer.append(records)
            except sqlite3.Error as exc:
                raise StoreError(f"Cannot write to the store {str(self.path)!r}: {exc}") from exc

    def enforce_retention(self) -> int:
        """Delete the records :attr:`retention` does not keep; return how many were deleted."""
        if self._write_connection is None:
            raise StoreError(f"The store {str(self.path)!r} is read-only")
        return enforce(self._write_connection, self.retention, self._write_lock)

    # ------------------------------------------------------------------ reading

    def records(
        self,
        *,
        job_tag: str | None = None,
        min_severity: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        text: str | None = None,
        run_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
        limit: int = 200,
        cursor: str | None = None,
        after_id: int | None = None,
    ) -> RecordPage:
        """Records matching every filter given, newest first, a page at a time.

        Args:
            job_tag: the ``job.tag`` attribute.
            min_severity: lowest OpenTelemetry severity number
                (:func:`~otel_jobtags.store.severity_number_of` turns ``"ERROR"`` into 17).
            since: records at or after this (timezone-aware) time.
            until: records before this time.
            text: a substring of the body, ignoring ASCII case.
            run_id: the ``job.run_id`` attribute.
            attributes: other attributes that must equal these strings.
            limit: records per page, 1 to 1000.
            cursor: the previous page's ``next_cursor``.
            after_id: only records that arrived after the one with this id.

        Raises:
            StoreQueryError: a filter is invalid.
        """
        with self._read() as connection:
            return reader.read_records(
                connection,
                job_tag=job_tag,
                min_severity=min_severity,
                since=since,
                until=until,
                text=text,
                run_id=run_id,
                attributes=attributes,
                limit=limit,
                cursor=cursor,
                after_id=after_id,
            )

    def jobs(self, *, since: datetime, until: datetime | None = None, buckets: int = 24) -> list[JobActivity]:
        """Every job seen in the store (sorted by tag), with its figures over ``[since, until)``.

        ``until`` defaults to now; ``volume`` has ``buckets`` slices.
        """
        with self._read() as connection:
            return reader.job_activity(connection, [], since, until, buckets)

    def job(
        self, job_tag: str, *, since: datetime, until: datetime | None = None, buckets: int = 24
    ) -> JobActivity:
        """One job's figures over ``[since, until)`` (zeros for a job never seen)."""
        with self._read() as connection:
            return reader.job_activity(connection, [job_tag], since, until, buckets)[0]

    def levels_over_time(
        self, job_tag: str | None, *, since: datetime, until: datetime | None = None, buckets: int = 60
    ) -> dict[str, list[int]]:
        """Records per level in ``buckets`` equal slices of the window, oldest first (minute resolution).

        ``job_tag=None`` counts every record, tagged or not.
        """
        with self._read() as connection:
            return reader.levels_over_time(connection, job_tag, since, until, buckets)

    def runs(
        self, job_tag: str, *, since: datetime | None = None, until: datetime | None = None, limit: int = 500
    ) -> list[Run]:
        """A job's runs (from its run records), newest first."""
        with self._read() as connection:
            return reader.read_runs(connection, job_tag, since, until, limit)

    def job_tags(self) -> list[str]:
        """Every job tag that has records in the store, sorted."""
        with self._read() as connection:
            return [row[0] for row in connection.execute("SELECT job_tag FROM jobs ORDER BY job_tag")]

    def stats(self) -> StoreStats:
        """How many records the store holds, its size on disk and its time span."""
        with self._read() as connection:
            count, oldest, newest = connection.execute(
                "SELECT count(*), (SELECT min(time_ns) FROM records), (SELECT max(time_ns) FROM records) "
                "FROM records"
            ).fetchone()
        size = sum(
            os.path.getsize(f"{self.path}{suffix}")
            for suffix in ("", "-wal")
            if os.path.exists(f"{self.path}{suffix}")
        )
        return StoreStats(
            int(count),
            size,
            None if oldest is None else from_ns(oldest),
            None if newest is None else from_ns(newest),
        )

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close every connection; further calls raise :class:`~otel_jobtags.errors.StoreError`."""
        self._closed = True
        with self._write_lock:
            if self._write_connection is not None:
                self._write_connection.close()
                self._write_connection = None
                self._writer = None
        with self._idle_lock:
            for connection in self._idle:
                connection.close()
            self._idle.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}{', readonly=True' if self.readonly else ''})"
