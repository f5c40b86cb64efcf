"""Reading the store of a running ``otel-jobtags serve`` over its JSON API.

:class:`StoreClient` is to ``serve`` what :class:`~otel_jobtags.LokiClient`
is to Loki: the same selection (job, level, text, time range), the same
:class:`~otel_jobtags.logfiles.LogEntry` records back, so ``otel-jobtags
query --local URL`` prints exactly what ``query --loki URL`` would.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

from .._http import get_json
from ..context import active_registry
from ..errors import ConfigError, StoreError
from ..handler import ATTR_JOB_ID, ATTR_JOB_TAG
from ..logfiles import LogEntry
from ..tags import JobTag, TagRegistry
from .levels import level_of

__all__ = ["RECORDS_PATH", "StoreClient"]

RECORDS_PATH = "/api/v1/records"
_PAGE = 1000
_STACKTRACE = "exception.stacktrace"


def _severity(level: int | str) -> str:
    """The API's ``severity`` value of a Python level number or a level name."""
    if isinstance(level, str):
        return level.strip().upper()
    for threshold, number in ((50, 21), (40, 17), (30, 13), (20, 9), (10, 5)):
        if level >= threshold:
            return str(number)
    return "1"


def _entry(item: dict[str, Any], registry: TagRegistry, source: str) -> LogEntry:
    attributes = item.get("attributes") or {}
    lines = str(item.get("body", "")).split("\n")
    name = str(attributes.get(ATTR_JOB_TAG) or "")
    first = lines[0][len(name) + 3 :] if name and lines[0].startswith(f"[{name}] ") else lines[0]
    stack = attributes.get(_STACKTRACE)
    known = registry.get(name) if name else None
    job_id = attributes.get(ATTR_JOB_ID)
    return LogEntry(
        time=datetime.fromtimestamp(int(item["time_unix_nano"]) // 1000 / 1e6, timezone.utc),
        level=level_of(int(item.get("severity_number") or 0)),
        tag=name,
        message=first,
        continuation=tuple(lines[1:] + (str(stack).rstrip("\n").split("\n") if stack else [])),
        job_id=str(job_id) if job_id else (known.job_id if known else None),
        source=source,
    )


def _fail(message: str, status: int | None, body: str | None) -> NoReturn:
    raise StoreError(message)


class StoreClient:
    """Queries the JSON API of ``otel-jobtags serve`` (or of a mounted jobs view).

    Args:
        url: the view's base URL, e.g. ``http://127.0.0.1:4320`` (or ``.../admin/jobs``).
        timeout: seconds to wait for an answer.
        token: the serve token, sent as ``Authorization: Bearer <token>``.

    Raises:
        ConfigError: not an http(s) URL, or a non-positive timeout.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, token: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"Invalid --local URL {url!r}: give the serve view's URL, e.g. 'http://127.0.0.1:4320'"
            )
        if timeout <= 0:
            raise ConfigError(f"Invalid timeout={timeout!r}: give a number of seconds greater than 0")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"StoreClient({self.url!r})"

    def records(self, **params: str) -> dict[str, Any]:
        """One answer of ``GET /api/v1/records`` with these parameters.

        Raises:
            StoreError: the server could not be reached or answered with an error.
        """
        answer = get_json(
            f"{self.url}{RECORDS_PATH}?{urlencode(params)}",
            headers=self.headers,
            timeout=self.timeout,
            server="otel-jobtags serve",
            base=self.url,
            fail=_fail,
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("records"), list):
            raise StoreError(
                f"{self.url} is not an otel-jobtags view: its {RECORDS_PATH} has no records list"
            )
        return answer

    def query(
        self,
        job: JobTag | str | None,
        *,
        registry: TagRegistry | None = None,
        level: int | str | None = None,
        contains: str | None = None,
        ignore_case: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[LogEntry]:
        """A job's most recent records (at most ``limit``), oldest first, like :meth:`LokiClient.query`.

        The job is resolved first: an unknown job raises before any request.
        Without ``since`` the server's window (24 h by default) applies.

        Raises:
            UnknownJobError: ``job`` is not in the registry.
            StoreError: the request failed.
        """
        reg = registry if registry is not None else active_registry()
        if reg is None:
            raise ConfigError("No tag registry to resolve jobs against: pass registry=...")
        tag = reg.resolve(job) if job is not None else None
        if limit <= 0:
            raise ConfigError(f"Invalid limit={limit!r}: give a number of records greater than 0")
        params: dict[str, str] = {"limit": str(min(limit, _PAGE))}
        if tag is not None:
            params["job.tag"] = tag.name
        if level is not None:
            params["severity"] = _severity(level)
        if contains:
            params["text"] = contains  # the server ignores ASCII case; exact case is checked here
        for name, moment in (("since", since), ("until", until)):
            if moment is not None:
                aware = moment if moment.tzinfo is not None else moment.astimezone()
                params[name] = aware.astimezone(timezone.utc).isoformat()
        entries: list[LogEntry] = []
        while len(entries) < limit:
            answer = self.records(**params)
            for item in answer["records"]:
                body = str(item.get("body", ""))
                if contains and not ignore_case and contains not in body:
                    continue
                if tag is None and (item.get("attributes") or {}).get(ATTR_JOB_TAG) not in reg:
                    continue  # every registered job, as the file and Loki queries select
                entries.append(_entry(item, reg, self.url))
            cursor = answer.get("next_cursor")
            if not cursor:
                break
            params["cursor"] = str(cursor)
        return list(reversed(entries[:limit]))
