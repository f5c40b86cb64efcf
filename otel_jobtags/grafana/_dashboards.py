"""Grafana dashboards and LogQL for the jobs of a tag registry.

Three layers, each usable alone:

* :func:`loki_field` -- the name Loki gives an OpenTelemetry attribute
  (``job.tag`` -> ``job_tag``), by the same rule Loki applies at OTLP ingestion;
* :func:`job_selector` -- the LogQL that selects one job's (or several jobs')
  records, with ``job_tag`` either an index label (``{..., job_tag="X"}``) or
  structured metadata (``{...} | job_tag="X"``): one switch, ``job_tag_as``,
  which must match how ``loki-config.yaml`` stores the attribute;
* :func:`generate_dashboards` -- the dashboards: an overview of every job and a
  per-job view, as deterministic Grafana dashboard JSON, written by
  :func:`write_dashboards` into the directory Grafana provisions dashboards from.

Run records (one record per run, on the ``otel_jobtags.runs`` logger, with the
attributes ``job.outcome``, ``job.duration_ms``, ``job.scheduled_time`` and
``job.run_id``) feed the run panels and the alert rules of
:mod:`otel_jobtags.grafana`.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from .._generated import stale_files, write_files
from ..errors import ConfigError
from ..handler import ATTR_JOB_TAG
from ..markdown import render_job_table
from ..tags import JobTag, TagRegistry
from ._logql import DEFAULT_JOB_TAG_AS, JobTagAs, job_selector, logql_string, loki_field

__all__ = [
    "DEFAULT_JOB_TAG_AS",
    "JOB_DASHBOARD_UID",
    "LOKI_DATASOURCE_UID",
    "OVERVIEW_DASHBOARD_UID",
    "RUNS_PANEL_ID",
    "JobTagAs",
    "generate_dashboards",
    "job_dashboard_url",
    "job_selector",
    "loki_field",
    "render_dashboard",
    "stale_dashboards",
    "write_dashboards",
]

LOKI_DATASOURCE_UID = "loki"
"""The uid of the Loki datasource in ``grafana/provisioning/datasources``."""
OVERVIEW_DASHBOARD_UID = "otel-jobtags-overview"
"""The uid of the dashboard showing every job."""
JOB_DASHBOARD_UID = "otel-jobtags-job"
"""The uid of the per-job dashboard (its ``job`` variable picks the job)."""
RUNS_PANEL_ID = 6
"""The id of the per-job dashboard's runs panel, which alert rules link to."""
RUNS_PANEL_TITLE = "Runs by outcome"

# Grafana 11.0's dashboard schema; Grafana 11.x and 12.x load it and migrate it
# in memory, and nothing these dashboards use changed in later migrations.
SCHEMA_VERSION = 39

_JOB_ALL_TEXT = "All"
_LOKI = {"type": "loki", "uid": LOKI_DATASOURCE_UID}


# The attributes of run records, as otel_jobtags.scheduler writes them (a
# test ties the names; importing that module would need APScheduler).
_ATTR_OUTCOME = "job.outcome"
_ATTR_DURATION_MS = "job.duration_ms"
_ATTR_RUNS = "job.runs"  # on a summary of successful runs: how many it stands for
_ATTR_STACKTRACE = "exception.stacktrace"  # OpenTelemetry semantic conventions

JOB_TAG = loki_field(ATTR_JOB_TAG)
SERVICE = loki_field("service.name")
OUTCOME = loki_field(_ATTR_OUTCOME)
DURATION_MS = loki_field(_ATTR_DURATION_MS)
RUNS = loki_field(_ATTR_RUNS)
STACKTRACE = loki_field(_ATTR_STACKTRACE)
LEVEL = "detected_level"  # derived by Loki from the severity
RUN_TIME_MS = "run_time_ms"  # made by the queries themselves, see _last_run_ms
RUN_COUNT = "run_count"  # made by the queries themselves, see _count_runs

