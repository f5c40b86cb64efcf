"""Following a text log into the store, for applications that only write files.

The file is read with :meth:`otel_jobtags.query.LogFilter.follow` (rotation
included); each job record becomes a store record with the attributes an
OTLP export would carry (``job.tag``, ``job.id``) plus ``log.file.path``. On a
restart, records not newer than the newest one already stored from that file
are skipped, so following again does not duplicate what was read before.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from pathlib import Path

from ..handler import ATTR_JOB_ID, ATTR_JOB_TAG
from ..logfiles import LogEntry, LogFilter
from ..store import NewRecord, Store, severity_number_of
from ..tags import TagRegistry

__all__ = ["ATTR_LOG_FILE_PATH", "LOGFILE_SCOPE", "LogFileFollower"]

ATTR_LOG_FILE_PATH = "log.file.path"
"""The semantic-conventions attribute naming the file a record was read from."""
LOGFILE_SCOPE = "otel_jobtags.logfile"
"""The scope of the records read from a file."""
_BATCH = 1000


def _record(entry: LogEntry, path: str, resource: dict[str, str]) -> NewRecord:
    moment = entry.time if entry.time.tzinfo is not None else entry.time.astimezone()
    attributes = {ATTR_JOB_TAG: entry.tag, ATTR_LOG_FILE_PATH: path}
    if entry.job_id is not None:
        attributes[ATTR_JOB_ID] = entry.job_id
    try:
        severity = severity_number_of(entry.level)
    except ValueError:
        severity = 0
    return NewRecord(
        int(moment.timestamp() * 1_000_000) * 1000,
        severity,
        entry.level,
        "\n".join(entry.lines),
        attributes,
        resource,
        LOGFILE_SCOPE,
    )


class LogFileFollower:
    """Follows ``path`` on two daemon threads: one reads the file, one appends batches to the store.

    Args:
        store: where records go.
        path: the log file (it may not exist yet).
        registry: the jobs whose records are kept.
    """

    def __init__(self, store: Store, path: str | os.PathLike[str], registry: TagRegistry) -> None:
        self._store = store
        self._path = Path(path)
        self._selection = LogFilter(None, registry=registry)
        self._queue: queue.Queue[NewRecord | None] = queue.Queue(maxsize=10 * _BATCH)
        self._stop = threading.Event()
        self._resource = {"service.name": "logfile", "host.name": os.uname().nodename}
        self._reader = threading.Thread(target=self._read, name="logfile-reader", daemon=True)
        self._writer = threading.Thread(target=self._write, name="logfile-writer", daemon=True)

    def start(self) -> None:
        """Start following."""
        self._reader.start()
        self._writer.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following, after writing what was read."""
        self._stop.set()
        self._reader.join(timeout)
        self._queue.put(None)
        self._writer.join(timeout)

    def _newest_stored(self, source: str) -> int:
        page = self._store.records(attributes={ATTR_LOG_FILE_PATH: source}, limit=1)
        return page.records[0].time_ns if page.records else -1

    def _read(self) -> None:
        source = str(self._path)
        try:
            newest = self._newest_stored(source)
            for entry in self._selection.follow(self._path, history=None, stop=self._stop.is_set):
                record = _record(entry, source, self._resource)
                if record.time_ns > newest:
                    self._queue.put(record)
        except Exception as exc:  # a reader failure must not take the receivers with it
            print(f"otel-jobtags serve: stopped following {source}: {exc}", file=sys.stderr)

    def _write(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first] if first is not None else []
            done = first is None
            while not done and len(batch) < _BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    done = True
                else:
                    batch.append(item)
            if batch:
                try:
                    self._store.append(batch)
                except Exception as exc:
                    print(
                        f"otel-jobtags serve: could not store records of {self._path}: {exc}", file=sys.stderr
                    )
            if done:
                return
