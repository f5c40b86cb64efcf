"""Grafana dashboards for the jobs of a tag registry.

:func:`generate_dashboards` builds an overview of every job and a per-job
view, as deterministic Grafana dashboard JSON, from the panel pieces of
``_panels`` and the queries of ``_runqueries``; :func:`write_dashboards`
writes them into the directory Grafana provisions dashboards from. Jobs are
selected with :func:`~otel_jobtags.grafana.job_selector` (``_logql``), whose
``job_tag_as`` must match how ``loki-config.yaml`` stores the attribute.

Run records (one record per run, on the ``otel_jobtags.runs`` logger, with the
attributes ``job.outcome``, ``job.duration_ms``, ``job.scheduled_time`` and
``job.run_id``) feed the run panels and the alert rules (``_alerts``).

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._generated import stale_files, write_files
from ..errors import ConfigError
from ..markdown import render_job_table
from ..tags import TagRegistry
from ._logql import DEFAULT_JOB_TAG_AS, JobTagAs, job_selector, logql_string, loki_field
from ._panels import (
    CARRY_SELECTION,
    GENERATED_NOTE,
    LEVEL_COLORS,
    LOKI_DATASOURCE,
    LOKI_DATASOURCE_UID,
    OUTCOME_COLORS,
    Grid,
    color_steps,
    dashboard_json,
    dashboard_link,
    job_variable,
    logs_panel,
    panel_target,
    service_variable,
    stat_panel,
    timeseries_panel,
)
from ._runqueries import (
    ERROR,
    ERROR_LEVELS,
    INSTANCE,
    JOB_TAG,
    LEVEL,
    OUTCOME,
    STACKTRACE,
    SUCCESS,
    count_runs,
    last_run_ms,
    run_duration,
    run_records,
)

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

OVERVIEW_DASHBOARD_UID = "otel-jobtags-overview"
"""The uid of the dashboard showing every job."""
JOB_DASHBOARD_UID = "otel-jobtags-job"
"""The uid of the per-job dashboard (its ``job`` variable picks the job)."""
RUNS_PANEL_ID = 6
"""The id of the per-job dashboard's runs panel, which alert rules link to."""
RUNS_PANEL_TITLE = "Runs by outcome"


def job_dashboard_url(job: str = "") -> str:
    """The path of the per-job dashboard, showing ``job`` when given."""
    return f"/d/{JOB_DASHBOARD_UID}" + (f"?var-job={job}" if job else "")


# ---------------------------------------------------------------- dashboards


