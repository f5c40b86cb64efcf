"""Line formats: how a text log's lines are laid out, so records can be recognised."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Final

from ..errors import ConfigError

__all__ = [
    "CONTINUATION_MARK",
    "DEFAULT_FORMAT",
    "DEFAULT_INSIDE",
    "DEFAULT_LINE_FORMAT",
    "DEFAULT_START",
    "LineFormat",
    "as_line_format",
    "later_header_tag",
    "tag_finder",
]


DEFAULT_LINE_FORMAT: Final = "%(asctime)s %(levelname)s: %(message)s"
"""The default log line format, the one :func:`otel_jobtags.demo.run_demo` writes."""


CONTINUATION_MARK: Final = "  | "
"""What :class:`~otel_jobtags.JobTagFormatter` puts before each line after a
record's first (a multi-line message, a traceback).

A line that starts with it never starts a record, so a message cannot forge a
record of another job by holding a newline and a header; the reader drops it
from :attr:`LogEntry.continuation`.
"""

# Date directives that write digits first.
_DIGIT_DIRECTIVES: Final = ("%Y", "%m", "%d", "%H", "%y", "%j", "%I", "%M", "%S")

# A line starting with the mark is never a record's first line.
_UNMARKED: Final = b"(?!" + re.escape(CONTINUATION_MARK.encode()) + b")"


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
    r"%\((?P<key>[\w.]+)\)(?P<flags>[-#0 +]*)(?P<width>\d*)(?:\.\d+)?(?P<conv>[diouxXeEfFgGcrsa%])"
)
# Every field of a header has a bounded width, so that the work of matching a
# line's header -- which the reader does at every line start -- is bounded by
# the format, never by the line's length. A text field (a logger name, a thread
# name) matched with an unbounded lazy `[^\n]*?` next to a level's `[^\n:]+`
# made a long line of words cost O(n²): 4.8 s for 80 KB. Text fields can hold
# spaces ("Thread-1 (worker)"), so where one ends is found by trying its
# lengths: with several of them the tries multiply, hence a smaller bound each.
# A value longer than its bound is not recognised as a header.
_TEXT_FIELD_MAX: Final = {1: 512, 2: 256, 3: 64}
"""The longest text field (``%(name)s``, ``%(threadName)s``, ...) by how many the format has."""
_TEXT_FIELD_MIN: Final = 32
"""... and with four or more."""
_FIELD_MAX: Final = 32
"""The longest text a date format's unknown directive stands for."""
_LEVEL_MAX: Final = 64
"""The longest level name a header may hold (``logging.addLevelName`` allows any)."""
_NUMBER_MAX: Final = 32

_NUMERIC_FIELDS = {"msecs", "process", "thread", "lineno", "levelno", "relativeCreated", "created"}


