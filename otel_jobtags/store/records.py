"""What the embedded store holds and answers: records, runs and per-job activity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..grafana import Run as AlertRun
from ..handler import ATTR_JOB_RUN_ID, ATTR_JOB_TAG
from .levels import level_of

__all__ = ["JobActivity", "NewRecord", "RecordPage", "Run", "StoreStats", "StoredRecord", "from_ns"]


def from_ns(time_ns: int) -> datetime:
    """A UTC datetime from Unix nanoseconds (microsecond precision)."""
    return datetime.fromtimestamp(time_ns // 1000 / 1e6, tz=timezone.utc)


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A log record to append to the store.

    Attributes:
        time_ns: when it happened, Unix nanoseconds.
        severity_number: OpenTelemetry severity number, 0-24 (INFO 9, WARN 13, ERROR 17).
        severity_text: the level name as sent (``"WARNING"``), possibly empty.
        body: the message; non-string bodies are stored JSON-encoded.
        attributes: the record's attributes (JSON-able values).
        resource: the resource's attributes (``service.name``, ...).
        scope: the instrumentation scope name (the Python logger's name).
    """

    time_ns: int
    severity_number: int
    severity_text: str
    body: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    resource: Mapping[str, Any] = field(default_factory=dict)
    scope: str = ""


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A log record read back from the store.

    Attributes:
        id: the store's row id: unique, increasing in arrival order.
        time_ns: when it happened, Unix nanoseconds.
        severity_number: OpenTelemetry severity number.
        severity_text: the level name as sent.
        body: the message.
        attributes: the record's attributes.
        resource: the resource's attributes.
        scope: the instrumentation scope name.
    """

    id: int
    time_ns: int
    severity_number: int
    severity_text: str
    body: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str

    @property
    def time(self) -> datetime:
        """When it happened, UTC."""
        return from_ns(self.time_ns)

    @property
    def level(self) -> str:
        """Its level bucket, one of :data:`~otel_jobtags.store.LEVELS`."""
        return level_of(self.severity_number)

    @property
    def job_tag(self) -> str | None:
        """Its ``job.tag`` attribute, if any."""
        value = self.attributes.get(ATTR_JOB_TAG)
        return value if isinstance(value, str) else None

    @property
    def run_id(self) -> str | None:
        """Its ``job.run_id`` attribute, if any."""
        value = self.attributes.get(ATTR_JOB_RUN_ID)
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON API returns it."""
        return {
            "id": self.id,
            "time": self.time.isoformat(),
            "time_unix_nano": self.time_ns,
            "severity_number": self.severity_number,
            "severity_text": self.severity_text,
            "body": self.body,
            "attributes": self.attributes,
            "resource": self.resource,
            "scope": self.scope,
        }


@dataclass(frozen=True, slots=True)
class RecordPage:
    """A page of records, newest first.

    Attributes:
        records: the records, newest first (time, then arrival, descending).
        next_cursor: pass as ``cursor=`` for the next, older page; ``None`` when there is none.
        latest_id: the highest record id in the store when queried; pass as
            ``after_id=`` to get only what arrives later (live follow).
    """

    records: list[StoredRecord]
    next_cursor: str | None
    latest_id: int


@dataclass(frozen=True, slots=True)
class Run:
    """One run record (runs are recorded when they end).

    Attributes:
        record_id: the run record's id in the store.
        job_tag: the job's tag.
        job_id: the job's id, if sent.
        run_id: the run's ``job.run_id``.
        outcome: ``success``, ``error``, ``missed``, ``skipped`` or ``cancelled``.
        end: when the run record was logged.
        start: ``end`` minus the duration; ``None`` for runs that did not run.
        duration_ms: how long it took (the mean, for a summary).
        scheduled_time: when it was due (``job.scheduled_time``, ISO 8601), if sent.
        runs: how many successful runs a summary record stands for; 1 otherwise.
        instance: the process that ran it: ``service.instance.id``, else ``process.pid``.
        body: the run record's message.
    """

    record_id: int
    job_tag: str
    job_id: str | None
    run_id: str | None
    outcome: str
    end: datetime
    start: datetime | None
    duration_ms: float | None
    scheduled_time: str | None
    runs: int
    instance: str | None
    body: str

    def as_alert_run(self) -> AlertRun:
        """The run as the alert rules' arithmetic (:mod:`otel_jobtags.grafana`) takes it."""
        return AlertRun(self.end, self.outcome, self.instance)


@dataclass(frozen=True, slots=True)
class JobActivity:
    """One job's figures over a window.

    Attributes:
        job_tag: the job's tag.
        job_id: the latest ``job.id`` seen for it.
        records: records in the window.
        by_level: records in the window by level (every level of ``LEVELS``, 0 when none).
        volume: record counts in equal slices of the window, oldest first.
        runs: runs recorded in the window (a summary counts as the runs it stands for).
        failures: runs in the window with outcome ``error``.
        last_success: the latest success run record, at any time.
        last_run: the latest run record of any outcome, at any time.
        p95_duration_ms: 95th percentile of the durations of the window's runs.
        last_seen: the latest record of the job, at any time.
    """

    job_tag: str
    job_id: str | None
    records: int
    by_level: dict[str, int]
    volume: list[int]
    runs: int
    failures: int
    last_success: datetime | None
    last_run: datetime | None
    p95_duration_ms: float | None
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class StoreStats:
    """How much the store holds.

    Attributes:
        records: how many records.
        bytes: the database's size on disk, write-ahead log included.
        oldest: the oldest record's time.
        newest: the newest record's time.
    """

    records: int
    bytes: int
    oldest: datetime | None
    newest: datetime | None
