"""Read one job's records back from the text log file.

This is what an admin page calls (the seed's ``/admin/system`` log view): it
takes a job id or tag from a request, resolves it through the registry -- an
unknown value raises :class:`~otel_jobtags.UnknownJobError` listing the known
jobs before any file is opened or any query is built -- and returns
:class:`LogEntry` records.

The file side (:func:`read_job_logs`, :func:`follow_job_logs`,
:class:`LogFilter`) reads the text log the seed's format writes::

    2025-10-23 14:30:47,345 ERROR: [AUTO_REBAL] ❌ failed: upstream answered 503
    Traceback (most recent call last):
      ...

A record's continuation lines (tracebacks, multi-line messages) stay with it;
rotated files are read oldest first (``app.log.3``, ``app.log.2.gz``, ...,
``app.log``); memory stays flat whatever the file size. Lines are scanned as
bytes: the ``[TAG] `` prefix is searched for in large chunks and only the
lines around a hit are parsed, which keeps the filter within a small factor of
``grep -F`` (see ``docs/queries.md``).

The same selection against Loki is in :mod:`otel_jobtags.loki`.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import bz2
import collections
import contextlib
import gzip
import logging
import lzma
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import IO, Any, Final, cast

from ..context import active_registry
from ..errors import ConfigError, JobTagsError
from ..tags import JobTag, TagRegistry

__all__ = [
    "DEFAULT_LINE_FORMAT",
    "LineFormat",
    "LogEntry",
    "LogFilter",
    "follow_job_logs",
    "parse_level",
    "parse_time",
    "read_job_logs",
    "rotated_files",
]

DEFAULT_LINE_FORMAT: Final = "%(asctime)s %(levelname)s: %(message)s"
"""The seed's log line format, the one :func:`otel_jobtags.demo.run_demo` writes."""

_CHUNK = 8 << 20
"""Bytes read at a time: large enough that per-read overhead vanishes."""
_MAX_BUFFER = 4 * _CHUNK
"""A record (or line) longer than this is cut, so memory stays bounded."""

# --------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class LogEntry:
    """One job log record, from a file or from Loki.

    ``str(entry)`` renders it in the seed's format, continuation lines included.
    """

    time: datetime
    """When it was logged. From a file: the time as written (naive, the writer's
    local time, unless :class:`LineFormat` was given a ``tz``); from Loki: aware, UTC."""
    level: str
    """Level name as Python logging spells it, e.g. ``"WARNING"``."""
    tag: str
    """Tag name without brackets, e.g. ``"AUTO_REBAL"``."""
    message: str
    """The first line of the message, after the ``[TAG] `` prefix."""
    continuation: tuple[str, ...] = ()
    """The lines that follow the first one: a multi-line message, a traceback."""
    job_id: str | None = None
    """The scheduler's job id, when the registry knows the tag."""
    source: str = ""
    """Where it was read: a file path, or the Loki URL."""

    @property
    def levelno(self) -> int:
        """The numeric level (``logging.WARNING`` for ``"WARNING"``, 0 when unknown)."""
        return _levelno(self.level)

    @property
    def lines(self) -> list[str]:
        """The record's text lines: ``[TAG] message`` then the continuation lines."""
        return [f"[{self.tag}] {self.message}", *self.continuation]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``time`` in ISO 8601)."""
        return {
            "time": self.time.isoformat(),
            "level": self.level,
            "tag": self.tag,
            "job_id": self.job_id,
            "message": self.message,
            "continuation": list(self.continuation),
            "source": self.source,
        }

    def __str__(self) -> str:
        moment = self.time
        if moment.tzinfo is not None:
            moment = moment.astimezone().replace(tzinfo=None)
        stamp = f"{moment:%Y-%m-%d %H:%M:%S},{moment.microsecond // 1000:03d}"
        return "\n".join([f"{stamp} {self.level}: [{self.tag}] {self.message}", *self.continuation])


# --------------------------------------------------------------------------
# Levels and times


def _levelno(name: str) -> int:
    value = _LEVELS.get(name)
    if value is not None:
        return value
    registered = logging.getLevelName(name)  # custom levels added with addLevelName
    if isinstance(registered, int):
        return registered
    if name.startswith("Level ") and name[6:].isdigit():  # how logging names unnamed levels
        return int(name[6:])
    return 0


_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.CRITICAL,
}


def parse_level(level: int | str | None) -> int | None:
    """A minimum level as a number: a name (any case: ``"warning"``, ``"warn"``) or a number.

    Raises:
        ConfigError: not a level.
    """
    if level is None or isinstance(level, int):
        return level
    text = level.strip()
    if text.isdigit():
        return int(text)
    value = _LEVELS.get(text.upper())
    if value is None:
        registered = logging.getLevelName(text.upper())
        if isinstance(registered, int):
            return registered
        raise ConfigError(f"Invalid level {level!r}: use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number")
    return value


_RELATIVE_RE = re.compile(r"^(\d+)\s*(s|sec|m|min|h|d|w)$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time from text: ISO 8601, or a duration ago (``15m``, ``2h``, ``1d``).

    ``"2025-10-23"``, ``"2025-10-23 14:30"``, ``"2025-10-23T14:30:45+09:00"``;
    a time without an offset is local time. ``"90s"``, ``"15m"``, ``"2h"``,
    ``"1d"``, ``"1w"`` mean that long before ``now``. ``"now"`` is now.

    Raises:
        ConfigError: neither form.
    """
    value = text.strip()
    current = now if now is not None else datetime.now().astimezone()
    if value.lower() == "now":
        return current
    m = _RELATIVE_RE.match(value)
    if m:
        return current - timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    try:
        return datetime.fromisoformat(value.replace(",", "."))
    except ValueError:
        raise ConfigError(
            f"Invalid time {text!r}: use ISO 8601 ('2025-10-23', '2025-10-23 14:30:00', "
            "'2025-10-23T14:30:00+09:00') or a duration ago ('15m', '2h', '1d')"
        ) from None


