"""Query a job's records in Loki: escaped LogQL, and a small HTTP client.

Records exported by :func:`otel_jobtags.install` reach Loki through its OTLP
endpoint with the job's tag as the ``job_tag`` field and the OpenTelemetry
severity as ``severity_number``. :func:`build_logql` turns a job selection into
LogQL -- resolving the job through the registry first and escaping every value
it places in the query -- and :class:`LokiClient` runs it through
``/loki/api/v1/query_range`` with the standard library, returning the same
:class:`~otel_jobtags.logfiles.LogEntry` records the file reader does.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

from ._http import get_json
from .errors import ConfigError, LokiError
from .grafana._logql import DEFAULT_JOB_TAG_AS, JobTagAs, job_selector, logql_regex, logql_string, loki_field
from .logfiles._records import LogEntry, align_time, parse_level, resolve_registry
from .tags import JobTag, TagRegistry

__all__ = ["LokiClient", "LokiError", "build_logql", "logql_regex", "logql_string"]

# Where OpenTelemetry names land in Loki: its OTLP endpoint turns resource and
# log attributes into labels/structured metadata with '.' and other specials
# replaced by '_' (see docs/queries.md).
_SEVERITY_TEXT_TO_LEVEL = {"WARN": "WARNING", "FATAL": "CRITICAL", "TRACE": "DEBUG"}
_DETECTED_TO_LEVEL = {
    "trace": "DEBUG",
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARNING",
    "warning": "WARNING",
    "error": "ERROR",
    "critical": "CRITICAL",
    "fatal": "CRITICAL",
}


def _otel_severity(levelno: int) -> int:
    """The OpenTelemetry severity number the logging handler gives a Python level.

    The same mapping as ``opentelemetry.instrumentation.log_utils.std_to_otel``:
    DEBUG 10 -> 5, INFO 20 -> 9, WARNING 30 -> 13, ERROR 40 -> 17, CRITICAL 50 -> 21,
    with up to three steps in between for custom levels; below 10 is unspecified (0).
    """
    if levelno < 10:
        return 0
    if levelno > 53:
        return 24
    return 1 + 4 * (levelno // 10) + min(levelno % 10, 3)


def _level_from_severity(number: int) -> str:
    if number <= 0:
        return ""
    names = ("DEBUG", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    return names[min((number - 1) // 4, 5)]


def build_logql(
    job: JobTag | str | None,
    *,
    registry: TagRegistry | None = None,
    service_name: str | None = None,
    level: int | str | None = None,
    contains: str | None = None,
    ignore_case: bool = False,
    job_tag_as: JobTagAs = DEFAULT_JOB_TAG_AS,
) -> str:
    """The LogQL query selecting a job's records in Loki.

    >>> build_logql("auto_rebalance", registry=JOBS, service_name="web", level="error")  # doctest: +SKIP
    '{service_name=~"web", job_tag="AUTO_REBAL"} | severity_number >= 17'

    The job is selected with :func:`~otel_jobtags.grafana.job_selector`, as the
    dashboards and alert rules select it: ``job_tag`` as an index label (the
    stack's ``loki-config.yaml``) or, with ``job_tag_as="structured_metadata"``,
    as structured metadata. The level on the OpenTelemetry
    ``severity_number`` Loki stores with every OTLP record, so a minimum level
    is one numeric comparison, custom levels included. Every value placed in
    the query is escaped (:func:`logql_string`, :func:`logql_regex`): request
    parameters cannot change its structure.

    Args:
        job: job id, tag name or tag; ``None`` for every tagged record.
        registry: where ``job`` is looked up; by default the active registry.
        service_name: the ``service.name`` of the application; by default any.
        level: minimum level.
        contains: text the log line must contain.
        ignore_case: match ``contains`` ignoring case.
        job_tag_as: how Loki stores ``job_tag``.

    Raises:
        UnknownJobError: ``job`` is not in the registry; no query is built.
        ConfigError: an invalid level or text.
    """
    reg = resolve_registry(registry)
    tag = reg.resolve(job) if job is not None else None
    min_level = parse_level(level)
    # Loki needs one non-empty matcher in the selector; "any service" is =~".+".
    service = logql_regex(service_name) if service_name else ".+"
    if tag is not None:
        query = job_selector(tag.name, service=service, job_tag_as=job_tag_as)
    else:  # every tagged record
        query = job_selector(".+", regex=True, service=service, job_tag_as=job_tag_as)
    if min_level is not None and (severity := _otel_severity(min_level)) > 0:
        # A record without the field is dropped by the comparison; Loki writes
        # the field as an integer for every OTLP record that has a severity.
        query += f" | severity_number >= {severity}"
    if contains:
        if ignore_case:
            query += f" |~ {logql_string('(?i)' + logql_regex(contains))}"
        else:
            query += f" |= {logql_string(contains)}"
    return query


def _nanoseconds(moment: datetime) -> int:
    aware = align_time(moment, aware=True)
    delta = aware - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta // timedelta(microseconds=1)) * 1000


def _fail(message: str, status: int | None, body: str | None) -> NoReturn:
    raise LokiError(message, status=status, body=body)


class LokiClient:
    """Runs job queries against Loki's HTTP API (``/loki/api/v1/query_range``).

    Uses only the standard library. The URL resolves argument, then
    ``OTEL_JOBTAGS_LOKI_URL``, then ``LOKI_URL``.

    Args:
        url: Loki's base URL, e.g. ``http://localhost:3100``.
        timeout: seconds to wait for an answer.
        tenant: sent as ``X-Scope-OrgID`` (multi-tenant Loki).
        headers: more request headers (e.g. ``Authorization``).
        environ: where to read the variables; ``os.environ`` by default.

    Raises:
        ConfigError: no URL, or not an http(s) URL.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 10.0,
        tenant: str | None = None,
        headers: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        source = "url"
        if url is None:
            for name in ("OTEL_JOBTAGS_LOKI_URL", "LOKI_URL"):
                if env.get(name, "").strip():
                    source, url = name, env[name].strip()
                    break
        if not url:
            raise ConfigError(
                "No Loki URL: pass one (--loki) or set OTEL_JOBTAGS_LOKI_URL, e.g. 'http://localhost:3100'"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"Invalid {source}={url!r}: give an http(s) URL, e.g. 'http://localhost:3100'")
        if timeout <= 0:
            raise ConfigError(f"Invalid timeout={timeout!r}: give a number of seconds greater than 0")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json", **(headers or {})}
        if tenant:
            self.headers["X-Scope-OrgID"] = tenant

    def __repr__(self) -> str:
        return f"LokiClient({self.url!r})"

    def query_range(
        self,
        logql: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
        direction: str = "backward",
    ) -> dict[str, Any]:
        """Run a LogQL query; return the ``data`` member of Loki's answer.

        Without ``start`` Loki looks one hour back from ``end`` (default: now).

        Raises:
            LokiError: Loki could not be reached, timed out, or answered with an
                error (its message is included).
        """
        if limit <= 0:
            raise ConfigError(f"Invalid limit={limit!r}: give a number of records greater than 0")
        params: dict[str, str] = {"query": logql, "limit": str(limit), "direction": direction}
        if start is not None:
            params["start"] = str(_nanoseconds(start))
        if end is not None:
            params["end"] = str(_nanoseconds(end))
        answer = get_json(
            f"{self.url}/loki/api/v1/query_range?{urlencode(params)}",
            headers=self.headers,
            timeout=self.timeout,
            server="Loki",
            base=self.url,
            fail=_fail,
        )
        if not isinstance(answer, dict) or answer.get("status") != "success":
            error = answer.get("error") if isinstance(answer, dict) else None
            raise LokiError(f"Loki at {self.url} reported an error: {error if error else repr(answer)}")
        data = answer.get("data")
        if not isinstance(data, dict) or data.get("resultType") != "streams":
            kind = data.get("resultType") if isinstance(data, dict) else None
            raise LokiError(f"Loki at {self.url} answered {kind!r} results; a log query gives 'streams'")
        return data

    def query(
        self,
        job: JobTag | str | None,
        *,
        registry: TagRegistry | None = None,
        service_name: str | None = None,
        level: int | str | None = None,
        contains: str | None = None,
        ignore_case: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        job_tag_as: JobTagAs = DEFAULT_JOB_TAG_AS,
    ) -> list[LogEntry]:
        """A job's most recent records in Loki (at most ``limit``), oldest first.

        The job is resolved first: an unknown job raises before any query is
        built or sent. Arguments are those of :func:`build_logql`, plus the
        time range (``since`` inclusive, ``until`` exclusive; without ``since``
        Loki looks one hour back).

        Raises:
            UnknownJobError: ``job`` is not in the registry.
            LokiError: the query failed.
        """
        reg = resolve_registry(registry)
        tag = reg.resolve(job) if job is not None else None
        logql = build_logql(
            tag,
            registry=reg,
            service_name=service_name,
            level=level,
            contains=contains,
            ignore_case=ignore_case,
            job_tag_as=job_tag_as,
        )
        data = self.query_range(logql, start=since, end=until, limit=limit)
        try:
            entries = _entries_from_streams(data, reg, self.url)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise LokiError(f"Loki at {self.url} answered streams in an unexpected shape: {exc!r}") from None
        return entries[-limit:]


def _entries_from_streams(data: Mapping[str, Any], registry: TagRegistry, source: str) -> list[LogEntry]:
    tag_field, id_field = loki_field("job.tag"), loki_field("job.id")
    stack_field = loki_field("exception.stacktrace")
    found: list[tuple[int, LogEntry]] = []
    for stream in data.get("result") or ():
        labels = stream.get("stream") or {}
        for value in stream.get("values") or ():
            ns, line = int(value[0]), str(value[1])
            # Structured metadata comes as a third element when the caller asks
            # Loki to categorise labels; merged into "stream" otherwise.
            fields = {**labels, **(value[2].get("structuredMetadata", {}) if len(value) > 2 else {})}
            lines = line.split("\n")
            first = lines[0]
            name = fields.get(tag_field) or ""
            if not name and (m := re.match(r"\[([A-Z][A-Z0-9_]{0,14})\] ", first)):
                name = m.group(1)
            if first.startswith(f"[{name}] "):
                first = first[len(name) + 3 :]
            known = registry.get(name) if name else None
            stack = fields.get(stack_field)
            continuation = lines[1:] + (stack.rstrip("\n").split("\n") if stack else [])
            seconds, nanos = divmod(ns, 1_000_000_000)
            found.append(
                (
                    ns,
                    LogEntry(
                        time=datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=nanos // 1000),
                        level=_loki_level(fields),
                        tag=name,
                        message=first,
                        continuation=tuple(continuation),
                        job_id=fields.get(id_field) or (known.job_id if known else None),
                        source=source,
                    ),
                )
            )
    found.sort(key=lambda item: item[0])
    return [entry for _, entry in found]


def _loki_level(fields: Mapping[str, str]) -> str:
    text = fields.get("severity_text")
    if text:
        return _SEVERITY_TEXT_TO_LEVEL.get(text.upper(), text.upper())
    number = fields.get("severity_number")
    if number and number.isdigit():
        return _level_from_severity(int(number))
    detected = fields.get("detected_level")
    return _DETECTED_TO_LEVEL.get(detected.lower(), detected.upper()) if detected else ""
