"""Following a growing log file across rotation and truncation."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from . import _reading
from ._reading import StartMatch, last_record_start, open_log, read_chunks, rotated_files

__all__ = ["FileTail"]


class FileTail:
    """Reads a growing log file, following it across rotation and truncation."""

    def __init__(self, path: Path, start_match: StartMatch, *, from_end: bool) -> None:
        self.path = path
        self.start_match = start_match
        self.from_end = from_end
        self.stream: IO[bytes] | None = None
        self.ident: tuple[int, int] | None = None
        # Generations there at the start are history, read or skipped by the caller.
        self.seen: set[tuple[int, int]] = set()
        for older in rotated_files(path):
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(older)
                self.seen.add((st.st_dev, st.st_ino))

    def open(self) -> int | None:
        """Open the file if it exists; return the offset reading starts from."""
        if self.stream is None:
            try:
                stream = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed in buffers()
            except FileNotFoundError:
                return None
            st = os.fstat(stream.fileno())
            self.stream, self.ident = stream, (st.st_dev, st.st_ino)
            if self.from_end:
                stream.seek(0, os.SEEK_END)
                self.from_end = False  # only the file that is there at the start
        return self.stream.tell()

    def _replaced(self) -> str | None:
        """``"rotated"``, ``"truncated"`` or ``None``, once the open file is read to its end."""
        assert self.stream is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None  # renamed away, the new file not created yet: wait for it
        if (st.st_dev, st.st_ino) != self.ident:
            return "rotated"
        if st.st_size < self.stream.tell():
            return "truncated"
        return None

    def _newer_generations(self) -> list[Path]:
        """The rotated generations written after the one this reader had open, oldest first.

        Found by the open file's inode among the generations; if it is gone
        already (deleted by the backup count, or compressed), every generation
        not read before. Either way they are marked read.
        """
        generations = []
        for path in rotated_files(self.path):
            if path != self.path:
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(path)
                    generations.append(((st.st_dev, st.st_ino), path))
        idents = [ident for ident, _ in generations]
        if self.ident in idents:
            newer = generations[idents.index(self.ident) + 1 :]
        else:
            newer = [(ident, path) for ident, path in generations if ident not in self.seen]
        # Forget files that are gone, so an inode reused by a new file is not mistaken for a read one.
        self.seen = {*idents, *(ident for ident, _ in newer)}
        return [path for _, path in newer]

    def buffers(self, stop: Callable[[], bool], poll_interval: float) -> Iterator[tuple[bytes, int] | None]:
        """``(buffer, end)`` with whole records as they arrive; ``None`` when caught up."""
        carry = b""
        draining = False
        try:
            while True:
                if self.stream is None:
                    self.open()
                data = self.stream.read(_reading.CHUNK_SIZE) if self.stream is not None else b""
                if data:
                    buf = carry + data if carry else data
                    cut = last_record_start(buf, self.start_match)
                    if cut == 0 and len(buf) >= _reading.MAX_BUFFER:
                        cut = buf.rfind(b"\n") + 1
                    if cut:
                        yield buf, cut
                    carry = buf[cut:]
                    if not stop():
                        continue
                switched = None
                if self.stream is not None and not data:
                    switched = "rotated" if draining else self._replaced()
                    if switched == "rotated" and not draining:
                        draining = True  # read what was written to the old file before it was closed
                        continue
                # Caught up: what is there is complete, up to the last newline.
                whole = carry.rfind(b"\n") + 1
                if switched and carry and not whole:
                    carry += b"\n"
                    whole = len(carry)
                if whole:
                    yield carry, whole
                    carry = carry[whole:]
                if switched is not None:
                    assert self.stream is not None
                    if switched == "rotated":
                        self.stream.close()
                        self.stream = None
                        draining = False
                        # The file may have rotated more than once since the last
                        # look: read the generations newer than the one just done.
                        for older in self._newer_generations():
                            stream, seekable = open_log(older)
                            with stream:
                                yield from read_chunks(stream, seekable, self.start_match)
                    else:
                        self.stream.seek(0)
                    carry = b""
                    continue
                yield None
                if stop():
                    return
                time.sleep(poll_interval)
        finally:
            if self.stream is not None:
                self.stream.close()