def _datefmt_regex(datefmt: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(datefmt):
        c = datefmt[i]
        if c == "%" and i + 1 < len(datefmt):
            out.append(_STRFTIME_PIECES.get(datefmt[i + 1], rf"[^\n]{{1,{_FIELD_MAX}}}?"))
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
        texts = sum(
            1
            for m in _FIELD_RE.finditer(head)
            if m.group("key") not in ("asctime", "levelname") and m.group("key") not in _NUMERIC_FIELDS
        )
        text_max = _TEXT_FIELD_MAX.get(texts, _TEXT_FIELD_MIN)
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
                body = rb"-?\d{1,%d}(?:\.\d{1,%d})?" % (_NUMBER_MAX, _NUMBER_MAX)
            elif key == "levelname":
                body = rb"[^\n:]{1,%d}" % _LEVEL_MAX  # greedy is faster; no level name holds a colon
            else:
                body = rb"[^\n]{0,%d}?" % text_max
            if key in ("asctime", "levelname", "msecs") and key not in seen:
                named = b"(?P<" + key.encode() + b">" + body + b")"
                seen.add(key)
            else:
                named = b"(?:" + body + b")"
            unnamed = b"(?:" + body + b")"
            # Padding is at most `width` spaces.
            pad = b" {0,%d}" % int(width) if width else b""
            if width and "-" in flags:
                named, unnamed = named + pad, unnamed + pad
            elif width:
                named, unnamed = pad + named, pad + unnamed
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
        # A line that starts with digits cannot be a marked one: no need to look.
        digits_first = fmt.startswith("%(asctime)s") and (datefmt is None or datefmt[:2] in _DIGIT_DIRECTIVES)
        lead = b"" if digits_first else _UNMARKED
        self.header: re.Pattern[bytes] = re.compile(lead + b"".join(pieces))
        """Matches a record's first line from its start up to where the message begins
        (with a regex format: the whole line, the ``message`` group included)."""
        self.start: re.Pattern[bytes] = re.compile(lead + b"".join(plain))
        """Matches at the start of a line that starts a record (no groups)."""
        self.has_time = "asctime" in seen
        self.has_level = "levelname" in seen
        self._has_msecs = "msecs" in seen
        self.sortable_time = self.has_time and datefmt is None and not self._has_msecs and tz is None
        """The header's time is the default asctime and nothing else: its bytes sort as the times do."""
        self._fast_time = self.has_time and datefmt is None

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
        self.header = compiled
        self.start = compiled
        names = compiled.groupindex
        self.has_time = "time" in names or "asctime" in names
        self.has_level = "level" in names or "levelname" in names
        self._has_msecs = "msecs" in names
        self.sortable_time = False
        self._fast_time = False
        return self

    fmt: str | None
    """The logging format string, or ``None`` for a regex format."""
    has_time: bool
    """Records carry their time (``%(asctime)s``, or a ``time`` group)."""
    has_level: bool
    """Records carry their level (``%(levelname)s``, or a ``level`` group)."""

    def __repr__(self) -> str:
        if self.fmt is None:
            return f"LineFormat.from_regex({self.start.pattern!r})"
        return f"LineFormat({self.fmt!r}, datefmt={self.datefmt!r})"

    def _group(self, m: re.Match[bytes], *names: str) -> bytes | None:
        index = m.re.groupindex
        for name in names:
            if name in index:
                value = m.group(name)
                return value if isinstance(value, bytes) else None
        return None

    def time_of(self, m: re.Match[bytes]) -> datetime:
        """The time in a :attr:`header` match (``datetime.min`` when it holds none or no date)."""
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

    def level_of(self, m: re.Match[bytes]) -> str:
        """The level name in a :attr:`header` match (``""`` when it holds none)."""
        raw = self._group(m, "levelname", "level")
        return raw.decode("utf-8", "replace").strip() if raw else ""


DEFAULT_FORMAT = LineFormat()

# In the default format a record's header is 24 fixed-width characters (the
# asctime and a space), then a level without a colon, then ": ". So a line
# matching this, followed by a tag, is either a record of that tag or no record
# start at all: inside a run of one job's records it is cheaper than the full
# header and tells the same lines apart.
DEFAULT_START: Final = DEFAULT_FORMAT.start.pattern
DEFAULT_INSIDE: Final = rb"[^\n]{24}[^\n:]{1,%d}: " % _LEVEL_MAX


def as_line_format(value: LineFormat | str | re.Pattern[str] | re.Pattern[bytes] | None) -> LineFormat:
    if value is None:
        return DEFAULT_FORMAT
    if isinstance(value, LineFormat):
        return value
    if isinstance(value, re.Pattern):
        return LineFormat.from_regex(value)
    return LineFormat(value)


TagFinder = Callable[[bytes, int, int], int]
"""Where the next ``[TAG] `` starts in ``buf[start:stop]``, or -1."""


def tag_finder(needle: bytes | None, any_tag: re.Pattern[bytes]) -> TagFinder:
    """Find one job's ``needle`` (``b"[TAG] "``), or with none any registered tag."""
    if needle is not None:
        return lambda buf, start, stop: buf.find(needle, start, stop)

    def find_any(buf: bytes, start: int, stop: int) -> int:
        found = any_tag.search(buf, start, stop)
        return found.start() if found is not None else -1

    return find_any


def later_header_tag(
    buf: bytes,
    p: int,
    end: int,
    line_start: int,
    header_fullmatch: Callable[[bytes, int, int], re.Match[bytes] | None],
    find_tag: TagFinder,
) -> tuple[int, re.Match[bytes] | None]:
    """A later ``[TAG] `` on the line of the one at ``p`` that a header precedes, if any.

    A format may write the tag before the message too (``"[%(job.tag)s] "``):
    the first hit is then in the header, and the message's own tag follows.
    Returns its position and the header's match, or ``(-1, None)``.
    """
    line_end = buf.find(b"\n", p, end)
    line_end = end if line_end < 0 else line_end
    while (p := find_tag(buf, p + 1, line_end)) >= 0:
        header = header_fullmatch(buf, line_start, p)
        if header is not None:
            return p, header
    return -1, None
