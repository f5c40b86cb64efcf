"""Walk generated Grafana dashboards and alerting provisioning documents in tests."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from otel_jobtags import TagRegistry

REPO = Path(__file__).resolve().parents[2]
"""The repository root."""


def small_registry() -> TagRegistry:
    """Three jobs: hourly (cron), every 5 s (interval, a comma in its description), manual."""
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "automatic portfolio rebalancing", "hourly at minute 17")
    jobs.define("PRICE_CACHE", "price_cache", "refresh the price cache, fast", "every 5 s")
    jobs.define("REPORT", "monthly_report", "", "manual")
    return jobs


_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def panel_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, LogQL expression) for every target of every panel, in order."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def rule_queries(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(rule title, LogQL expression) for every Loki query of every alert rule, in order."""
    return [
        (rule["title"], query["model"]["expr"])
        for group in document["groups"]
        for rule in group["rules"]
        for query in rule["data"]
        if query["datasourceUid"] != "__expr__"
    ]


def variable_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """The value each dashboard variable has when the dashboard opens, as Grafana sends it to Loki."""
    values = {}
    for variable in dashboard["templating"]["list"]:
        current = variable["current"]["value"]
        if current == ["$__all"]:
            values[variable["name"]] = variable["allValue"]
        else:
            values[variable["name"]] = current
    return values


def parse_duration(text: str) -> timedelta:
    """A Prometheus/LogQL duration such as ``26h24m`` as a timedelta."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def range_of(expr: str) -> str:
    """The one range ``[...]`` of a LogQL metric query (all its ranges must be equal)."""
    ranges = set(re.findall(r"\[([^\]]+)\]", expr))
    if len(ranges) != 1:
        raise ValueError(f"expected one range in {expr!r}, found {sorted(ranges)}")
    return ranges.pop()


def grafana_custom_options(query: str) -> list[tuple[str, str]]:
    """(text, value) of a custom variable's query, parsed the way Grafana's CustomVariable does."""
    options = []
    for item in re.findall(r"(?:\\,|[^,])+", query):
        item = item.replace("\\,", ",")
        match = re.match(r"^\s*(.+)\s:\s(.+)$", item)
        if match:
            options.append((match.group(1).strip(), match.group(2).strip()))
        else:
            options.append((item.strip(), item.strip()))
    return options