SUCCESS, ERROR, MISSED, SKIPPED = "success", "error", "missed", "skipped"
FINISHED = (SUCCESS, ERROR)
"""Outcomes of runs that actually ran, and so have a duration."""
ERROR_LEVELS = ("error", "critical", "fatal")
"""``detected_level`` values of records at ERROR and above."""


def logql_duration(duration: timedelta) -> str:
    """A LogQL/Prometheus duration such as ``26h24m`` or ``1m29s`` (whole seconds, rounded up)."""
    seconds = -(-duration // timedelta(seconds=1))
    if seconds <= 0:
        raise ConfigError(f"Invalid duration {duration}: it must be longer than 0 s")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def _runs(selector: str, outcomes: Iterable[str] = ()) -> str:
    """Narrow a job selector to run records, of the given outcomes (or of any)."""
    wanted = tuple(outcomes)
    if not wanted:
        return f'{selector} | {OUTCOME}!=""'
    if len(wanted) == 1:
        return f"{selector} | {OUTCOME}={logql_string(wanted[0])}"
    return f"{selector} | {OUTCOME}=~{logql_string('|'.join(wanted))}"


def _count_records(selector: str, outcomes: Iterable[str], window: str) -> str:
    """How many run records with these outcomes the window holds (one per record)."""
    return f"sum(count_over_time({_runs(selector, outcomes)} [{window}]))"


def _count_runs(selector: str, outcomes: Iterable[str], window: str, by: str = "") -> str:
    """How many runs with these outcomes (any, when none given) the window holds.

    The scheduler integration may summarise a frequent job's successes: one
    record standing for ``job_runs`` runs. Every other record is one run.
    """
    wanted = tuple(outcomes)
    if wanted and SUCCESS not in wanted:
        inner = f"count_over_time({_runs(selector, wanted)} [{window}])"
    else:
        one_each = f'label_format {RUN_COUNT}=`{{{{ .{RUNS} | default "1" }}}}`'
        inner = f"sum_over_time({_runs(selector, wanted)} | {one_each} | unwrap {RUN_COUNT} [{window}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def _last_run_ms(selector: str, outcome: str, window: str, by: str = "") -> str:
    """The time (ms since the epoch) of the latest run record with ``outcome`` in the window."""
    # The record's own timestamp, made a number with label_format so that
    # max_over_time can take it: LogQL has no "timestamp of the last line".
    stamp = f"label_format {RUN_TIME_MS}=`{{{{ __timestamp__ | unixEpochMillis }}}}`"
    inner = f"max_over_time({_runs(selector, [outcome])} | {stamp} | unwrap {RUN_TIME_MS} [{window}])"
    return f"max by ({by}) ({inner})" if by else f"max({inner})"


def _duration(selector: str, function: str, window: str, by: str) -> str:
    argument = "0.95, " if function == "quantile_over_time" else ""
    unwrapped = f'{_runs(selector, FINISHED)} | unwrap {DURATION_MS} | __error__=""'
    return f"{function}({argument}{unwrapped} [{window}]) by ({by})"


def job_dashboard_url(job: str = "") -> str:
    """The path of the per-job dashboard, showing ``job`` when given."""
    return f"/d/{JOB_DASHBOARD_UID}" + (f"?var-job={job}" if job else "")


# ---------------------------------------------------------------- panel pieces


def _target(
    ref: str, expr: str, *, legend: str = "", instant: bool = False, lines: int = 0
) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": _LOKI,
        "editorMode": "code",
        "expr": expr,
        "queryType": "instant" if instant else "range",
        "refId": ref,
    }
    if legend:
        target["legendFormat"] = legend
    if lines:
        target["maxLines"] = lines
    return target


def _colors(mapping: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
        }
        for name, color in mapping.items()
    ]


_LEVEL_COLORS = {
    "fatal": "dark-red",
    "critical": "dark-red",
    "error": "red",
    "warn": "orange",
    "info": "green",
    "debug": "blue",
    "trace": "purple",
}
_OUTCOME_COLORS = {SUCCESS: "green", ERROR: "red", MISSED: "orange", SKIPPED: "blue"}


