"""Each job's figures and status, from the store and the alert model.

The status is :func:`otel_jobtags.grafana.job_status` with the job's
:class:`~otel_jobtags.grafana.AlertPolicy`: the same numbers and the same
arithmetic as the generated Grafana alert rules. A job the registry does not
know (or with no registry) is judged as a manual job would be: failing and
overlapping, never late.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import JobTagsError
from ..grafana import AlertPolicy, RunSpan, alert_policies, job_status
from ..scheduler import Outcome
from ..store import LEVELS, JobActivity, Run, Store
from ..tags import JobTag, TagRegistry

__all__ = ["JobRow", "Judge", "empty_activity", "run_spans"]

_RUNS_FOR_STATUS = 1000  # more runs than any failure window of a sane schedule records


@dataclass(frozen=True)
class JobRow:
    """One job as the overview shows it."""

    tag: str
    job_id: str | None
    description: str
    schedule: str | None
    """The schedule's text; ``None`` for a job the registry does not know."""
    status: tuple[str, ...] | None
    """The rules that fire (empty: ok); ``None`` when the job cannot be judged."""
    policy: AlertPolicy | None
    activity: JobActivity


def empty_activity(tag: str, job_id: str | None, buckets: int) -> JobActivity:
    """The figures of a job with no record in the window."""
    return JobActivity(
        job_tag=tag,
        job_id=job_id,
        records=0,
        by_level=dict.fromkeys(LEVELS, 0),
        volume=[0] * buckets,
        runs=0,
        failures=0,
        last_success=None,
        last_run=None,
        p95_duration_ms=None,
        last_seen=None,
    )


def run_spans(runs: Sequence[Run]) -> list[RunSpan]:
    """The runs that ran in a known process, as the overlap model takes them.

    A summary record (several runs, a mean duration) says when no single run
    ran, so it has no span.
    """
    return [
        RunSpan(run.start, run.end, run.instance)
        for run in runs
        if run.start is not None and run.instance is not None and run.runs == 1
    ]


class Judge:
    """Decides each job's status the way the generated alert rules do."""

    def __init__(self, registry: TagRegistry | None, options: Mapping[str, object]) -> None:
        self.registry = registry
        self._policies: dict[str, AlertPolicy] = (
            alert_policies(registry, **options) if registry is not None and len(registry) else {}  # type: ignore[arg-type]
        )
        self._manual: dict[str, AlertPolicy | None] = {}

    def policy(self, tag: str, job_id: str | None) -> AlertPolicy | None:
        """The job's policy; a manual job's defaults for a job the registry does not know."""
        found = self._policies.get(tag)
        if found is not None:
            return found
        if tag not in self._manual:
            try:
                manual = JobTag(tag, job_id or tag.lower())
            except JobTagsError:  # not a tag this library would write: no rules to mirror
                self._manual[tag] = None
            else:
                self._manual[tag] = alert_policies(TagRegistry([manual]))[tag]
        return self._manual[tag]

    def status(
        self, store: Store, policy: AlertPolicy, now: datetime, latest_success: datetime | None
    ) -> tuple[str, ...]:
        """Which rules fire for the job at ``now``.

        ``latest_success`` is the job's latest success record in the store; the
        rules only see records up to ``now``, so a later one (a clock ahead of
        ``now``) is looked up again among the records before ``now``.
        """
        window = max(policy.failure_window, 2 * policy.overlap_window)  # the overlap rule looks back two
        until = now + timedelta(microseconds=1)  # the rules' windows end at now, inclusive
        runs = store.runs(policy.tag.name, since=now - window, until=until, limit=_RUNS_FOR_STATUS)
        last_success = latest_success
        if last_success is not None and last_success > now:
            recent = next((run.end for run in runs if run.outcome == Outcome.SUCCESS), None)
            older = store.runs(policy.tag.name, until=now - window, limit=_RUNS_FOR_STATUS)
            last_success = recent or next((run.end for run in older if run.outcome == Outcome.SUCCESS), None)
        return job_status(
            policy,
            now,
            last_success=last_success,
            runs=[run.as_alert_run() for run in runs],
        )

    def rows(self, store: Store, now: datetime, window: timedelta, buckets: int) -> list[JobRow]:
        """Every job of the registry, then every other job in the store, with its figures."""
        seen = {a.job_tag: a for a in store.jobs(since=now - window, until=now, buckets=buckets)}
        known = list(self.registry) if self.registry is not None else []
        rows = []
        for tag in known:
            activity = seen.pop(tag.name, None) or empty_activity(tag.name, tag.job_id, buckets)
            rows.append(self._row(store, now, tag.name, tag.job_id, tag, activity))
        for name, activity in sorted(seen.items()):
            rows.append(self._row(store, now, name, activity.job_id, None, activity))
        return rows

    def known(self, tag: str) -> JobTag | None:
        """The registry's tag of that name."""
        return next((t for t in self.registry if t.name == tag), None) if self.registry is not None else None

    def row(
        self, store: Store, now: datetime, since: datetime, until: datetime, buckets: int, tag: str
    ) -> JobRow:
        """One job's row: its figures over ``[since, until)``, its status at ``now``."""
        known = self.known(tag)
        activity = store.job(tag, since=since, until=until, buckets=buckets)
        job_id = known.job_id if known is not None else activity.job_id
        return self._row(store, now, tag, job_id, known, activity)

    def _row(
        self,
        store: Store,
        now: datetime,
        name: str,
        job_id: str | None,
        tag: JobTag | None,
        activity: JobActivity,
    ) -> JobRow:
        policy = self.policy(name, job_id)
        status = None if policy is None else self.status(store, policy, now, activity.last_success)
        return JobRow(
            tag=name,
            job_id=job_id,
            description=tag.description if tag is not None else "",
            schedule=str(tag.schedule) if tag is not None else None,
            status=status,
            policy=policy,
            activity=activity,
        )
