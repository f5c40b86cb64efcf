"""Grafana for the jobs of a tag registry: LogQL, dashboards and alert rules.

:func:`job_selector` and :func:`loki_field` build the LogQL that selects a job's
records; :func:`generate_dashboards`/:func:`write_dashboards` produce the
dashboards and :func:`generate_alert_rules`/:func:`write_alert_rules` the alert
rules that Grafana provisions (see ``docs/dashboards.md`` and ``docs/alerts.md``).
:func:`job_status` and the functions it combines compute, in Python, what those
rules decide for a job: late, failing, or run by two processes at once (overlapping).
"""

from ._alerts import (
    ALERT_RULES_FILE,
    generate_alert_rules,
    render_alert_rules,
    stale_alert_rules,
    write_alert_rules,
)
from ._dashboards import (
    JOB_DASHBOARD_UID,
    OVERVIEW_DASHBOARD_UID,
    RUNS_PANEL_ID,
    generate_dashboards,
    job_dashboard_url,
    render_dashboard,
    stale_dashboards,
    write_dashboards,
)
from ._logql import (
    DEFAULT_JOB_TAG_AS,
    JobTagAs,
    job_selector,
    logql_regex,
    logql_string,
    loki_field,
)
from ._panels import LOKI_DATASOURCE_UID
from ._runqueries import logql_duration
from ._status import (
    FAILING,
    LATE,
    OVERLAPPING,
    AlertPolicy,
    Run,
    RunSpan,
    alert_policies,
    default_failure_threshold,
    default_failure_window,
    default_grace,
    is_failing,
    is_late,
    is_overlapping,
    job_status,
    late_window,
    overlapping_instances,
    overlapping_runs,
    success_gap,
)

__all__ = [
    "ALERT_RULES_FILE",
    "DEFAULT_JOB_TAG_AS",
    "FAILING",
    "JOB_DASHBOARD_UID",
    "LATE",
    "LOKI_DATASOURCE_UID",
    "OVERLAPPING",
    "OVERVIEW_DASHBOARD_UID",
    "RUNS_PANEL_ID",
    "AlertPolicy",
    "JobTagAs",
    "Run",
    "RunSpan",
    "alert_policies",
    "default_failure_threshold",
    "default_failure_window",
    "default_grace",
    "generate_alert_rules",
    "generate_dashboards",
    "is_failing",
    "is_late",
    "is_overlapping",
    "job_dashboard_url",
    "job_selector",
    "job_status",
    "late_window",
    "logql_duration",
    "logql_regex",
    "logql_string",
    "loki_field",
    "overlapping_instances",
    "overlapping_runs",
    "render_alert_rules",
    "render_dashboard",
    "stale_alert_rules",
    "stale_dashboards",
    "success_gap",
    "write_alert_rules",
    "write_dashboards",
]