def _timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    bars: bool = True,
    links: list[dict[str, Any]] | None = None,
    overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    custom: dict[str, Any] = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 80 if bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "stacking": {"group": "A", "mode": "normal" if bars else "none"},
    }
    return {
        "datasource": _LOKI,
        "description": description,
        "fieldConfig": {
            "defaults": {"custom": custom, "links": links or [], "min": 0, "unit": unit},
            "overrides": overrides or [],
        },
        "options": {
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets,
        "title": title,
        "type": "timeseries",
    }


def _logs(title: str, description: str, expr: str, *, lines: int = 1000) -> dict[str, Any]:
    return {
        "datasource": _LOKI,
        "description": description,
        "options": {
            "dedupStrategy": "none",
            "enableLogDetails": True,
            "prettifyLogMessage": False,
            "showCommonLabels": False,
            "showLabels": False,
            "showTime": True,
            "sortOrder": "Descending",
            "wrapLogMessage": True,
        },
        "targets": [_target("A", expr, lines=lines)],
        "title": title,
        "type": "logs",
    }


def _stat(
    title: str, description: str, expr: str, *, unit: str = "short", red_above: int | None = None
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if red_above is not None:
        steps.append({"color": "red", "value": red_above + 1})
    return {
        "datasource": _LOKI,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "noValue": "none",
                "thresholds": {"mode": "absolute", "steps": steps},
                "unit": unit,
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
        "targets": [_target("A", expr, instant=True)],
        "title": title,
        "type": "stat",
    }


class _Grid:
    """Places panels left to right on Grafana's 24-column grid and numbers them."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = self._row_height = 0

    def add(self, panel: dict[str, Any], width: int, height: int) -> dict[str, Any]:
        if self._x + width > 24:
            self._x, self._y, self._row_height = 0, self._y + self._row_height, 0
        panel["gridPos"] = {"h": height, "w": width, "x": self._x, "y": self._y}
        panel["id"] = len(self.panels) + 1
        self._x += width
        self._row_height = max(self._row_height, height)
        self.panels.append(panel)
        return panel


# ---------------------------------------------------------------- variables


def _option_text(tag: JobTag) -> str:
    description = " ".join(tag.description.split())
    return f"{tag.name} — {description}" if description else tag.name


def _job_variable(registry: TagRegistry, *, multi: bool) -> dict[str, Any]:
    """A custom variable listing the registry's tags ("NAME — description" shown, NAME as value)."""
    tags = list(registry)
    # Grafana's custom variable syntax: "text : value" items separated by
    # commas; a comma inside an item is escaped with a backslash.
    query = ",".join(_option_text(tag).replace(",", "\\,") + f" : {tag.name}" for tag in tags)
    options = [{"selected": False, "text": _option_text(tag), "value": tag.name} for tag in tags]
    variable: dict[str, Any] = {
        "description": "The job, by its tag; the list is generated from the tag registry.",
        "hide": 0,
        "includeAll": multi,
        "label": "Job",
        "multi": multi,
        "name": "job",
        "query": query,
        "skipUrlSync": False,
        "type": "custom",
    }
    if multi:
        # "All" means every job of the registry, not every value of the field.
        variable["allValue"] = "|".join(tag.name for tag in tags)
        variable["current"] = {"selected": True, "text": [_JOB_ALL_TEXT], "value": ["$__all"]}
        options.insert(0, {"selected": True, "text": _JOB_ALL_TEXT, "value": "$__all"})
    else:
        variable["current"] = {"selected": True, "text": options[0]["text"], "value": options[0]["value"]}
        options[0]["selected"] = True
    variable["options"] = options
    return variable


def _service_variable() -> dict[str, Any]:
    return {
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": _LOKI,
        "definition": f"label_values({SERVICE})",
        "description": "The application(s), by the service.name resource attribute.",
        "hide": 0,
        "includeAll": True,
        "label": "Service",
        "multi": True,
        "name": "service",
        "options": [],
        "query": {
            "label": SERVICE,
            "refId": "LokiVariableQueryEditor-VariableQuery",
            "stream": "",
            "type": 1,
        },
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def _dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]],
    links: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": links,
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["otel-jobtags", "background-jobs"],
        "templating": {"list": variables},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def _link(title: str, url: str) -> dict[str, Any]:
    return {
        "asDropdown": False,
        "icon": "dashboard",
        "includeVars": False,
        "keepTime": True,
        "tags": [],
        "targetBlank": False,
        "title": title,
        "tooltip": "",
        "type": "link",
        "url": url,
    }


_GENERATED = (
    "Generated by otel-jobtags from the tag registry: regenerate with 'otel-jobtags dashboard' "
    "instead of editing."
)
# Data links from a job to its own dashboard; ${service:queryparam} and
# ${__url_time_range} carry the service selection and the time range along.
_CARRY = "&${service:queryparam}&${__url_time_range}"


# ---------------------------------------------------------------- dashboards


def _overview(registry: TagRegistry, job_tag_as: JobTagAs) -> dict[str, Any]:
    jobs = job_selector("$job", regex=True, job_tag_as=job_tag_as)
    by_job = JOB_TAG
    series_link = [
        {
            "title": "Open ${__field.labels.job_tag}",
            "url": job_dashboard_url("${__field.labels.job_tag}") + _CARRY,
        }
    ]
    grid = _Grid()
    grid.add(
        _timeseries(
            "Log volume per job and level",
            "Records each job logged, by level (Loki's detected_level).",
            [
                _target(
                    "A",
                    f"sum by ({by_job}, {LEVEL}) (count_over_time({jobs} [$__auto]))",
                    legend=f"{{{{{by_job}}}}} {{{{{LEVEL}}}}}",
                )
            ],
            links=series_link,
        ),
        24,
        8,
    )
    errors = f"{jobs} | {LEVEL}=~{logql_string('|'.join(ERROR_LEVELS))}"
    grid.add(
        _timeseries(
            "Errors per job",
            "Records at ERROR and above, per job.",
            [
                _target(
                    "A",
                    f"sum by ({by_job}) (count_over_time({errors} [$__auto]))",
                    legend=f"{{{{{by_job}}}}}",
                )
            ],
            links=series_link,
        ),
        12,
        8,
    )
    grid.add(
        _timeseries(
            "Failed runs per job",
            "Run records with outcome error, per job.",
            [_target("A", _count_runs(jobs, [ERROR], "$__auto", by_job), legend=f"{{{{{by_job}}}}}")],
            links=series_link,
        ),
        12,
        8,
    )
    grid.add(_runs_table(jobs), 24, 9)
    grid.add(
        _timeseries(
            "Run duration per job (p95)",
            "95th percentile of the duration of finished runs, per job.",
            [
                _target(
                    "A", _duration(jobs, "quantile_over_time", "$__auto", by_job), legend=f"{{{{{by_job}}}}}"
                )
            ],
            unit="ms",
            bars=False,
            links=series_link,
        ),
        12,
        9,
    )
    link_service = "&${service:queryparam}&from=${__from}&to=${__to}"
    grid.add(
        {
            "description": "The jobs of the tag registry; a tag opens the job's dashboard.",
            "options": {
                "code": {"language": "markdown", "showLineNumbers": False, "showMiniMap": False},
                "content": render_job_table(
                    registry, link=lambda tag: job_dashboard_url(tag.name) + link_service
                ),
                "mode": "markdown",
            },
            "title": "Jobs",
            "type": "text",
        },
        12,
        9,
    )
    grid.add(_logs("Latest lines", "The newest records of the selected jobs.", jobs, lines=500), 24, 12)
    return _dashboard(
        OVERVIEW_DASHBOARD_UID,
        "Background jobs",
        f"Every background job: log volume, errors, runs. {_GENERATED}",
        grid.panels,
        [_service_variable(), _job_variable(registry, multi=True)],
        [_link("Job details", job_dashboard_url())],
    )


def _runs_table(jobs: str) -> dict[str, Any]:
    by = JOB_TAG
    targets = [
        _target("A", _count_runs(jobs, [], "$__range", by), instant=True),
        _target("B", _count_runs(jobs, [ERROR], "$__range", by), instant=True),
        _target("C", _duration(jobs, "avg_over_time", "$__range", by), instant=True),
        _target("D", _duration(jobs, "quantile_over_time", "$__range", by), instant=True),
        _target("E", _last_run_ms(jobs, SUCCESS, "$__range", by), instant=True),
    ]
    columns = {
        "Value #A": "runs",
        "Value #B": "failures",
        "Value #C": "avg duration",
        "Value #D": "p95 duration",
        "Value #E": "last success",
    }

    def column(name: str, *properties: dict[str, Any]) -> dict[str, Any]:
        return {"matcher": {"id": "byName", "options": name}, "properties": list(properties)}

    link = {"title": "Open ${__value.raw}", "url": job_dashboard_url("${__value.raw}") + _CARRY}
    return {
        "datasource": _LOKI,
        "description": "Per job over the time range: runs, failed runs, run duration, last success.",
        "fieldConfig": {
            "defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}}},
            "overrides": [
                column(by, {"id": "displayName", "value": "job"}, {"id": "links", "value": [link]}),
                column(
                    "failures",
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    {
                        "id": "thresholds",
                        "value": {
                            "mode": "absolute",
                            "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
                        },
                    },
                ),
                column("avg duration", {"id": "unit", "value": "ms"}),
                column("p95 duration", {"id": "unit", "value": "ms"}),
                column("last success", {"id": "unit", "value": "dateTimeFromNow"}),
            ],
        },
        "options": {
            "cellHeight": "sm",
            "showHeader": True,
            "sortBy": [{"desc": False, "displayName": "job"}],
        },
        "targets": targets,
        "title": "Job runs",
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": {by: 0, **{name: i + 1 for i, name in enumerate(columns)}},
                    "renameByName": columns,
                },
            },
        ],
        "type": "table",
    }


