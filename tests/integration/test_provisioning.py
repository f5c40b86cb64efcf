"""The generated files and the stack's provisioning files refer to each other correctly.

The stack's own tests check its datasource, provider and compose files; these
check the links to what is generated here: the Loki datasource uid the
dashboards and rules use, the directory the provider loads and compose
mounts the dashboards at, and the provisioning mount that carries the alert
rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from support.grafana import REPO

from otel_jobtags.grafana import (
    ALERT_RULES_FILE,
    JOB_DASHBOARD_UID,
    LOKI_DATASOURCE_UID,
    OVERVIEW_DASHBOARD_UID,
)

PROVISIONING = REPO / "grafana" / "provisioning"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_loki_datasource_has_the_uid_dashboards_and_rules_use() -> None:
    document = load(PROVISIONING / "datasources" / "loki.yaml")
    assert [ds["type"] for ds in document["datasources"] if ds.get("uid") == LOKI_DATASOURCE_UID] == ["loki"]


def test_the_dashboard_provider_loads_the_directory_compose_mounts_the_dashboards_at() -> None:
    document = load(PROVISIONING / "dashboards" / "provider.yaml")
    assert "/var/lib/grafana/dashboards" in [p["options"]["path"] for p in document["providers"]]


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            mounts.append((source, rest.split(":")[0]))
        else:
            mounts.append((str(volume.get("source", "")), str(volume.get("target", ""))))
    return mounts


def test_compose_mounts_the_generated_files_where_grafana_reads_them() -> None:
    compose = load(REPO / "docker-compose.yml")
    grafana = [s for s in compose["services"].values() if "grafana/grafana" in str(s.get("image", ""))]
    assert len(grafana) == 1, "one Grafana service"
    mounts = [(Path(source).as_posix().lstrip("./"), target) for source, target in _mounts(grafana[0])]
    assert ("grafana/dashboards", "/var/lib/grafana/dashboards") in mounts
    assert (
        any(
            source == "grafana/provisioning" and target == "/etc/grafana/provisioning"
            for source, target in mounts
        )
        or ("grafana/provisioning/alerting", "/etc/grafana/provisioning/alerting") in mounts
    )


def test_the_generated_files_are_where_the_provider_and_alerting_look() -> None:
    present = {p.name for p in (REPO / "grafana" / "dashboards").glob("*.json")}
    assert {f"{JOB_DASHBOARD_UID}.json", f"{OVERVIEW_DASHBOARD_UID}.json"} <= present
    assert (PROVISIONING / "alerting" / ALERT_RULES_FILE).is_file()
