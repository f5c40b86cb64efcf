"""An on-disk spool of log record batches, so that a restart delivers what an exit could not.

A batch is written to the spool *before* it is exported and deleted when the
receiver has acknowledged it (write-ahead). Records a process could not deliver
before it ended -- receiver down at exit, a crash, ``SIGKILL`` -- are therefore
on disk, and the next process that opens the same spool directory adopts and
delivers them, oldest first.

Layout of the directory (mode 0700; every file 0600, owned by the user)::

    spool.key                 the secret key that authenticates this spool's batches
    <owner>.lock              held (flock) by the live process that owns <owner>
    <owner>-<seq>.batch       one batch of records, seq in write order
    .<owner>-<seq>.batch.tmp  a batch being written (renamed into place when complete)
    <name>.batch.corrupt      a batch that failed its checks, kept for inspection
    <name>.batch.rejected     a record the receiver refused while accepting empty requests

``<owner>`` is ``<start time ns>-<pid>-<random>``, so names sort by the age of
their process. A process adopts the batches of owners whose lock nobody holds
(the lock dies with its process, even on ``SIGKILL``); it renames them into
its own name first, so two processes starting together never both send one.

A batch file's format is :mod:`~otel_jobtags.delivery.spoolformat`'s.

Records may hold secrets, and a batch in the spool is sent as if the
application had logged it, so the spool trusts only what it wrote: the
directory is made 0700 (an existing one owned by the user is tightened to
it), files 0600, and a batch is adopted only if it is a regular file owned by
the user whose HMAC checks out -- a file planted by someone else, or copied
from another spool, is refused. A file whose owner, header, length, HMAC or
JSON does not check out is skipped with a warning on stderr and renamed
``*.corrupt``; it never stops the process. Temporary files a dead process
left half-written (a full disk, a crash) are removed when its batches are
adopted. Batches of format version 1 (unauthenticated) are refused the same
way.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hmac
import os
import secrets
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk._logs import ReadableLogRecord

from .. import _diagnostics
from ..errors import SpoolError, UntrustedSpoolError
from .spoolformat import FIELDS, HEADER_SIZE, MAGIC, VERSION, decode_batch, encode_batch, mac, read_header

__all__ = ["Spool", "SpoolError", "SpooledBatch", "UntrustedSpoolError", "prepare_directory"]

_SUFFIX = ".batch"
_TMP_SUFFIX = _SUFFIX + ".tmp"
KEY_NAME = "spool.key"
"""The file holding the directory's secret key."""
_KEY_SIZE = 32
_FILE_MODE = 0o600
_DIR_MODE = 0o700


@dataclass(frozen=True)
class SpooledBatch:
    """A batch on disk."""

    path: Path
    count: int
    """How many records it holds."""
    nbytes: int
    """Their estimated size, as counted against the queue's byte bound."""


def _check_file(fd: int, path: Path) -> os.stat_result:
    """Refuse a file this user's spool did not write: not a regular file, or owned by another user."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise SpoolError(f"{path.name}: not a regular file")
    if st.st_uid != os.geteuid():
        raise SpoolError(f"{path.name}: owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})")
    return st


def _open_private(path: Path) -> int:
    """Create ``path`` for writing, readable by its owner only; it must not exist."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _FILE_MODE)


def prepare_directory(directory: Path) -> bytes:
    """Make a spool directory ready; return its secret key.

    The directory is created 0700, or an existing one of this user's
    tightened to 0700; its key is created (0600) if it has none yet.

    Raises:
        UntrustedSpoolError: the directory or its key belongs to another user, or
            the key is readable by others (its batches could not be trusted).
        OSError: the directory cannot be created or written.
    """
    _make_private(directory)
    return _load_key(directory)


def _make_private(directory: Path) -> None:
    directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    st = os.stat(directory)
    if st.st_uid != os.geteuid():
        raise UntrustedSpoolError(
            errno.EPERM,
            f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}); "
            "use a directory of this user's, which the spool keeps private (mode 0700)",
        )
    if stat.S_IMODE(st.st_mode) != _DIR_MODE:
        os.chmod(directory, _DIR_MODE)