def _per_job(registry: TagRegistry, job_tag_as: JobTagAs) -> dict[str, Any]:
    job = job_selector("$job", job_tag_as=job_tag_as)
    grid = _Grid()
    grid.add(_stat("Runs", "Runs recorded in the time range.", _count_runs(job, [], "$__range")), 6, 4)
    grid.add(
        _stat(
            "Failed runs",
            "Runs that ended in an error, in the time range.",
            _count_runs(job, [ERROR], "$__range"),
            red_above=0,
        ),
        6,
        4,
    )
    grid.add(
        _stat(
            "Last success",
            "When the job last succeeded (within the time range).",
            _last_run_ms(job, SUCCESS, "$__range"),
            unit="dateTimeFromNow",
        ),
        6,
        4,
    )
    grid.add(
        _stat(
            "Run duration (p95)",
            "95th percentile of the duration of finished runs.",
            _duration(job, "quantile_over_time", "$__range", JOB_TAG),
            unit="ms",
        ),
        6,
        4,
    )
    grid.add(
        _timeseries(
            "Levels over time",
            "The job's records by level (Loki's detected_level).",
            [_target("A", f"sum by ({LEVEL}) (count_over_time({job} [$__auto]))", legend=f"{{{{{LEVEL}}}}}")],
            overrides=_colors(_LEVEL_COLORS),
        ),
        12,
        8,
    )
    grid.add(
        _timeseries(
            RUNS_PANEL_TITLE,
            "Run records by outcome: success, error, missed (not started in time), skipped (still running).",
            [_target("A", _count_runs(job, [], "$__auto", OUTCOME), legend=f"{{{{{OUTCOME}}}}}")],
            overrides=_colors(_OUTCOME_COLORS),
        ),
        12,
        8,
    )
    errors = f"{job} | {LEVEL}=~{logql_string('|'.join(ERROR_LEVELS))}"
    # The OpenTelemetry handler puts the traceback in exception.stacktrace, not
    # in the body: show it under the message.
    with_traceback = (
        f'{errors} | line_format "{{{{ __line__ }}}}{{{{ with .{STACKTRACE} }}}}\\n{{{{ . }}}}{{{{ end }}}}"'
    )
    grid.add(
        _logs(
            "Errors with tracebacks",
            "The job's records at ERROR and above, each with its traceback.",
            with_traceback,
            lines=200,
        ),
        24,
        10,
    )
    grid.add(_logs("Logs", "Every record the job logged, newest first.", job), 24, 14)
    grid.add(
        _timeseries(
            "Run duration",
            "Duration of finished runs: average and 95th percentile.",
            [
                _target("A", _duration(job, "avg_over_time", "$__auto", JOB_TAG), legend="average"),
                _target("B", _duration(job, "quantile_over_time", "$__auto", JOB_TAG), legend="p95"),
            ],
            unit="ms",
            bars=False,
        ),
        12,
        8,
    )
    grid.add(
        _logs(
            "Run records",
            "One record per run: outcome, duration, scheduled time, run id.",
            _runs(job),
            lines=200,
        ),
        12,
        8,
    )
    dashboard = _dashboard(
        JOB_DASHBOARD_UID,
        "Background job",
        f"One background job: its logs, levels, errors with tracebacks, and runs. {_GENERATED}",
        grid.panels,
        [_service_variable(), _job_variable(registry, multi=False)],
        [_link("All jobs", f"/d/{OVERVIEW_DASHBOARD_UID}")],
    )
    return dashboard


