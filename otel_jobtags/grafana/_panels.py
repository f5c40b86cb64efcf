"""Panel, variable and dashboard pieces the generated dashboards are built from."""

from __future__ import annotations

from typing import Any

from ..tags import JobTag, TagRegistry
from ._runqueries import ERROR, MISSED, SERVICE, SKIPPED, SUCCESS

__all__ = [
    "CARRY_SELECTION",
    "GENERATED_NOTE",
    "LEVEL_COLORS",
    "LOKI_DATASOURCE",
    "LOKI_DATASOURCE_UID",
    "OUTCOME_COLORS",
    "SCHEMA_VERSION",
    "Grid",
    "color_steps",
    "dashboard_json",
    "dashboard_link",
    "job_variable",
    "logs_panel",
    "panel_target",
    "service_variable",
    "stat_panel",
    "timeseries_panel",
]

# Grafana 11.0's dashboard schema; Grafana 11.x and 12.x load it and migrate it
# in memory, and nothing these dashboards use changed in later migrations.
SCHEMA_VERSION = 39

LOKI_DATASOURCE_UID = "loki"
"""The uid of the Loki datasource in ``grafana/provisioning/datasources``."""

_JOB_ALL_TEXT = "All"
LOKI_DATASOURCE = {"type": "loki", "uid": LOKI_DATASOURCE_UID}


def panel_target(
    ref: str, expr: str, *, legend: str = "", instant: bool = False, lines: int = 0
) -> dict[str, Any]:
    target: dict[str, Any] = {
        "datasource": LOKI_DATASOURCE,
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


def color_steps(mapping: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
        }
        for name, color in mapping.items()
    ]


LEVEL_COLORS = {
    "fatal": "dark-red",
    "critical": "dark-red",
    "error": "red",
    "warn": "orange",
    "info": "green",
    "debug": "blue",
    "trace": "purple",
}
OUTCOME_COLORS = {SUCCESS: "green", ERROR: "red", MISSED: "orange", SKIPPED: "blue"}


def timeseries_panel(
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
        "datasource": LOKI_DATASOURCE,
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


def logs_panel(title: str, description: str, expr: str, *, lines: int = 1000) -> dict[str, Any]:
    return {
        "datasource": LOKI_DATASOURCE,
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
        "targets": [panel_target("A", expr, lines=lines)],
        "title": title,
        "type": "logs",
    }


def stat_panel(
    title: str, description: str, expr: str, *, unit: str = "short", red_above: int | None = None
) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if red_above is not None:
        steps.append({"color": "red", "value": red_above + 1})
    return {
        "datasource": LOKI_DATASOURCE,
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
        "targets": [panel_target("A", expr, instant=True)],
        "title": title,
        "type": "stat",
    }


class Grid:
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


def job_variable(registry: TagRegistry, *, multi: bool) -> dict[str, Any]:
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


def service_variable() -> dict[str, Any]:
    return {
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": LOKI_DATASOURCE,
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


def dashboard_json(
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


def dashboard_link(title: str, url: str) -> dict[str, Any]:
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


GENERATED_NOTE = (
    "Generated by otel-jobtags from the tag registry: regenerate with 'otel-jobtags dashboard' "
    "instead of editing."
)
# Data links from a job to its own dashboard; ${service:queryparam} and
# ${__url_time_range} carry the service selection and the time range along.
CARRY_SELECTION = "&${service:queryparam}&${__url_time_range}"