def _as(moment: datetime, aware: bool) -> datetime:
    """``moment`` comparable with naive local (``aware=False``) or aware times."""
    if aware:
        return moment if moment.tzinfo is not None else moment.astimezone()
    return moment if moment.tzinfo is None else moment.astimezone().replace(tzinfo=None)


# --------------------------------------------------------------------------
# Line formats

# asctime as logging.Formatter writes it by default: "%Y-%m-%d %H:%M:%S,mmm".
_DEFAULT_ASCTIME = rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d\d\d"

_STRFTIME_PIECES = {
    "Y": r"\d{4}",
    "m": r"\d\d",
    "d": r"\d\d",
    "H": r"\d\d",
    "M": r"\d\d",
    "S": r"\d\d",
    "y": r"\d\d",
    "f": r"\d{6}",
    "j": r"\d{3}",
    "e": r"[ \d]\d",
    "I": r"\d\d",
    "p": r"[AP]M",
    "b": r"[A-Za-z]{3}",
    "a": r"[A-Za-z]{3}",
    "B": r"[A-Za-z]+",
    "A": r"[A-Za-z]+",
    "z": r"[+-]\d{4}",
    "Z": r"[A-Za-z][A-Za-z0-9+/_-]*",
    "%": "%",
}

_FIELD_RE = re.compile(
    r"%\((?P<key>\w+)\)(?P<flags>[-#0 +]*)(?P<width>\d*)(?:\.\d+)?(?P<conv>[diouxXeEfFgGcrsa%])"
)
_NUMERIC_FIELDS = {"msecs", "process", "thread", "lineno", "levelno", "relativeCreated", "created"}