def generate_dashboards(
    registry: TagRegistry, *, job_tag_as: JobTagAs = DEFAULT_JOB_TAG_AS
) -> dict[str, dict[str, Any]]:
    """The Grafana dashboards of a registry's jobs, by uid.

    * ``otel-jobtags-overview`` -- every job: log volume per job and level,
      errors and failed runs per job, a table of runs / failures / duration /
      last success per job, p95 run duration, the job table, latest lines.
      Each job links to its own view.
    * ``otel-jobtags-job`` -- one job, picked with the ``job`` variable (its
      values are the registry's tags): run statistics, levels over time, runs
      by outcome, errors with tracebacks, all logs, run duration, run records.

    Both have a ``service`` variable (Loki's ``service_name``, all by default).
    Every query selects by the job tag field, as :func:`job_selector` builds it.

    Raises:
        ConfigError: the registry is empty, or ``job_tag_as`` is invalid.
    """
    if not len(registry):
        raise ConfigError("The registry has no tags: define the jobs before generating dashboards")
    job_selector("x", job_tag_as=job_tag_as)  # validates the switch
    return {
        OVERVIEW_DASHBOARD_UID: _overview(registry, job_tag_as),
        JOB_DASHBOARD_UID: _per_job(registry, job_tag_as),
    }


def render_dashboard(dashboard: dict[str, Any]) -> str:
    """A dashboard as the JSON text written to disk: sorted keys, 2-space indent, final newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _files(registry: TagRegistry, directory: str | Path, job_tag_as: JobTagAs) -> dict[Path, str]:
    return {
        Path(directory) / f"{uid}.json": render_dashboard(dashboard)
        for uid, dashboard in generate_dashboards(registry, job_tag_as=job_tag_as).items()
    }


def write_dashboards(
    registry: TagRegistry, directory: str | Path, *, job_tag_as: JobTagAs = DEFAULT_JOB_TAG_AS
) -> list[Path]:
    """Write the dashboards as ``<uid>.json`` into ``directory``; returns the files that changed."""
    return write_files(_files(registry, directory, job_tag_as))


def stale_dashboards(
    registry: TagRegistry, directory: str | Path, *, job_tag_as: JobTagAs = DEFAULT_JOB_TAG_AS
) -> list[Path]:
    """The dashboard files in ``directory`` that are missing or differ from what the registry generates."""
    return stale_files(_files(registry, directory, job_tag_as))
