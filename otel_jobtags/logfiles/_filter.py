"""The selection of job records -- job, level, time range, text -- and its scan of log files."""

from __future__ import annotations

import collections
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, NamedTuple

from ..errors import ConfigError
from ..tags import JobTag, TagRegistry
from ._follow import FileTail
from ._formats import (
    CONTINUATION_MARK,
    DEFAULT_INSIDE,
    DEFAULT_START,
    LineFormat,
    as_line_format,
    later_header_tag,
    tag_finder,
)
from ._reading import LogPaths, log_files, open_log, read_chunks, read_chunks_backwards, rotated_files
from ._records import (
    LogEntry,
    Selection,
    align_time,
    asctime_bytes,
    level_number,
    parse_level,
    resolve_registry,
)

__all__ = ["LogFilter", "LogPaths"]


# How many lines a run or a record's rest takes: all it can. Whole lines are
# taken and nothing follows, so no match ever gives one back: where the regex
# engine knows possessive repeats (Python 3.11) it then keeps no backtracking
# state per line, which makes copying a frequent job's records ~10 % faster.
_LINES = b"*+" if sys.version_info >= (3, 11) else b"*"


class _Hit(NamedTuple):
    """A selected record as found in a buffer: what every method turns into its result."""

    raw: bytes
    """The record's lines as written, newline included."""
    tag: JobTag
    offset: int
    """Where ``[TAG] `` starts in ``raw``."""


