"""Alert rules for the jobs of a tag registry, as a Grafana provisioning file.

Rules are Grafana-managed alert rules, written as a Grafana alerting
provisioning file (``grafana/provisioning/alerting/``). They evaluate the run
records in Loki (one record per run with ``job_outcome``); two per job:

* **late** -- no record of a successful run within the schedule's longest
  regular gap (:attr:`~otel_jobtags.schedule.Schedule.period`), plus the summary
  interval when successes are summarised, plus a grace. The query counts
  success records with ``... or vector(0)``, so silence is the number 0, not
  an absence of data: the rule fires when the application is gone, and
  ``noDataState: Alerting`` backs that up. Manual jobs, and jobs whose
  successes are not recorded, have no such rule.
* **failing** -- at least ``failure_threshold`` failed runs within
  ``failure_window``, and no successful run since the latest failure.
* **overlapping** -- two or more processes (``service.instance.id``) kept
  writing run records of the job: at least two within the overlap window
  (the late window, else the failure window), for a whole window
  (Grafana's pending period, ``for``). Two schedulers that run every job
  (one per gunicorn worker) fire it; one process handing over to another
  (a restart, a deploy, the host lock) does not, as their records meet in
  a window for less than a window.

The first two resolve at the job's next successful run ("recovered"): a
success makes the late rule's count 1, and makes the failing rule's latest
success newer than its latest failure. The overlapping rule resolves once
one process is left.

:mod:`otel_jobtags.grafana._status` computes, in Python, what the rules
compute in LogQL and Grafana expressions (:func:`is_late`, :func:`is_failing`,
:func:`is_overlapping`),
with the same numbers (:func:`alert_policies`); the embedded web view shows
its verdicts.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from .._generated import stale_files, write_files
from ..errors import ConfigError
from ..scheduler import RunRecordPolicy
from ..tags import JobTag, TagRegistry
from . import _yaml
from ._dashboards import JOB_DASHBOARD_UID, RUNS_PANEL_ID, job_dashboard_url
from ._logql import DEFAULT_JOB_TAG_AS, JobTagAs, job_selector
from ._panels import LOKI_DATASOURCE_UID
from ._runqueries import ERROR, SUCCESS, count_processes, count_records, last_run_ms, logql_duration
from ._status import AlertPolicy, alert_policies

__all__ = [
    "ALERT_RULES_FILE",
    "generate_alert_rules",
    "render_alert_rules",
    "stale_alert_rules",
    "write_alert_rules",
]

ALERT_RULES_FILE = "otel-jobtags-alerts.yaml"
"""The file name of the provisioning file, in ``grafana/provisioning/alerting/``."""
FOLDER = "Background jobs"
"""The Grafana folder holding the rules."""
GROUP = "otel-jobtags"
"""The rule group: every rule of the registry, evaluated together."""
INTERVAL = timedelta(minutes=1)
"""How often Grafana evaluates the group; it adds at most this much to every detection time."""

# ---------------------------------------------------------------- Grafana rules

_EXPR = {"type": "__expr__", "uid": "__expr__"}


def _loki_query(ref: str, expr: str, window: timedelta) -> dict[str, Any]:
    # Instant queries: one value at evaluation time, over the range in the
    # expression; relativeTimeRange only tells Grafana how far back it reaches.
    return {
        "refId": ref,
        "queryType": "instant",
        "relativeTimeRange": {"from": math.ceil(window.total_seconds()), "to": 0},
        "datasourceUid": LOKI_DATASOURCE_UID,
        "model": {
            "datasource": {"type": "loki", "uid": LOKI_DATASOURCE_UID},
            "editorMode": "code",
            "expr": expr,
            "instant": True,
            "intervalMs": 1000,
            "maxDataPoints": 43200,
            "queryType": "instant",
            "refId": ref,
        },
    }


def _expression(ref: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "refId": ref,
        "datasourceUid": "__expr__",
        "model": {"datasource": _EXPR, "refId": ref, **model},
    }


def _reduce(ref: str, source: str) -> dict[str, Any]:
    return _expression(ref, {"expression": source, "reducer": "last", "type": "reduce"})


def _provisioning_text(text: str) -> str:
    # Grafana expands $VAR and ${VAR} from the environment in provisioned
    # titles and labels; "$$" is a literal "$".
    return text.replace("$", "$$")


def _who(tag: JobTag) -> str:
    what = f" ({' '.join(tag.description.split())})" if tag.description.strip() else ""
    return f"{tag} {tag.job_id}{what}"


def _common(tag: JobTag, kind: str, severity: str) -> dict[str, Any]:
    return {
        "dashboardUid": JOB_DASHBOARD_UID,
        "panelId": RUNS_PANEL_ID,
        "execErrState": "Error",
        "for": "0s",
        "labels": {
            "job_tag": tag.name,
            "job_id": _provisioning_text(tag.job_id),
            "job_alert": kind,
            "severity": severity,
        },
        "isPaused": False,
    }


def _late_rule(policy: AlertPolicy, selector: str) -> dict[str, Any]:
    tag, window, gap = policy.tag, policy.late_window, policy.success_gap
    assert window is not None and gap is not None  # only jobs with a window get the rule
    span = logql_duration(window)
    successes = f"{count_records(selector, [SUCCESS], span)} or vector(0)"
    summarised = (
        f" and its successes are summarised every {logql_duration(policy.run_records.every)}"
        if policy.run_records.successes == "summary"
        else ""
    )
    return {
        "uid": f"otel-jobtags-late-{tag.name}",
        "title": f"{tag.name} late",
        "condition": "C",
        "data": [
            _loki_query("A", successes, window),
            _reduce("B", "A"),
            _expression(
                "C",
                {
                    "expression": "B",
                    "type": "threshold",
                    "conditions": [{"evaluator": {"params": [1], "type": "lt"}}],
                },
            ),
        ],
        # Belt and braces: "or vector(0)" already turns silence into 0.
        "noDataState": "Alerting",
        **_common(tag, "late", "critical"),
        "annotations": {
            "summary": f"{_who(tag)}: no successful run in the last {span}",
            "description": (
                f"{tag.name} runs {tag.schedule}{summarised}; at most {logql_duration(gap)} should pass "
                f"between two records of a successful run, plus {logql_duration(policy.grace)} grace. "
                f"None was recorded in the last {span}: the job fails every time, hangs, is no longer "
                "scheduled, or the application is down. Resolves at the next successful run."
            ),
            "runbook_url": job_dashboard_url(tag.name),
        },
    }


def _failing_rule(policy: AlertPolicy, selector: str) -> dict[str, Any]:
    tag, window, threshold = policy.tag, policy.failure_window, policy.failure_threshold
    span = logql_duration(window)
    failed = "1 failed run" if threshold == 1 else f"{threshold} or more failed runs"
    return {
        "uid": f"otel-jobtags-failing-{tag.name}",
        "title": f"{tag.name} failing",
        "condition": "G",
        "data": [
            _loki_query("A", f"{count_records(selector, [ERROR], span)} or vector(0)", window),
            _loki_query("B", f"{last_run_ms(selector, ERROR, span)} or vector(0)", window),
            _loki_query("C", f"{last_run_ms(selector, SUCCESS, span)} or vector(0)", window),
            _reduce("D", "A"),
            _reduce("E", "B"),
            _reduce("F", "C"),
            # Enough failures, and the latest failure newer than the latest success.
            _expression("G", {"expression": f"$D >= {threshold} && $E > $F", "type": "math"}),
        ],
        "noDataState": "OK",
        **_common(tag, "failing", "warning"),
        "annotations": {
            "summary": f"{_who(tag)}: {failed} in the last {span}, none succeeded since",
            "description": (
                f"{tag.name} (runs {tag.schedule}) failed at least {threshold} time(s) in the last {span} "
                "and has not succeeded since its latest failure. The errors and their tracebacks are on "
                "the job's dashboard. Resolves at the next successful run."
            ),
            "runbook_url": job_dashboard_url(tag.name),
        },
    }


def _overlapping_rule(policy: AlertPolicy, selector: str) -> dict[str, Any]:
    tag, window = policy.tag, policy.overlap_window
    span = logql_duration(window)
    return {
        "uid": f"otel-jobtags-overlapping-{tag.name}",
        "title": f"{tag.name} overlapping",
        "condition": "C",
        "data": [
            _loki_query("A", f"{count_processes(selector, span)} or vector(0)", window),
            _reduce("B", "A"),
            _expression(
                "C",
                {
                    "expression": "B",
                    "type": "threshold",
                    "conditions": [{"evaluator": {"params": [1], "type": "gt"}}],
                },
            ),
        ],
        "noDataState": "OK",
        **_common(tag, "overlapping", "warning"),
        # Two processes for a whole window: a takeover (restart, deploy, host lock) never lasts that long.
        "for": span,
        "annotations": {
            "summary": f"{_who(tag)}: two or more processes run it, each at every tick",
            "description": (
                f"{tag.name} (runs {tag.schedule}) was recorded by two or more processes "
                f"(service.instance.id) in every {span} for the last {span}: each runs its own scheduler, "
                "so every run happens once per process. Typical cause: a scheduler started in every "
                "gunicorn/uWSGI worker or replica; start it with "
                "otel_jobtags.scheduler.start_once_per_host. The processes are on the job's dashboard "
                "(Runs by process). Resolves when one process is left."
            ),
            "runbook_url": job_dashboard_url(tag.name),
        },
    }


def generate_alert_rules(
    registry: TagRegistry,
    *,
    grace: timedelta | Mapping[str, timedelta] | None = None,
    failure_threshold: int | Mapping[str, int] | None = None,
    failure_window: timedelta | Mapping[str, timedelta] | None = None,
    run_records: Mapping[str | JobTag, RunRecordPolicy] | None = None,
    job_tag_as: JobTagAs = DEFAULT_JOB_TAG_AS,
    service: str = ".+",
) -> dict[str, Any]:
    """The Grafana alerting provisioning document for a registry's jobs.

    One rule group (:data:`GROUP`, folder :data:`FOLDER`, evaluated every
    :data:`INTERVAL`) with, per job, a ``<TAG> late`` rule (not for manual
    jobs, nor when successes are not recorded), a ``<TAG> failing`` rule and
    a ``<TAG> overlapping`` rule. Rules query the Loki datasource
    ``loki``, link to the per-job dashboard, and carry the labels
    ``job_tag``, ``job_id``, ``job_alert`` (``late``/``failing``/``overlapping``) and
    ``severity`` (``critical``/``warning``) for notification routing.

    Args:
        registry: the jobs.
        grace, failure_threshold, failure_window, run_records: see :func:`alert_policies`.
        job_tag_as: how Loki stores ``job_tag``, as for the dashboards.
        service: a regular expression for ``service_name``; every service by default.

    Raises:
        UnknownJobError, ConfigError: as :func:`alert_policies`; ConfigError
            also for an empty registry or an invalid ``job_tag_as``.
    """
    if not len(registry):
        raise ConfigError("The registry has no tags: define the jobs before generating alert rules")
    rules = []
    policies = alert_policies(
        registry,
        grace=grace,
        failure_threshold=failure_threshold,
        failure_window=failure_window,
        run_records=run_records,
    )
    for policy in policies.values():
        selector = job_selector(policy.tag.name, service=service, job_tag_as=job_tag_as)
        if policy.late_window is not None:
            rules.append(_late_rule(policy, selector))
        rules.append(_failing_rule(policy, selector))
        rules.append(_overlapping_rule(policy, selector))
    group = {
        "orgId": 1,
        "name": GROUP,
        "folder": FOLDER,
        "interval": logql_duration(INTERVAL),
        "rules": rules,
    }
    return {"apiVersion": 1, "groups": [group]}


def render_alert_rules(document: Mapping[str, Any]) -> str:
    """The provisioning document as the YAML text written to disk."""
    header = (
        "Grafana alert rules for the background jobs of the tag registry.\n"
        "Generated by otel-jobtags: regenerate with 'otel-jobtags alerts' instead of editing."
    )
    return _yaml.dump(document, header=header)


def _files(registry: TagRegistry, directory: str | Path, options: dict[str, Any]) -> dict[Path, str]:
    return {Path(directory) / ALERT_RULES_FILE: render_alert_rules(generate_alert_rules(registry, **options))}


def write_alert_rules(registry: TagRegistry, directory: str | Path, **options: Any) -> list[Path]:
    """Write :data:`ALERT_RULES_FILE` into ``directory``; returns it when it changed.

    ``options`` are those of :func:`generate_alert_rules`.
    """
    return write_files(_files(registry, directory, options))


def stale_alert_rules(registry: TagRegistry, directory: str | Path, **options: Any) -> list[Path]:
    """The alert rules file in ``directory`` when it is missing or not what the registry generates."""
    return stale_files(_files(registry, directory, options))
