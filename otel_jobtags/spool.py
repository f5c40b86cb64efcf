"""An on-disk spool of log record batches, so that a restart delivers what an exit could not.

A batch is written to the spool *before* it is exported and deleted when the
receiver has acknowledged it (write-ahead). Records a process could not deliver
before it ended -- receiver down at exit, a crash, ``SIGKILL`` -- are therefore
on disk, and the next process that opens the same spool directory adopts and
delivers them, oldest first.

Layout of the directory::

    <owner>.lock              held (flock) by the live process that owns <owner>
    <owner>-<seq>.batch       one batch of records, seq in write order
    <name>.batch.corrupt      a batch that failed its checks, kept for inspection
    <name>.batch.rejected     a record the receiver refused while accepting empty requests

``<owner>`` is ``<start time ns>-<pid>-<random>``, so names sort by the age of
their process. A process adopts the batches of owners whose lock nobody holds
(the lock dies with its process, even on ``SIGKILL``); it renames them into
its own name first, so two processes starting together never both send one.

A batch file is a 29-byte header -- ``b"OJTSPOOL"``, format version (1 byte),
record count (u32), estimated size (u64), payload length (u32), CRC-32 of the
payload (u32), all big-endian -- followed by the payload: UTF-8 JSON holding
the records' fields, resources and scopes. A file whose header, length,
checksum or JSON does not check out is skipped with a warning on stderr and
renamed ``*.corrupt``; it never stops the process.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from . import _diagnostics
from .errors import JobTagsError

__all__ = ["Spool", "SpoolError", "SpooledBatch"]

MAGIC = b"OJTSPOOL"
VERSION = 1
_HEADER = struct.Struct(">8sBIQII")
_SUFFIX = ".batch"


class SpoolError(JobTagsError):
    """A spool file failed its checks (truncated, corrupt, unknown format)."""


@dataclass(frozen=True)
class SpooledBatch:
    """A batch on disk."""

    path: Path
    count: int
    """How many records it holds."""
    nbytes: int
    """Their estimated size, as counted against the queue's byte bound."""


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"m": {str(k): _encode_value(v) for k, v in value.items()}}
    if isinstance(value, Sequence):
        return [_encode_value(v) for v in value]
    return str(value)


def _decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if isinstance(value, dict):
        if "b" in value:
            return base64.b64decode(value["b"])
        return {k: _decode_value(v) for k, v in value["m"].items()}
    return value


def _encode_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: _encode_value(v) for k, v in (attributes or {}).items()}


def _decode_attributes(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _decode_value(v) for k, v in data.items()}


def encode_batch(records: Sequence[ReadableLogRecord]) -> bytes:
    """The JSON payload of a batch (resources and scopes stored once each)."""
    resources: dict[int, int] = {}
    scopes: dict[int, int] = {}
    resource_list: list[Any] = []
    scope_list: list[Any] = []
    rows: list[Any] = []
    for rec in records:
        res = rec.resource
        r = resources.get(id(res))
        if r is None:
            r = resources[id(res)] = len(resource_list)
            resource_list.append([_encode_attributes(res.attributes), res.schema_url])
        scope = rec.instrumentation_scope
        s = scopes.get(id(scope))
        if s is None:
            s = scopes[id(scope)] = len(scope_list)
            scope_list.append(
                None
                if scope is None
                else [scope.name, scope.version, scope.schema_url, _encode_attributes(scope.attributes)]
            )
        lr = rec.log_record
        rows.append(
            [
                r,
                s,
                lr.timestamp,
                lr.observed_timestamp,
                None if lr.severity_number is None else lr.severity_number.value,
                lr.severity_text,
                _encode_value(lr.body),
                _encode_attributes(lr.attributes),
                lr.event_name,
                lr.trace_id or 0,
                lr.span_id or 0,
                int(lr.trace_flags or 0),
            ]
        )
    doc = {"resources": resource_list, "scopes": scope_list, "records": rows}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_batch(payload: bytes) -> list[ReadableLogRecord]:
    """Records from a payload written by :func:`encode_batch`."""
    doc = json.loads(payload.decode("utf-8"))
    resources = [Resource(_decode_attributes(a), schema_url) for a, schema_url in doc["resources"]]
    scopes = [
        None if s is None else InstrumentationScope(s[0], s[1], s[2], _decode_attributes(s[3]))
        for s in doc["scopes"]
    ]
    out: list[ReadableLogRecord] = []
    for r, s, ts, ots, sev, sev_text, body, attrs, event_name, trace_id, span_id, flags in doc["records"]:
        context = None
        if trace_id and span_id:
            span = NonRecordingSpan(SpanContext(trace_id, span_id, False, TraceFlags(flags)))
            context = set_span_in_context(span)
        record = LogRecord(
            timestamp=ts,
            observed_timestamp=ots,
            context=context,
            severity_text=sev_text,
            severity_number=None if sev is None else SeverityNumber(sev),
            body=_decode_value(body),
            attributes=_decode_attributes(attrs),
            event_name=event_name,
        )
        out.append(
            ReadableLogRecord(log_record=record, resource=resources[r], instrumentation_scope=scopes[s])
        )
    return out