class LogFilter:
    """A selection of job records -- job, minimum level, time range, text -- ready to scan logs.

    The job is resolved when the filter is made, so an unknown job fails before
    any file is read. A filter can be reused, also from several threads.

    Args:
        job: a job id, tag name (``"AUTO_REBAL"`` or ``"[AUTO_REBAL]"``) or
            :class:`~otel_jobtags.JobTag`; ``None`` selects every registered job.
        registry: where ``job`` is looked up; by default the active registry.
        level: minimum level, a name or a number.
        since: keep records at or after this time (naive means local time).
        until: keep records before this time.
        contains: keep records whose text contains this: the ``[TAG] message`` line
            (what Loki's ``|=`` sees) and the continuation lines, not the date or level.
        ignore_case: compare ``contains`` ignoring case.
        line_format: how the log's lines look: a :class:`LineFormat`, a logging
            format string, or a compiled regex (see :meth:`LineFormat.from_regex`).

    Raises:
        UnknownJobError: ``job`` is not in the registry (the message lists the known jobs).
        ConfigError: a parameter is invalid.
    """

    def __init__(
        self,
        job: JobTag | str | None = None,
        *,
        registry: TagRegistry | None = None,
        level: int | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        contains: str | None = None,
        ignore_case: bool = False,
        line_format: LineFormat | str | re.Pattern[str] | re.Pattern[bytes] | None = None,
    ) -> None:
        self.registry = resolve_registry(registry)
        tag = self.registry.resolve(job) if job is not None else None
        self.format = as_line_format(line_format)
        min_level = parse_level(level)
        if min_level is not None and not self.format.has_level:
            raise ConfigError(f"Cannot filter by level: the line format {self.format!r} has no level")
        if (since is not None or until is not None) and not self.format.has_time:
            raise ConfigError(f"Cannot filter by time: the line format {self.format!r} has no time")
        aware = self.format.tz is not None
        self.selection = Selection(
            tag=tag,
            min_level=min_level,
            since=align_time(since, aware) if since is not None else None,
            until=align_time(until, aware) if until is not None else None,
            contains=contains or None,
            ignore_case=ignore_case,
        )
        fmt, sel = self.format, self.selection
        self._needle = tag.prefix.encode() if tag is not None else None
        names = "|".join(re.escape(t.name) for t in sorted(self.registry, key=lambda t: -len(t.name)))
        self._any_tag = re.compile(rb"\[(" + (names.encode() or rb"(?!)") + rb")\] ")
        self._levels: dict[bytes, bool] = {}
        self._since_b = self._until_b = None
        if fmt.sortable_time:
            # The default asctime sorts as text: compare bytes, parse nothing.
            self._since_b = asctime_bytes(sel.since) if sel.since is not None else None
            self._until_b = asctime_bytes(sel.until) if sel.until is not None else None
        self._bytes_times = self._since_b is not None or self._until_b is not None
        self._parse_times = (sel.since is not None or sel.until is not None) and not self._bytes_times
        self._contains_b = (sel.contains or "").encode("utf-8", "surrogatepass")
        self._contains_fold = (sel.contains or "").casefold()
        # Copying a job's records out with no other condition: match a run of
        # consecutive records of the job, continuation lines included, in one call.
        # After its first line a run goes on over every line that is not the start
        # of another record: one of the job's records, or a continuation line. Each
        # line's header is parsed once (the job's records are tried first).
        self._run: re.Pattern[bytes] | None = None
        plain = min_level is None and since is None and until is None and sel.contains is None
        start = fmt.start.pattern
        # From a [TAG] hit of a format string: the rest of its line and every
        # following line that does not start a record, in one regex call.
        self._rest = (
            re.compile(rb"[^\n]*\n?(?:(?!" + start + rb")[^\n]*\n)" + _LINES) if fmt.fmt is not None else None
        )
        if tag is not None and plain and fmt.fmt is not None:
            lead = re.escape(tag.prefix.encode())
            inside = (DEFAULT_INSIDE if start == DEFAULT_START else start) + lead
            self._run = re.compile(
                start + lead + rb"[^\n]*\n(?:" + inside + rb"[^\n]*\n|(?!" + start + rb")[^\n]*\n)" + _LINES
            )

    @property
    def tag(self) -> JobTag | None:
        """The selected job's tag (``None``: every registered job)."""
        return self.selection.tag

    # -- scanning ---------------------------------------------------------

    def _level_ok(self, raw: bytes | None) -> bool:
        raw = raw or b""
        ok = self._levels.get(raw)
        if ok is None:
            levelno = level_number(raw.decode("utf-8", "replace").strip())
            ok = self._levels[raw] = levelno >= (self.selection.min_level or 0)
        return ok

    def _time_ok(self, header: re.Match[bytes], stamp: bytes | None) -> bool:
        if self._bytes_times:
            if stamp is None:
                return False
            if self._since_b is not None and stamp < self._since_b:
                return False
            return not (self._until_b is not None and stamp >= self._until_b)
        moment = self.format.time_of(header)
        sel = self.selection
        if moment.tzinfo is None and self.format.tz is not None:
            moment = moment.replace(tzinfo=self.format.tz)
        if sel.since is not None and moment < sel.since:
            return False
        return not (sel.until is not None and moment >= sel.until)

    def _contains_ok(self, text: bytes) -> bool:
        if not self.selection.ignore_case:
            return self._contains_b in text
        return self._contains_fold in text.decode("utf-8", "replace").casefold()

    def _scan(self, buf: bytes, end: int, begin: int = 0) -> list[_Hit]:
        """The matching records of ``buf[begin:end]``, which holds whole records.

        The loop is the hot path: it looks for the ``[TAG] `` bytes, and parses
        only the line around a hit and the lines after it that do not start a record.
        """
        out: list[_Hit] = []
        append = out.append
        fmt = self.format
        find, rfind = buf.find, buf.rfind
        rest_match = self._rest.match if self._rest is not None else None
        header_fullmatch = fmt.header.fullmatch
        header_match = fmt.header.match
        groups = fmt.header.groupindex
        asctime_index = groups.get("asctime") or groups.get("time")
        level_index = groups.get("levelname") or groups.get("level")
        check_level = self.selection.min_level is not None
        check_time = self._bytes_times or self._parse_times
        check_text = self.selection.contains is not None
        needle = self._needle
        search_any = self._any_tag.search
        registry_get = self.registry.get
        tag = self.selection.tag
        m: re.Match[bytes] | None = None
        pos = begin
        while True:
            if needle is not None:
                p = find(needle, pos, end)
                if p < 0:
                    break
            else:
                m = search_any(buf, pos, end)
                if m is None:
                    break
                p = m.start()
            line_start = rfind(b"\n", 0, p) + 1
            if rest_match is not None:
                header = header_fullmatch(buf, line_start, p)
                # The record runs to the next line that starts one (continuation lines included).
                pos = rest_match(buf, p, end).end()  # type: ignore[union-attr]
                if header is None:  # the tag may stand in the header too, e.g. "[%(job.tag)s] "
                    later, header = later_header_tag(
                        buf, p, end, line_start, header_fullmatch, tag_finder(needle, self._any_tag)
                    )
                    if header is not None:
                        p = later
                        if needle is None:
                            m = search_any(buf, p, end)
                if header is None:  # "[TAG] " inside a message, or in a continuation line
                    continue
            else:
                pos = find(b"\n", p, end) + 1 or end
                header = header_match(buf, line_start, pos - 1)
                if header is None or header.start("message") != p:
                    continue
                pos = self._continuation_end(buf, pos, end)
            nxt = pos
            if needle is None:
                assert m is not None
                tag = registry_get(m.group(1).decode())
            if check_level and not self._level_ok(header.group(level_index) if level_index else None):
                continue
            if check_time and not self._time_ok(
                header, header.group(asctime_index) if asctime_index else None
            ):
                continue
            if check_text and not self._contains_ok(buf[p:nxt]):
                continue
            assert tag is not None
            # Records are copied out of the buffer: nothing kept may pin a whole buffer.
            append(_Hit(buf[line_start:nxt], tag, p - line_start))
        return out

    def _continuation_end(self, buf: bytes, pos: int, end: int) -> int:
        """The offset of the first line at or after ``pos`` that starts a record (or ``end``)."""
        start_match = self.format.start.match
        while pos < end and start_match(buf, pos, end) is None:
            pos = buf.find(b"\n", pos, end) + 1 or end
        return pos

    def _entry(self, hit: _Hit, source: str) -> LogEntry:
        """A :class:`LogEntry` from a selected record."""
        fmt = self.format
        raw, tag, offset = hit
        if fmt.fmt is not None:
            header = fmt.header.fullmatch(raw, 0, offset)
        else:
            header = fmt.header.match(raw, 0, (raw.find(b"\n") + 1 or len(raw) + 1) - 1)
        assert header is not None  # it matched when the record was selected
        lines = raw.decode("utf-8", "replace").split("\n")
        if lines[-1] == "":
            lines.pop()
        skip = (offset if raw.isascii() else len(raw[:offset].decode("utf-8", "replace"))) + len(tag.prefix)
        continuation = [line.rstrip("\r") for line in lines[1:]]
        if continuation and all(line.startswith(CONTINUATION_MARK) for line in continuation):
            cut = len(CONTINUATION_MARK)  # written by JobTagFormatter: the text is what was logged
            continuation = [line[cut:] for line in continuation]
        return LogEntry(
            time=fmt.time_of(header),
            level=fmt.level_of(header),
            tag=tag.name,
            message=lines[0][skip:].rstrip("\r"),
            continuation=tuple(continuation),
            job_id=tag.job_id,
            source=source,
        )

    def _scan_runs(self, buf: bytes, end: int) -> bytes:
        """The bytes of the records ``_scan`` would select from ``buf[:end]``, joined.

        ``buf[:end]`` ends with a newline, as :func:`read_chunks` cuts it. For
        frequent jobs most records follow another of the same job: taking a run
        of them in one regex call saves the per-record work that dominates then.
        """
        assert self._run is not None and self._needle is not None
        out: list[bytes] = []
        append = out.append
        find, rfind, run_match, needle = buf.find, buf.rfind, self._run.match, self._needle
        pos = 0
        while True:
            p = find(needle, pos, end)
            if p < 0:
                return b"".join(out)
            line_start = rfind(b"\n", 0, p) + 1
            run = run_match(buf, line_start, end)
            if run is None:  # "[TAG] " inside a message, or in a continuation line
                pos = find(b"\n", p, end) + 1 or end
                continue
            pos = run.end()
            append(buf[line_start:pos])

    def _buffers(self, paths: LogPaths, rotated: bool) -> Iterator[tuple[str, bytes, int]]:
        """``(source, buffer, end)`` for each file in turn, ``buffer[:end]`` whole records."""
        start_match = self.format.start.match
        for path in log_files(paths, rotated):
            source = os.fspath(path)
            stream, seekable = open_log(path)
            with stream:
                for buf, end in read_chunks(stream, seekable, start_match):
                    yield source, buf, end

    def _batches(self, paths: LogPaths, rotated: bool) -> Iterator[tuple[str, list[_Hit]]]:
        for source, buf, end in self._buffers(paths, rotated):
            out = self._scan(buf, end)
            if out:
                yield source, out

    # -- public -----------------------------------------------------------

    def scan(self, paths: LogPaths, *, rotated: bool = True) -> Iterator[LogEntry]:
        """The matching records of the files, oldest first, as :class:`LogEntry`.

        Args:
            paths: one log file or several; each stands for its rotated
                generations too (see :func:`rotated_files`) unless ``rotated`` is false.
            rotated: read the rotated generations.

        Raises:
            JobTagsError: a file does not exist.
        """
        entry = self._entry
        for source, batch in self._batches(paths, rotated):
            for hit in batch:
                yield entry(hit, source)

    def last(self, paths: LogPaths, count: int, *, rotated: bool = True) -> list[LogEntry]:
        """The last ``count`` matching records (the most recent), oldest first.

        Plain files are read backwards from their end, so this costs what the
        records cost, not what the file does (compressed ones are read
        through), and only these records become :class:`LogEntry` objects:
        the way to show a frequent job's recent logs.
        """
        files = [(path, None) for path in log_files(paths, rotated)]
        return [self._entry(hit, source) for source, hit in self._last(files, count)]

    def last_raw(self, paths: LogPaths, count: int, *, rotated: bool = True) -> list[bytes]:
        """Like :meth:`last`, but each record as the raw bytes of its lines."""
        files = [(path, None) for path in log_files(paths, rotated)]
        return [hit.raw for _, hit in self._last(files, count)]

    def _last(self, files: Sequence[tuple[Path, int | None]], count: int) -> list[tuple[str, _Hit]]:
        """The last ``count`` records of ``files``, oldest first, each file read up to its byte limit."""
        if count <= 0:
            return []
        start_match = self.format.start.match
        newest_first: list[tuple[str, list[_Hit]]] = []
        found = 0
        for path, limit in reversed(files):
            source = os.fspath(path)
            stream, seekable = open_log(path)
            with stream:
                if seekable:
                    for buf, begin in read_chunks_backwards(stream, start_match, limit):
                        batch = self._scan(buf, len(buf), begin=begin)
                        newest_first.append((source, batch))
                        found += len(batch)
                        if found >= count:
                            break
                else:
                    kept: collections.deque[_Hit] = collections.deque(maxlen=count)
                    for buf, end in read_chunks(stream, False, start_match):
                        kept.extend(self._scan(buf, end)[-count:])
                    newest_first.append((source, list(kept)))
                    found += len(kept)
            if found >= count:
                break
        return [(source, hit) for source, batch in reversed(newest_first) for hit in batch][-count:]

    def scan_raw(self, paths: LogPaths, *, rotated: bool = True) -> Iterator[bytes]:
        """Like :meth:`scan`, but each record as the raw bytes of its lines, newline included.

        Nothing is decoded: bytes that are not UTF-8 pass through unchanged.
        """
        for _, batch in self._batches(paths, rotated):
            for hit in batch:
                yield hit.raw

    def write(self, paths: LogPaths, out: IO[bytes], *, rotated: bool = True) -> int:
        """Copy the matching records, as they are in the files, to a binary stream.

        The fastest way to extract a job's log; what ``otel-jobtags logs`` does.

        Returns:
            The number of bytes written.
        """
        written = 0
        by_runs = self._run is not None
        for _, buf, end in self._buffers(paths, rotated):
            # One write a buffer: a write per record (or run) costs more than the copy.
            data = self._scan_runs(buf, end) if by_runs else b"".join(hit.raw for hit in self._scan(buf, end))
            if data:
                out.write(data)
                written += len(data)
        return written

    def follow(
        self,
        path: str | os.PathLike[str],
        *,
        history: int | None = None,
        rotated: bool = True,
        stop: Callable[[], bool] | None = None,
        poll_interval: float = 0.25,
    ) -> Iterator[LogEntry]:
        """The matching records of a log file as it grows, like ``tail -f``.

        Survives rotation: when the file is renamed away (``RotatingFileHandler``,
        logrotate's default) the rest of the old file is read, then the new file
        from its start; when it is truncated in place (``copytruncate``) reading
        starts over. A record is yielded once the next one starts or the file
        goes quiet.

        Args:
            path: the log file (it may not exist yet).
            history: how many of the records already written to yield first:
                ``None`` all of them (rotated generations included, unless
                ``rotated`` is false), ``0`` none, ``N`` the last N.
            rotated: include the rotated generations in the history.
            stop: called between reads; following ends when it returns true.
                Without it, following ends only when the generator is closed.
            poll_interval: seconds to wait when there is nothing new.
        """
        entry = self._entry
        source = os.fspath(path)
        for batch in self._follow_batches(path, history, rotated, stop, poll_interval):
            for hit in batch:
                yield entry(hit, source)

    def follow_raw(
        self,
        path: str | os.PathLike[str],
        *,
        history: int | None = None,
        rotated: bool = True,
        stop: Callable[[], bool] | None = None,
        poll_interval: float = 0.25,
    ) -> Iterator[bytes]:
        """Like :meth:`follow`, but each record as the raw bytes of its lines."""
        for batch in self._follow_batches(path, history, rotated, stop, poll_interval):
            for hit in batch:
                yield hit.raw

    def _follow_batches(
        self,
        path: str | os.PathLike[str],
        history: int | None,
        rotated: bool,
        stop: Callable[[], bool] | None,
        poll_interval: float,
    ) -> Iterator[list[_Hit]]:
        base = Path(path)
        tail = FileTail(base, self.format.start.match, from_end=history is not None)
        older = [p for p in rotated_files(base) if p != base] if rotated else []
        if history is None:  # everything: the generations, then the file from its start
            for _, batch in self._batches(older, rotated=False):
                yield batch
        elif history > 0:
            # The file is opened (at its end) first and its history read up to
            # that point, so no record is lost or doubled between the two.
            limit = tail.open()
            files: list[tuple[Path, int | None]] = [(p, None) for p in older]
            if limit is not None:
                files.append((base, limit))
            records = self._last(files, history)
            if records:
                yield [hit for _, hit in records]
        for item in tail.buffers(stop or (lambda: False), poll_interval):
            if item is not None:  # None: caught up with the writer
                batch = self._scan(item[0], item[1])
                if batch:
                    yield batch