def _overview(registry: TagRegistry, job_tag_as: JobTagAs) -> dict[str, Any]:
    jobs = job_selector("$job", regex=True, job_tag_as=job_tag_as)
    by_job = JOB_TAG
    series_link = [
        {
            "title": "Open ${__field.labels.job_tag}",
            "url": job_dashboard_url("${__field.labels.job_tag}") + CARRY_SELECTION,
        }
    ]
    grid = Grid()
    grid.add(
        timeseries_panel(
            "Log volume per job and level",
            "Records each job logged, by level (Loki's detected_level).",
            [
                panel_target(
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
        timeseries_panel(
            "Errors per job",
            "Records at ERROR and above, per job.",
            [
                panel_target(
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
        timeseries_panel(
            "Failed runs per job",
            "Run records with outcome error, per job.",
            [panel_target("A", count_runs(jobs, [ERROR], "$__auto", by_job), legend=f"{{{{{by_job}}}}}")],
            links=series_link,
        ),
        12,
        8,
    )
    grid.add(_runs_table(jobs), 24, 9)
    grid.add(
        timeseries_panel(
            "Run duration per job (p95)",
            "95th percentile of the duration of finished runs, per job.",
            [
                panel_target(
                    "A",
                    run_duration(jobs, "quantile_over_time", "$__auto", by_job),
                    legend=f"{{{{{by_job}}}}}",
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
    grid.add(logs_panel("Latest lines", "The newest records of the selected jobs.", jobs, lines=500), 24, 12)
    return dashboard_json(
        OVERVIEW_DASHBOARD_UID,
        "Background jobs",
        f"Every background job: log volume, errors, runs. {GENERATED_NOTE}",
        grid.panels,
        [service_variable(), job_variable(registry, multi=True)],
        [dashboard_link("Job details", job_dashboard_url())],
    )


def _runs_table(jobs: str) -> dict[str, Any]:
    by = JOB_TAG
    targets = [
        panel_target("A", count_runs(jobs, [], "$__range", by), instant=True),
        panel_target("B", count_runs(jobs, [ERROR], "$__range", by), instant=True),
        panel_target("C", run_duration(jobs, "avg_over_time", "$__range", by), instant=True),
        panel_target("D", run_duration(jobs, "quantile_over_time", "$__range", by), instant=True),
        panel_target("E", last_run_ms(jobs, SUCCESS, "$__range", by), instant=True),
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

    link = {"title": "Open ${__value.raw}", "url": job_dashboard_url("${__value.raw}") + CARRY_SELECTION}
    return {
        "datasource": LOKI_DATASOURCE,
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
    grid = Grid()
    grid.add(stat_panel("Runs", "Runs recorded in the time range.", count_runs(job, [], "$__range")), 6, 4)
    grid.add(
        stat_panel(
            "Failed runs",
            "Runs that ended in an error, in the time range.",
            count_runs(job, [ERROR], "$__range"),
            red_above=0,
        ),
        6,
        4,
    )
    grid.add(
        stat_panel(
            "Last success",
            "When the job last succeeded (within the time range).",
            last_run_ms(job, SUCCESS, "$__range"),
            unit="dateTimeFromNow",
        ),
        6,
        4,
    )
    grid.add(
        stat_panel(
            "Run duration (p95)",
            "95th percentile of the duration of finished runs.",
            run_duration(job, "quantile_over_time", "$__range", JOB_TAG),
            unit="ms",
        ),
        6,
        4,
    )
    grid.add(
        timeseries_panel(
            "Levels over time",
            "The job's records by level (Loki's detected_level).",
            [
                panel_target(
                    "A", f"sum by ({LEVEL}) (count_over_time({job} [$__auto]))", legend=f"{{{{{LEVEL}}}}}"
                )
            ],
            overrides=color_steps(LEVEL_COLORS),
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            RUNS_PANEL_TITLE,
            "Run records by outcome: success, error, missed (not started in time), skipped (still running).",
            [panel_target("A", count_runs(job, [], "$__auto", OUTCOME), legend=f"{{{{{OUTCOME}}}}}")],
            overrides=color_steps(OUTCOME_COLORS),
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
        logs_panel(
            "Errors with tracebacks",
            "The job's records at ERROR and above, each with its traceback.",
            with_traceback,
            lines=200,
        ),
        24,
        10,
    )
    grid.add(logs_panel("Logs", "Every record the job logged, newest first.", job), 24, 14)
    grid.add(
        timeseries_panel(
            "Run duration",
            "Duration of finished runs: average and 95th percentile.",
            [
                panel_target("A", run_duration(job, "avg_over_time", "$__auto", JOB_TAG), legend="average"),
                panel_target("B", run_duration(job, "quantile_over_time", "$__auto", JOB_TAG), legend="p95"),
            ],
            unit="ms",
            bars=False,
        ),
        12,
        8,
    )
    grid.add(
        logs_panel(
            "Run records",
            "One record per run: outcome, duration, scheduled time, run id.",
            run_records(job),
            lines=200,
        ),
        12,
        8,
    )
    grid.add(
        timeseries_panel(
            "Runs by process",
            "Run records per process (service.instance.id). One line at a time is one scheduler; two "
            "lines side by side are two processes running the job, each at every tick (a scheduler per "
            "gunicorn worker or replica): the overlapping alert. A line that ends as another begins is "
            "a restart or a takeover.",
            [
                panel_target(
                    "A",
                    f"sum by ({INSTANCE}) (count_over_time({run_records(job)} [$__auto]))",
                    legend=f"{{{{{INSTANCE}}}}}",
                )
            ],
        ),
        24,
        8,
    )
    dashboard = dashboard_json(
        JOB_DASHBOARD_UID,
        "Background job",
        f"One background job: its logs, levels, errors with tracebacks, and runs. {GENERATED_NOTE}",
        grid.panels,
        [service_variable(), job_variable(registry, multi=False)],
        [dashboard_link("All jobs", f"/d/{OVERVIEW_DASHBOARD_UID}")],
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
