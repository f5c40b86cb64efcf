"""Query parameters of the view and the API, checked: a bad one is a 400 with the fix in the message."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

from ..errors import StoreQueryError
from ..store import severity_number_of

__all__ = [
    "MAX_LIMIT",
    "MAX_WINDOW",
    "Query",
    "RecordFilter",
    "parse_duration",
    "parse_moment",
    "record_filter",
]

MAX_LIMIT = 1000
"""The most records one request returns."""
MAX_WINDOW = timedelta(days=31)
"""The longest window the overview and the charts cover."""
MIN_WINDOW = timedelta(minutes=1)
MAX_TEXT = 200
_TAG_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_RUN_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_DURATION_RE = re.compile(r"(\d{1,6})\s*(s|sec|m|min|h|d|w)", re.IGNORECASE)
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


class Query:
    """The query string of one request: one value per name, names checked against what a page takes."""

    def __init__(self, query_string: str, allowed: Collection[str]) -> None:
        try:
            values = parse_qs(query_string, keep_blank_values=True, strict_parsing=False, errors="strict")
        except UnicodeDecodeError:
            raise StoreQueryError("Invalid query string: it is not UTF-8 text") from None
        for name, given in values.items():
            if name not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise StoreQueryError(f"Unknown parameter {name!r}: this page takes {known}")
            if len(given) > 1:
                raise StoreQueryError(f"Parameter {name!r} is given {len(given)} times: give it once")
        self._values: Mapping[str, str] = {name: given[0].strip() for name, given in values.items()}

    def get(self, name: str) -> str | None:
        """The parameter's value, ``None`` when absent or empty."""
        return self._values.get(name) or None


def parse_duration(name: str, text: str) -> timedelta:
    """A length of time: ``90s``, ``15m``, ``2h``, ``1d``, ``1w``.

    Raises:
        StoreQueryError: not such a duration.
    """
    m = _DURATION_RE.fullmatch(text)
    if not m:
        raise StoreQueryError(f"Invalid {name}={text!r}: give a duration such as '15m', '1h', '24h' or '7d'")
    return timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2).lower()])


def parse_moment(name: str, text: str, now: datetime) -> datetime:
    """A point in time: a duration before ``now`` (``1h``), ``now``, or ISO 8601 (UTC unless it says).

    Raises:
        StoreQueryError: neither form.
    """
    if text.lower() == "now":
        return now
    if _DURATION_RE.fullmatch(text):
        return now - parse_duration(name, text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StoreQueryError(
            f"Invalid {name}={text!r}: give a duration before now ('15m', '2h', '1d') or an ISO 8601 "
            "time ('2026-11-30T14:30:00Z'; a time without an offset is UTC)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def window(query: Query, default: timedelta) -> timedelta:
    """The ``window`` parameter, between 1 minute and :data:`MAX_WINDOW`."""
    text = query.get("window")
    value = default if text is None else parse_duration("window", text)
    if not MIN_WINDOW <= value <= MAX_WINDOW:
        raise StoreQueryError(f"Invalid window={text!r}: give a duration from 1m to {MAX_WINDOW.days}d")
    return value


def job_tag(value: str) -> str:
    """A job tag as the store keys it (``AUTO_REBAL``)."""
    if not _TAG_RE.fullmatch(value):
        raise StoreQueryError(
            f"Invalid job tag {value[:80]!r}: give a tag such as 'AUTO_REBAL' "
            "(letters, digits, '_', '.', ':', '-'; at most 64)"
        )
    return value


@dataclass(frozen=True)
class RecordFilter:
    """What a request asks of the records: the store's filters, checked."""

    job_tag: str | None
    min_severity: int | None
    level: str | None
    since: datetime
    until: datetime | None
    text: str | None
    run_id: str | None
    limit: int
    cursor: str | None
    after_id: int | None


def _int(name: str, text: str | None, default: int | None, low: int, high: int) -> int | None:
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise StoreQueryError(f"Invalid {name}={text[:40]!r}: give a whole number from {low} to {high}")
    return int(text)


def record_filter(
    query: Query,
    now: datetime,
    *,
    job: str | None,
    default_since: timedelta,
    default_limit: int,
    names: Mapping[str, str],
) -> RecordFilter:
    """The record filter a request gives; ``names`` maps each filter to its parameter's name.

    ``job`` is the job tag from the path, if any (else the ``job_tag`` parameter is read).

    Raises:
        StoreQueryError: a value is invalid; the message names it and what to give.
    """
    tag = job if job is not None else query.get(names["job_tag"])
    level = query.get(names["level"])
    min_severity = None if level is None else severity_number_of(level)
    since_text, until_text = query.get("since"), query.get("until")
    since = now - default_since if since_text is None else parse_moment("since", since_text, now)
    until = None if until_text is None else parse_moment("until", until_text, now)
    if until is not None and until <= since:
        raise StoreQueryError(f"Invalid time range: until={until_text!r} is not after since={since_text!r}")
    if (until or now) - since > MAX_WINDOW:
        raise StoreQueryError(f"Invalid since={since_text!r}: the range spans at most {MAX_WINDOW.days} days")
    text = query.get(names["text"])
    if text is not None and len(text) > MAX_TEXT:
        raise StoreQueryError(f"Invalid {names['text']}: at most {MAX_TEXT} characters, not {len(text)}")
    run_id = query.get(names["run_id"])
    if run_id is not None and not _RUN_ID_RE.fullmatch(run_id):
        raise StoreQueryError(f"Invalid {names['run_id']}={run_id[:80]!r}: give a run id as records carry it")
    cursor = query.get("cursor")
    if cursor is not None and len(cursor) > 200:
        raise StoreQueryError("Invalid cursor: give the next_cursor of a previous answer")
    limit = _int("limit", query.get("limit"), default_limit, 1, MAX_LIMIT)
    assert limit is not None
    return RecordFilter(
        job_tag=None if tag is None else job_tag(tag),
        min_severity=min_severity,
        level=level.upper() if level else None,
        since=since,
        until=until,
        text=text,
        run_id=run_id,
        limit=limit,
        cursor=cursor,
        after_id=_int("after_id", query.get("after_id"), None, 0, 2**62),
    )