def _read_header(data: bytes, path: Path) -> tuple[int, int, int, int]:
    if len(data) < _HEADER.size:
        raise SpoolError(f"{path.name}: truncated header ({len(data)} of {_HEADER.size} bytes)")
    magic, version, count, nbytes, length, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SpoolError(f"{path.name}: not a spool batch (bad magic)")
    if version != VERSION:
        raise SpoolError(f"{path.name}: unknown spool format version {version}")
    return count, nbytes, length, crc


class Spool:
    """A spool directory, owned while open by this process.

    Args:
        directory: where batches live; created if missing. Several processes
            may share it.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._owner: str | None = None
        self._lock_fd: int | None = None
        self._seq = 0
        self._mutex = threading.Lock()
        self._closed = False

    # -- ownership -----------------------------------------------------------
    def _lock_path(self, owner: str) -> Path:
        return self.directory / f"{owner}.lock"

    def _ensure_owner(self) -> str:
        if self._owner is not None:
            return self._owner
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            owner = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
            path = self._lock_path(owner)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Another process may have taken the file for a dead owner's and
                # unlinked it between our open and flock: only a lock on the
                # file the name still points to counts.
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    self._owner, self._lock_fd = owner, fd
                    return owner
            except OSError:
                pass
            os.close(fd)

    def _next_path(self) -> Path:
        owner = self._ensure_owner()
        self._seq += 1
        return self.directory / f"{owner}-{self._seq:010d}{_SUFFIX}"

    def adopt(self) -> list[SpooledBatch]:
        """Take over the batches of processes that are gone; oldest first.

        Corrupt or truncated files are renamed ``*.corrupt`` with a warning on stderr.
        """
        with self._mutex:
            me = self._ensure_owner()
            owners: dict[str, list[Path]] = {}
            stale_locks: list[str] = []
            for entry in sorted(self.directory.iterdir()):
                name = entry.name
                if name.endswith(_SUFFIX):
                    owner, _, _seq = name[: -len(_SUFFIX)].rpartition("-")
                    if owner and owner != me:
                        owners.setdefault(owner, []).append(entry)
                elif name.endswith(".lock") and name[: -len(".lock")] != me:
                    stale_locks.append(name[: -len(".lock")])
            adopted: list[SpooledBatch] = []
            for owner in sorted(set(owners) | set(stale_locks)):
                adopted.extend(self._adopt_owner(owner, owners.get(owner, [])))
            return adopted

    def _adopt_owner(self, owner: str, files: list[Path]) -> list[SpooledBatch]:
        path = self._lock_path(owner)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return []
        adopted: list[SpooledBatch] = []
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return []  # its process is alive
            for old in files:
                try:
                    count, nbytes = self._check_header(old)
                except FileNotFoundError:
                    continue
                except SpoolError as exc:
                    self.quarantine(old, str(exc))
                    continue
                except OSError as exc:
                    _diagnostics.write(f"skipping spool file {old}: {exc}")
                    continue
                new = self._next_path()
                try:
                    os.rename(old, new)
                except FileNotFoundError:
                    continue
                adopted.append(SpooledBatch(new, count, nbytes))
            with contextlib.suppress(OSError):
                path.unlink()
        finally:
            os.close(fd)
        return adopted

    @staticmethod
    def _check_header(path: Path) -> tuple[int, int]:
        with open(path, "rb") as f:
            head = f.read(_HEADER.size)
            count, nbytes, length, _crc = _read_header(head, path)
            size = os.fstat(f.fileno()).st_size
        if size != _HEADER.size + length:
            raise SpoolError(f"{path.name}: truncated ({size} bytes, expected {_HEADER.size + length})")
        return count, nbytes

    # -- batches -------------------------------------------------------------
    def write(self, records: Sequence[ReadableLogRecord], nbytes: int) -> SpooledBatch:
        """Write a batch durably enough to survive the process (not the machine: no fsync)."""
        with self._mutex:
            path = self._next_path()
        return self._write(path, records, nbytes)

    def write_part(
        self, parent: SpooledBatch, number: int, records: Sequence[ReadableLogRecord], nbytes: int
    ) -> SpooledBatch:
        """Write part ``number`` of a batch being split, named to sort in the batch's place.

        ``<owner>-<seq>.batch`` splits into ``<owner>-<seq>.1.batch`` and
        ``<owner>-<seq>.2.batch``, which sort before ``<owner>-<seq+1>.batch``.
        """
        stem = parent.path.name[: -len(_SUFFIX)]
        return self._write(parent.path.with_name(f"{stem}.{number}{_SUFFIX}"), records, nbytes)

    def _write(self, path: Path, records: Sequence[ReadableLogRecord], nbytes: int) -> SpooledBatch:
        payload = encode_batch(records)
        header = _HEADER.pack(MAGIC, VERSION, len(records), nbytes, len(payload), zlib.crc32(payload))
        tmp = path.with_name("." + path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
        os.rename(tmp, path)  # readers never see a half-written batch under its final name
        return SpooledBatch(path, len(records), nbytes)

    def read(self, batch: SpooledBatch) -> list[ReadableLogRecord]:
        """The records of a batch.

        Raises:
            SpoolError: the file is truncated or corrupt.
        """
        path = batch.path
        data = path.read_bytes()
        count, _nbytes, length, crc = _read_header(data, path)
        payload = data[_HEADER.size :]
        if len(payload) != length:
            raise SpoolError(f"{path.name}: truncated ({len(payload)} of {length} payload bytes)")
        if zlib.crc32(payload) != crc:
            raise SpoolError(f"{path.name}: checksum mismatch")
        try:
            records = decode_batch(payload)
        except Exception as exc:
            raise SpoolError(f"{path.name}: undecodable payload: {type(exc).__name__}: {exc}") from None
        if len(records) != count:
            raise SpoolError(f"{path.name}: {len(records)} records, header says {count}")
        return records

    def remove(self, batch: SpooledBatch) -> None:
        """Delete a delivered batch."""
        with contextlib.suppress(FileNotFoundError):
            batch.path.unlink()

    def quarantine(self, path: Path, reason: str) -> None:
        """Set a bad file aside as ``*.corrupt`` and say so on stderr."""
        _diagnostics.write(f"skipping spool file {path}: {reason}; kept as {path.name}.corrupt")
        with contextlib.suppress(OSError):
            os.rename(path, path.with_name(path.name + ".corrupt"))

    def set_aside(self, batch: SpooledBatch, suffix: str) -> Path | None:
        """Rename a batch ``*<suffix>`` (e.g. ``.rejected``): kept for inspection, never sent again."""
        aside = batch.path.with_name(batch.path.name + suffix)
        try:
            os.rename(batch.path, aside)
        except OSError:
            return None
        return aside

    def close(self) -> None:
        """Give up ownership; batches left behind are adopted by the next process."""
        with self._mutex:
            if self._owner is None or self._lock_fd is None:
                return
            mine = list(self.directory.glob(f"{self._owner}-*{_SUFFIX}"))
            if not mine:
                with contextlib.suppress(OSError):
                    self._lock_path(self._owner).unlink()
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._owner, self._lock_fd = None, None

    def after_fork_in_child(self) -> None:
        """Forget the parent's ownership (its lock and batches stay the parent's)."""
        self._mutex = threading.Lock()
        if self._lock_fd is not None:
            # Closing our copy leaves the parent's lock alone; flock(LOCK_UN)
            # would release it for both processes.
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
        self._owner, self._lock_fd, self._seq = None, None, 0