def _datefmt_regex(datefmt: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(datefmt):
        c = datefmt[i]
        if c == "%" and i + 1 < len(datefmt):
            out.append(_STRFTIME_PIECES.get(datefmt[i + 1], r"[^\n]+?"))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


class LineFormat:
    """How a text log's lines are laid out, so records can be recognised.

    Build it from the ``logging`` format string the log was written with
    (``%(message)s`` must come last), or with :meth:`from_regex`. A line that
    matches the format's beginning (timestamp, level, ...) starts a record;
    any other line continues the record above it.

    Args:
        fmt: the ``logging.Formatter`` format string (``%``-style).
        datefmt: the formatter's ``datefmt``, if it had one.
        tz: the time zone the times were written in; records then carry aware
            times. By default times are naive, as written.

    Raises:
        ConfigError: the format cannot be used to find records.
    """

    def __init__(
        self, fmt: str = DEFAULT_LINE_FORMAT, *, datefmt: str | None = None, tz: tzinfo | None = None
    ):
        self.fmt = fmt
        self.datefmt = datefmt
        self.tz = tz
        if not fmt.endswith("%(message)s") or fmt.count("%(message)s") != 1:
            raise ConfigError(
                f"Invalid line format {fmt!r}: it must end with %(message)s (continuation "
                "lines follow the message); for other layouts use LineFormat.from_regex()"
            )
        head = fmt[: -len("%(message)s")]
        asctime = _datefmt_regex(datefmt).encode() if datefmt else _DEFAULT_ASCTIME
        pieces: list[bytes] = []
        plain: list[bytes] = []
        seen: set[str] = set()
        pos = 0
        for m in _FIELD_RE.finditer(head):
            literal = re.escape(head[pos : m.start()].replace("%%", "%")).encode()
            pieces.append(literal)
            plain.append(literal)
            pos = m.end()
            key, flags, width = m.group("key"), m.group("flags"), m.group("width")
            if key == "asctime":
                body = asctime
            elif key in _NUMERIC_FIELDS:
                body = rb"-?\d+(?:\.\d+)?"
            elif key == "levelname":
                body = rb"[^\n:]+"  # greedy is faster; no level name holds a colon
            else:
                body = rb"[^\n]*?"
            if key in ("asctime", "levelname", "msecs") and key not in seen:
                named = b"(?P<" + key.encode() + b">" + body + b")"
                seen.add(key)
            else:
                named = b"(?:" + body + b")"
            unnamed = b"(?:" + body + b")"
            if width and "-" in flags:
                named, unnamed = named + b" *", unnamed + b" *"
            elif width:
                named, unnamed = b" *" + named, b" *" + unnamed
            pieces.append(named)
            plain.append(unnamed)
        tail = re.escape(head[pos:].replace("%%", "%")).encode()
        pieces.append(tail)
        plain.append(tail)
        if not any(p.strip(b"\\ ") for p in plain):
            raise ConfigError(
                f"Invalid line format {fmt!r}: nothing comes before %(message)s, so a record's "
                "first line cannot be told from a continuation line; add %(asctime)s"
            )
        self._header: re.Pattern[bytes] = re.compile(b"".join(pieces))
        start = b"".join(plain)
        self._start_source: bytes | None = start
        self._start: re.Pattern[bytes] = re.compile(start)
        # From a [TAG] hit: the rest of its line and every following line that
        # does not start a record, in one regex call.
        self._rest: re.Pattern[bytes] | None = re.compile(rb"[^\n]*\n?(?:(?!" + start + rb")[^\n]*\n)*")
        self._line: re.Pattern[bytes] | None = None  # the pattern of a regex format
        self._fast_time = "asctime" in seen and datefmt is None
        self.has_time = "asctime" in seen
        self.has_level = "levelname" in seen
        self._has_msecs = "msecs" in seen

    @classmethod
    def from_regex(
        cls,
        pattern: str | bytes | re.Pattern[str] | re.Pattern[bytes],
        *,
        datefmt: str | None = None,
        tz: tzinfo | None = None,
    ) -> LineFormat:
        """A format given by a regular expression that matches a record's first line.

        The pattern must have a ``message`` group (where ``[TAG] `` appears) and
        may have ``time`` (or ``asctime``) and ``level`` (or ``levelname``)
        groups. A line it matches at its start begins a record. It runs on the
        raw bytes of the line (UTF-8). ``time`` is parsed with ``datefmt``, else
        as the default asctime or as ISO 8601.

        Raises:
            ConfigError: the pattern does not compile or has no ``message`` group.
        """
        source = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        flags = re.MULTILINE | (pattern.flags & ~re.UNICODE if isinstance(pattern, re.Pattern) else 0)
        raw = source.encode() if isinstance(source, str) else source
        try:
            compiled = re.compile(raw, flags)
        except re.error as exc:
            raise ConfigError(f"Invalid line regex {source!r}: {exc}") from None
        if "message" not in compiled.groupindex:
            raise ConfigError(f"Invalid line regex {source!r}: it needs a (?P<message>...) group")
        self = cls.__new__(cls)
        self.fmt = None
        self.datefmt = datefmt
        self.tz = tz
        self._header = compiled
        self._rest = None
        self._start_source = None
        self._start = compiled
        self._line = compiled
        names = compiled.groupindex
        self._fast_time = False
        self.has_time = "time" in names or "asctime" in names
        self.has_level = "level" in names or "levelname" in names
        self._has_msecs = "msecs" in names
        return self

    fmt: str | None
    """The logging format string, or ``None`` for a regex format."""

    def __repr__(self) -> str:
        if self.fmt is None:
            return f"LineFormat.from_regex({self._start.pattern!r})"
        return f"LineFormat({self.fmt!r}, datefmt={self.datefmt!r})"

    def _group(self, m: re.Match[bytes], *names: str) -> bytes | None:
        index = m.re.groupindex
        for name in names:
            if name in index:
                value = m.group(name)
                return value if isinstance(value, bytes) else None
        return None

    def _time(self, m: re.Match[bytes]) -> datetime:
        raw = self._group(m, "asctime", "time")
        if raw is None:
            return datetime.min
        try:
            if self._fast_time or (self.datefmt is None and len(raw) == 23 and raw[19:20] == b","):
                moment = datetime(
                    int(raw[0:4]), int(raw[5:7]), int(raw[8:10]), int(raw[11:13]), int(raw[14:16]),
                    int(raw[17:19]), int(raw[20:23]) * 1000, self.tz,
                )  # fmt: skip
            else:
                text = raw.decode("ascii", "replace")
                if self.datefmt:
                    moment = datetime.strptime(text, self.datefmt)
                else:
                    moment = datetime.fromisoformat(text.replace(",", "."))
                if self.tz is not None and moment.tzinfo is None:
                    moment = moment.replace(tzinfo=self.tz)
        except ValueError:  # digits in the right places, but no date (month 13): keep the record
            return datetime.min
        if self._has_msecs:
            msecs = self._group(m, "msecs")
            if msecs:
                moment = moment.replace(microsecond=int(float(msecs) * 1000))
        return moment

    def _level(self, m: re.Match[bytes]) -> str:
        raw = self._group(m, "levelname", "level")
        return raw.decode("utf-8", "replace").strip() if raw else ""


_DEFAULT_FORMAT = LineFormat()

# In the default format a record's header is 24 fixed-width characters (the
# asctime and a space), then a level without a colon, then ": ". So a line
# matching this, followed by a tag, is either a record of that tag or no record
# start at all: inside a run of one job's records it is cheaper than the full
# header and tells the same lines apart.
_DEFAULT_START: Final = _DEFAULT_FORMAT._start_source
_DEFAULT_INSIDE: Final = rb"[^\n]{24}[^\n:]+: "


def _line_format(value: LineFormat | str | re.Pattern[str] | re.Pattern[bytes] | None) -> LineFormat:
    if value is None:
        return _DEFAULT_FORMAT
    if isinstance(value, LineFormat):
        return value
    if isinstance(value, re.Pattern):
        return LineFormat.from_regex(value)
    return LineFormat(value)


# --------------------------------------------------------------------------
# Files


_NUMBERED_RE = re.compile(r"^\.(\d+)(\.gz|\.bz2|\.xz)?$")
_DATED_RE = re.compile(r"^[.-](\d{4}-?\d\d-?\d\d(?:[_T-]?\d\d(?:-?\d\d(?:-?\d\d)?)?)?)(\.gz|\.bz2|\.xz)?$")


def rotated_files(path: str | os.PathLike[str]) -> list[Path]:
    """The rotated generations of a log file and the file itself, oldest first.

    Recognises the names :class:`logging.handlers.RotatingFileHandler`
    (``app.log.1``), :class:`~logging.handlers.TimedRotatingFileHandler`
    (``app.log.2025-10-23``, ``app.log.2025-10-23_14-30``) and logrotate
    (``app.log.1``, ``app.log.2.gz``, ``app.log-20251023.gz``) give them,
    compressed with gzip, bzip2 or xz or not. Dated generations come first
    (by date), then numbered ones (highest number first), then ``path``.
    Missing ``path`` is left out; an empty list means nothing exists.
    """
    base = Path(path)
    folder = base.parent
    dated: list[tuple[str, Path]] = []
    numbered: list[tuple[int, Path]] = []
    try:
        names = os.listdir(folder if str(folder) else ".")
    except FileNotFoundError:
        names = []
    for name in names:
        if not name.startswith(base.name) or name == base.name:
            continue
        suffix = name[len(base.name) :]
        if m := _NUMBERED_RE.match(suffix):
            numbered.append((int(m.group(1)), folder / name))
        elif m := _DATED_RE.match(suffix):
            dated.append((m.group(1).replace("-", "").replace("_", "").replace("T", ""), folder / name))
    ordered = [p for _, p in sorted(dated)] + [p for _, p in sorted(numbered, reverse=True)]
    if base.exists():
        ordered.append(base)
    return ordered


def _open(path: Path) -> tuple[IO[bytes], bool]:
    """The file as a byte stream (closed by the caller), and whether it can be seeked cheaply."""
    stream: IO[bytes]
    if path.suffix == ".gz":
        stream = cast(IO[bytes], gzip.open(path, "rb"))  # noqa: SIM115
    elif path.suffix == ".bz2":
        stream = cast(IO[bytes], bz2.open(path, "rb"))  # noqa: SIM115
    elif path.suffix == ".xz":
        stream = cast(IO[bytes], lzma.open(path, "rb"))  # noqa: SIM115
    else:
        return open(path, "rb", buffering=0), True
    return stream, False


_StartMatch = Callable[[bytes, int], "re.Match[bytes] | None"]


def _last_record_start(buf: bytes, start_match: _StartMatch) -> int:
    """The offset of the last line of ``buf`` that starts a record; 0 if no line but the first does."""
    i = buf.rfind(b"\n", 0, len(buf) - 1) + 1
    while i > 0:
        if start_match(buf, i) is not None:
            return i
        i = buf.rfind(b"\n", 0, i - 1) + 1
    return 0


def _chunks(stream: IO[bytes], seekable: bool, start_match: _StartMatch) -> Iterator[tuple[bytes, int]]:
    """Split a stream into ``(buffer, end)`` where ``buffer[:end]`` holds whole records.

    A buffer ends where its last record starts, so a record never straddles two
    buffers and continuation lines need no state between them. A plain file is
    seeked back to that start rather than the rest copied into the next buffer.
    A record (or line) longer than ``_MAX_BUFFER`` is cut, keeping memory bounded.
    """
    carry = b""
    while True:
        data = stream.read(_CHUNK)
        if not data:
            if carry:
                if not carry.endswith(b"\n"):
                    carry += b"\n"
                yield carry, len(carry)
            return
        buf = carry + data if carry else data
        cut = _last_record_start(buf, start_match)
        if cut == 0:
            if len(buf) < _MAX_BUFFER:
                carry = buf  # a single record so far: read on
                continue
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                buf += b"\n"
                cut = len(buf)
        yield buf, cut
        if seekable:
            stream.seek(cut - len(buf), os.SEEK_CUR)
            carry = b""
        else:
            carry = buf[cut:]


def _chunks_backwards(
    stream: IO[bytes], start_match: _StartMatch, limit: int | None = None
) -> Iterator[tuple[bytes, int]]:
    """``(buffer, begin)`` where ``buffer[begin:]`` holds whole records, from the end of a file back.

    ``limit``: read only the bytes before this offset (the end of the file by default).
    """
    high = stream.seek(0, os.SEEK_END) if limit is None else limit  # everything from `high` on is done
    size = _CHUNK
    at_end = True
    while high > 0:
        low = max(0, high - size)
        stream.seek(low)
        buf = stream.read(high - low)
        if at_end and not buf.endswith(b"\n"):
            buf += b"\n"  # a last line still being written
        first = 0
        if low > 0:
            # The block may begin inside a record: start at its first record start.
            first = buf.find(b"\n") + 1
            while 0 < first < len(buf) and start_match(buf, first) is None:
                first = buf.find(b"\n", first) + 1
            if first <= 0 or first >= len(buf):
                if size < _MAX_BUFFER:
                    size *= 2  # one record longer than the block: take a bigger one
                    continue
                first = buf.find(b"\n") + 1  # a record longer than the limit is cut
        yield buf, first
        high = low + first
        size = _CHUNK
        at_end = False


# --------------------------------------------------------------------------
# The filter


@dataclass(frozen=True)
class _Selection:
    tag: JobTag | None
    min_level: int | None
    since: datetime | None
    until: datetime | None
    contains: str | None
    ignore_case: bool


_Paths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


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
        self.registry = _registry(registry)
        tag = self.registry.resolve(job) if job is not None else None
        self.format = _line_format(line_format)
        min_level = parse_level(level)
        if min_level is not None and not self.format.has_level:
            raise ConfigError(f"Cannot filter by level: the line format {self.format!r} has no level")
        if (since is not None or until is not None) and not self.format.has_time:
            raise ConfigError(f"Cannot filter by time: the line format {self.format!r} has no time")
        aware = self.format.tz is not None
        self.selection = _Selection(
            tag=tag,
            min_level=min_level,
            since=_as(since, aware) if since is not None else None,
            until=_as(until, aware) if until is not None else None,
            contains=contains or None,
            ignore_case=ignore_case,
        )
        fmt, sel = self.format, self.selection
        self._needle = tag.prefix.encode() if tag is not None else None
        names = "|".join(re.escape(t.name) for t in sorted(self.registry, key=lambda t: -len(t.name)))
        self._any_tag = re.compile(rb"\[(" + (names.encode() or rb"(?!)") + rb")\] ")
        self._levels: dict[bytes, bool] = {}
        self._since_b = self._until_b = None
        if fmt._fast_time and not fmt._has_msecs and fmt.tz is None:
            # The default asctime sorts as text: compare bytes, parse nothing.
            self._since_b = _asctime_bytes(sel.since) if sel.since is not None else None
            self._until_b = _asctime_bytes(sel.until) if sel.until is not None else None
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
        if tag is not None and plain and fmt._start_source is not None:
            start, lead = fmt._start_source, re.escape(tag.prefix.encode())
            inside = (_DEFAULT_INSIDE if start == _DEFAULT_START else start) + lead
            self._run = re.compile(
                start + lead + rb"[^\n]*\n(?:(?:" + inside + rb"|(?!" + start + rb"))[^\n]*\n)*"
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
            levelno = _levelno(raw.decode("utf-8", "replace").strip())
            ok = self._levels[raw] = levelno >= (self.selection.min_level or 0)
        return ok

    def _time_ok(self, header: re.Match[bytes], stamp: bytes | None) -> bool:
        if self._bytes_times:
            if stamp is None:
                return False
            if self._since_b is not None and stamp < self._since_b:
                return False
            return not (self._until_b is not None and stamp >= self._until_b)
        moment = self.format._time(header)
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

    def _scan(self, buf: bytes, end: int, raw_only: bool, begin: int = 0) -> list[Any]:
        """The matching records of ``buf[begin:end]``, which holds whole records.

        Each is the raw bytes of its lines (newline included) when ``raw_only``,
        else ``(raw, header match, tag, offset of the tag in raw)``. The loop is
        the hot path: it looks for the ``[TAG] `` bytes, and parses only the
        line around a hit and the lines after it that do not start a record.
        """
        out: list[Any] = []
        append = out.append
        fmt = self.format
        find, rfind = buf.find, buf.rfind
        rest_match = fmt._rest.match if fmt._rest is not None else None
        header_fullmatch = fmt._header.fullmatch
        header_match = fmt._header.match
        groups = fmt._header.groupindex
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
            # Records are copied out of the buffer: nothing kept may pin an 8 MiB buffer.
            append(buf[line_start:nxt] if raw_only else (buf[line_start:nxt], tag, p - line_start))
        return out

    def _continuation_end(self, buf: bytes, pos: int, end: int) -> int:
        """The offset of the first line at or after ``pos`` that starts a record (or ``end``)."""
        start_match = self.format._start.match
        while pos < end and start_match(buf, pos, end) is None:
            pos = buf.find(b"\n", pos, end) + 1 or end
        return pos

    def _entry(self, raw: bytes, tag: JobTag, offset: int, source: str) -> LogEntry:
        """A :class:`LogEntry` from a matched record's bytes; ``offset`` is where its tag starts."""
        fmt = self.format
        if fmt._line is None:
            header = fmt._header.fullmatch(raw, 0, offset)
        else:
            header = fmt._header.match(raw, 0, (raw.find(b"\n") + 1 or len(raw) + 1) - 1)
        assert header is not None  # it matched when the record was selected
        lines = raw.decode("utf-8", "replace").split("\n")
        if lines[-1] == "":
            lines.pop()
        skip = (offset if raw.isascii() else len(raw[:offset].decode("utf-8", "replace"))) + len(tag.prefix)
        return LogEntry(
            time=fmt._time(header),
            level=fmt._level(header),
            tag=tag.name,
            message=lines[0][skip:].rstrip("\r"),
            continuation=tuple(line.rstrip("\r") for line in lines[1:]) if len(lines) > 1 else (),
            job_id=tag.job_id,
            source=source,
        )

    def _scan_runs(self, buf: bytes, end: int) -> bytes:
        """The bytes ``_scan(raw_only=True)`` would select from ``buf[:end]``, joined.

        ``buf[:end]`` ends with a newline, as :func:`_chunks` cuts it. For
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

    def _buffers(self, paths: _Paths, rotated: bool) -> Iterator[tuple[str, bytes, int]]:
        """``(source, buffer, end)`` for each file in turn, ``buffer[:end]`` whole records."""
        start_match = self.format._start.match
        for path in self._paths(paths, rotated):
            source = os.fspath(path)
            stream, seekable = _open(path)
            with stream:
                for buf, end in _chunks(stream, seekable, start_match):
                    yield source, buf, end

    def _batches(self, paths: _Paths, rotated: bool, raw_only: bool) -> Iterator[tuple[str, list[Any]]]:
        for source, buf, end in self._buffers(paths, rotated):
            out = self._scan(buf, end, raw_only)
            if out:
                yield source, out

    def _paths(self, paths: _Paths, rotated: bool) -> list[Path]:
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        ordered: list[Path] = []
        for path in paths:
            found = rotated_files(path) if rotated else [p for p in [Path(path)] if p.exists()]
            if not found:
                raise JobTagsError(f"No such log file: {os.fspath(path)!r}")
            for p in found:
                if p not in ordered:
                    ordered.append(p)
        return ordered

    # -- public -----------------------------------------------------------

    def scan(self, paths: _Paths, *, rotated: bool = True) -> Iterator[LogEntry]:
        """The matching records of the files, oldest first, as :class:`LogEntry`.

        Args:
            paths: one log file or several; each stands for its rotated
                generations too (see :func:`rotated_files`) unless ``rotated`` is false.
            rotated: read the rotated generations.

        Raises:
            JobTagsError: a file does not exist.
        """
        entry = self._entry
        for source, batch in self._batches(paths, rotated, raw_only=False):
            for raw, tag, offset in batch:
                yield entry(raw, tag, offset, source)

    def last(self, paths: _Paths, count: int, *, rotated: bool = True) -> list[LogEntry]:
        """The last ``count`` matching records (the most recent), oldest first.

        Plain files are read backwards from their end, so this costs what the
        records cost, not what the file does (compressed ones are read
        through), and only these records become :class:`LogEntry` objects:
        the way to show a frequent job's recent logs.
        """
        files = [(path, None) for path in self._paths(paths, rotated)]
        return [
            self._entry(raw, tag, offset, source) for source, raw, tag, offset in self._last(files, count)
        ]

    def last_raw(self, paths: _Paths, count: int, *, rotated: bool = True) -> list[bytes]:
        """Like :meth:`last`, but each record as the raw bytes of its lines."""
        files = [(path, None) for path in self._paths(paths, rotated)]
        return [raw for _, raw, _, _ in self._last(files, count)]

    def _last(
        self, files: Sequence[tuple[Path, int | None]], count: int
    ) -> list[tuple[str, bytes, JobTag, int]]:
        """The last ``count`` records of ``files`` (oldest first), each read up to its byte limit."""
        if count <= 0:
            return []
        start_match = self.format._start.match
        newest_first: list[tuple[str, list[tuple[bytes, JobTag, int]]]] = []
        found = 0
        for path, limit in reversed(files):
            source = os.fspath(path)
            stream, seekable = _open(path)
            with stream:
                if seekable:
                    for buf, begin in _chunks_backwards(stream, start_match, limit):
                        batch = self._scan(buf, len(buf), raw_only=False, begin=begin)
                        newest_first.append((source, batch))
                        found += len(batch)
                        if found >= count:
                            break
                else:
                    kept: collections.deque[tuple[bytes, JobTag, int]] = collections.deque(maxlen=count)
                    for buf, end in _chunks(stream, False, start_match):
                        kept.extend(self._scan(buf, end, raw_only=False)[-count:])
                    newest_first.append((source, list(kept)))
                    found += len(kept)
            if found >= count:
                break
        return [(source, *item) for source, batch in reversed(newest_first) for item in batch][-count:]

    def scan_raw(self, paths: _Paths, *, rotated: bool = True) -> Iterator[bytes]:
        """Like :meth:`scan`, but each record as the raw bytes of its lines, newline included.

        Nothing is decoded: bytes that are not UTF-8 pass through unchanged.
        """
        for _, batch in self._batches(paths, rotated, raw_only=True):
            yield from batch

    def write(self, paths: _Paths, out: IO[bytes], *, rotated: bool = True) -> int:
        """Copy the matching records, as they are in the files, to a binary stream.

        The fastest way to extract a job's log; what ``otel-jobtags logs`` does.

        Returns:
            The number of bytes written.
        """
        written = 0
        by_runs = self._run is not None
        for _, buf, end in self._buffers(paths, rotated):
            # One write a buffer: a write per record (or run) costs more than the copy.
            data = self._scan_runs(buf, end) if by_runs else b"".join(self._scan(buf, end, raw_only=True))
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
        for batch in self._follow_batches(path, history, rotated, stop, poll_interval, raw_only=False):
            for raw, tag, offset in batch:
                yield entry(raw, tag, offset, source)

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
        for batch in self._follow_batches(path, history, rotated, stop, poll_interval, raw_only=True):
            yield from batch

    def _follow_batches(
        self,
        path: str | os.PathLike[str],
        history: int | None,
        rotated: bool,
        stop: Callable[[], bool] | None,
        poll_interval: float,
        raw_only: bool,
    ) -> Iterator[list[Any]]:
        base = Path(path)
        tail = _Tail(base, self.format._start.match, from_end=history is not None)
        older = [p for p in rotated_files(base) if p != base] if rotated else []
        if history is None:  # everything: the generations, then the file from its start
            for _, batch in self._batches(older, rotated=False, raw_only=raw_only):
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
                yield [raw if raw_only else (raw, tag, offset) for _, raw, tag, offset in records]
        for item in tail.buffers(stop or (lambda: False), poll_interval):
            if item is not None:  # None: caught up with the writer
                batch = self._scan(item[0], item[1], raw_only)
                if batch:
                    yield batch


class _Tail:
    """Reads a growing log file, following it across rotation and truncation."""

    def __init__(self, path: Path, start_match: _StartMatch, *, from_end: bool) -> None:
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
                data = self.stream.read(_CHUNK) if self.stream is not None else b""
                if data:
                    buf = carry + data if carry else data
                    cut = _last_record_start(buf, self.start_match)
                    if cut == 0 and len(buf) >= _MAX_BUFFER:
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
                            stream, seekable = _open(older)
                            with stream:
                                yield from _chunks(stream, seekable, self.start_match)
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


def read_job_logs(
    paths: _Paths,
    job: JobTag | str | None,
    *,
    registry: TagRegistry | None = None,
    level: int | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    contains: str | None = None,
    ignore_case: bool = False,
    limit: int | None = None,
    line_format: LineFormat | str | re.Pattern[str] | re.Pattern[bytes] | None = None,
    rotated: bool = True,
) -> list[LogEntry]:
    """A job's records from a text log and its rotated generations, oldest first.

    What an admin page calls with a request's ``job_id``::

        entries = read_job_logs("app.log", request.args["job_id"], registry=JOBS,
                                level="WARNING", limit=200)

    Args:
        paths: the log file(s).
        job: job id, tag name or tag; ``None`` for every registered job.
        registry: where ``job`` is looked up; by default the active registry.
        level: minimum level.
        since: records at or after this time (naive: local time).
        until: records before this time.
        contains: text the record must contain.
        ignore_case: match ``contains`` ignoring case.
        limit: keep only the last ``limit`` records (the most recent).
        line_format: see :class:`LogFilter`.
        rotated: read the rotated generations too.

    Raises:
        UnknownJobError: ``job`` is not in the registry; nothing has been read.
        JobTagsError: a file does not exist.
    """
    selection = LogFilter(
        job,
        registry=registry,
        level=level,
        since=since,
        until=until,
        contains=contains,
        ignore_case=ignore_case,
        line_format=line_format,
    )
    if limit is None:
        return list(selection.scan(paths, rotated=rotated))
    return selection.last(paths, limit, rotated=rotated)


def follow_job_logs(
    path: str | os.PathLike[str],
    job: JobTag | str | None,
    *,
    registry: TagRegistry | None = None,
    level: int | str | None = None,
    contains: str | None = None,
    ignore_case: bool = False,
    history: int | None = 10,
    stop: Callable[[], bool] | None = None,
    poll_interval: float = 0.25,
    line_format: LineFormat | str | re.Pattern[str] | re.Pattern[bytes] | None = None,
) -> Iterator[LogEntry]:
    """Follow a job's records as the log grows (``tail -f`` for one job).

    Yields the last ``history`` records already written (``None``: all), then
    new ones as they come, across rotation. See :meth:`LogFilter.follow`.

    Raises:
        UnknownJobError: ``job`` is not in the registry; nothing has been read.
    """
    selection = LogFilter(
        job,
        registry=registry,
        level=level,
        contains=contains,
        ignore_case=ignore_case,
        line_format=line_format,
    )
    return selection.follow(path, history=history, stop=stop, poll_interval=poll_interval)


def _asctime_bytes(moment: datetime) -> bytes:
    """``moment`` as the default asctime text, rounded up to the millisecond."""
    if moment.microsecond % 1000:
        moment += timedelta(microseconds=1000 - moment.microsecond % 1000)
    if not 1000 <= moment.year <= 9999:
        return b"0000" if moment.year < 1000 else b"9999~"
    return f"{moment:%Y-%m-%d %H:%M:%S},{moment.microsecond // 1000:03d}".encode()


def _registry(registry: TagRegistry | None) -> TagRegistry:
    if registry is not None:
        return registry
    active = active_registry()
    if active is None:
        raise ConfigError(
            "No tag registry to resolve jobs against: pass registry=..., or call "
            "otel_jobtags.install(registry=...) or otel_jobtags.use_registry(...)"
        )
    return active
