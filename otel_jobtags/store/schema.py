"""The store's SQLite schema and how its connections are opened.

One ``records`` row per log record; resources are kept once each
(``resources``) since every record of a process shares one. At ingest three
small tables are kept up to date so that the overview never scans records:
``jobs`` (one row per job tag), ``counts`` (records per job, minute and
level) and ``runs`` (one row per run record).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import StoreError

__all__ = ["SCHEMA_VERSION", "connect"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY,
    attributes TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    severity_text TEXT NOT NULL,
    body TEXT NOT NULL,
    job_tag TEXT,
    run_id TEXT,
    attributes TEXT NOT NULL,
    resource_id INTEGER NOT NULL,
    scope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_job_time ON records (job_tag, time_ns);
CREATE INDEX IF NOT EXISTS records_time ON records (time_ns);
CREATE INDEX IF NOT EXISTS records_severity_time ON records (severity, time_ns);
CREATE INDEX IF NOT EXISTS records_run ON records (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS jobs (
    job_tag TEXT PRIMARY KEY,
    job_id TEXT,
    last_seen_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (
    job_tag TEXT NOT NULL,
    minute INTEGER NOT NULL,
    level INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (job_tag, minute, level)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counts_minute ON counts (minute);
CREATE TABLE IF NOT EXISTS runs (
    record_id INTEGER PRIMARY KEY,
    job_tag TEXT NOT NULL,
    job_id TEXT,
    run_id TEXT,
    outcome TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    duration_ms REAL,
    scheduled_time TEXT,
    runs INTEGER NOT NULL,
    instance TEXT
);
-- Covering: a window's run figures (count, failures, p95 duration) never touch the table.
CREATE INDEX IF NOT EXISTS runs_job_figures ON runs (job_tag, time_ns, outcome, runs, duration_ms);
CREATE INDEX IF NOT EXISTS runs_job_outcome_time ON runs (job_tag, outcome, time_ns);
CREATE INDEX IF NOT EXISTS runs_time ON runs (time_ns);
"""


def connect(path: Path, *, readonly: bool = False, create: bool = False) -> sqlite3.Connection:
    """A connection to the store at ``path``, in WAL mode; ``create`` makes the schema.

    Raises:
        StoreError: the file is not a store, or cannot be opened.
    """
    try:
        if readonly:
            connection = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=30
            )
        else:
            connection = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        # WAL with synchronous=NORMAL: a committed transaction survives the process
        # being killed (the WAL is written before COMMIT returns); only an OS crash or
        # power loss can lose the last commits.
        connection.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
        if create:
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"Cannot open the store {str(path)!r}: {exc}; give the path of an otel-jobtags database"
        ) from exc
    if version != SCHEMA_VERSION:
        connection.close()
        raise StoreError(
            f"{str(path)!r} is not an otel-jobtags store (schema version {version}, expected "
            f"{SCHEMA_VERSION}): give another --db path"
        )
    return connection