def _load_key(directory: Path) -> bytes:
    """The directory's secret key, created (0600) if it has none yet.

    Raises:
        UntrustedSpoolError: the key file is not one this user's spool made.
    """
    path = directory / KEY_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        tmp = directory / f".{KEY_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = _open_private(tmp)
        try:
            os.write(fd, secrets.token_bytes(_KEY_SIZE))
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic: the first process to get there wins, others read its key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        key = os.read(fd, _KEY_SIZE + 1)
    finally:
        os.close(fd)
    if (
        not stat.S_ISREG(st.st_mode)
        or st.st_uid != os.geteuid()
        or stat.S_IMODE(st.st_mode) & 0o077
        or len(key) != _KEY_SIZE
    ):
        raise UntrustedSpoolError(
            errno.EPERM,
            f"{path} is not a key this user's spool made (a {_KEY_SIZE}-byte file of this user's, "
            "mode 0600); remove it to start the spool afresh",
        )
    return key


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
        self._key: bytes | None = None

    def _secret(self) -> bytes:
        if self._key is None:
            self._key = prepare_directory(self.directory)
        return self._key

    # -- ownership -----------------------------------------------------------
    def _lock_path(self, owner: str) -> Path:
        return self.directory / f"{owner}.lock"

    def _ensure_owner(self) -> str:
        if self._owner is not None:
            return self._owner
        self._secret()  # the directory made private, its key at hand
        while True:
            owner = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
            path = self._lock_path(owner)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, _FILE_MODE)
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

        Files this spool did not write (another user's, a bad HMAC), corrupt
        and truncated ones are renamed ``*.corrupt`` with a warning on
        stderr; the temporary files a dead owner left half-written are removed.
        """
        with self._mutex:
            me = self._ensure_owner()
            owners: dict[str, list[Path]] = {}
            temporaries: dict[str, list[Path]] = {}
            stale_locks: list[str] = []
            for entry in sorted(self.directory.iterdir()):
                name = entry.name
                if name.startswith(".") and name.endswith(_TMP_SUFFIX):
                    owner, _, _seq = name[1 : -len(_TMP_SUFFIX)].rpartition("-")
                    if owner and owner != me:
                        temporaries.setdefault(owner, []).append(entry)
                elif name.endswith(_SUFFIX):
                    owner, _, _seq = name[: -len(_SUFFIX)].rpartition("-")
                    if owner and owner != me:
                        owners.setdefault(owner, []).append(entry)
                elif name.endswith(".lock") and name[: -len(".lock")] != me:
                    stale_locks.append(name[: -len(".lock")])
            adopted: list[SpooledBatch] = []
            for owner in sorted(set(owners) | set(stale_locks) | set(temporaries)):
                adopted.extend(self._adopt_owner(owner, owners.get(owner, []), temporaries.get(owner, [])))
            return adopted

    def _adopt_owner(self, owner: str, files: list[Path], temporaries: list[Path]) -> list[SpooledBatch]:
        path = self._lock_path(owner)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, _FILE_MODE)
        except OSError:
            return []
        adopted: list[SpooledBatch] = []
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return []  # its process is alive
            for tmp in temporaries:  # a write its process never finished
                with contextlib.suppress(OSError):
                    tmp.unlink()
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

    def _check_header(self, path: Path) -> tuple[int, int]:
        data = self._read_file(path)
        count, nbytes, _length = self._verify(data, path)
        return count, nbytes

    @staticmethod
    def _read_file(path: Path) -> bytes:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # never followed: it could point anywhere
                raise SpoolError(f"{path.name}: a symbolic link, not a file this spool wrote") from None
            raise
        with open(fd, "rb") as f:
            _check_file(fd, path)
            return f.read()

    def _verify(self, data: bytes, path: Path) -> tuple[int, int, int]:
        count, nbytes, length = read_header(data, path)
        if len(data) != HEADER_SIZE + length:
            raise SpoolError(f"{path.name}: truncated ({len(data)} bytes, expected {HEADER_SIZE + length})")
        written = data[FIELDS.size : HEADER_SIZE]
        if not hmac.compare_digest(written, mac(self._secret(), data[: FIELDS.size], data[HEADER_SIZE:])):
            raise SpoolError(
                f"{path.name}: checksum mismatch (damaged, or not written by this spool: "
                f"its HMAC does not match {KEY_NAME})"
            )
        return count, nbytes, length

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
        fields = FIELDS.pack(MAGIC, VERSION, len(records), nbytes, len(payload))
        tmp = path.with_name("." + path.name + ".tmp")
        try:
            with open(_open_private(tmp), "wb") as f:
                f.write(fields)
                f.write(mac(self._secret(), fields, payload))
                f.write(payload)
            os.rename(tmp, path)  # readers never see a half-written batch under its final name
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()  # a full disk leaves no partial file behind
            raise
        return SpooledBatch(path, len(records), nbytes)

    def read(self, batch: SpooledBatch) -> list[ReadableLogRecord]:
        """The records of a batch.

        Raises:
            SpoolError: the file is truncated, corrupt or not this spool's.
        """
        path = batch.path
        data = self._read_file(path)
        count, _nbytes, _length = self._verify(data, path)
        try:
            records = decode_batch(data[HEADER_SIZE:])
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
