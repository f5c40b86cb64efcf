"""loki/loki-config.yaml: what the stack relies on Loki to do.

Loki is AGPL and is neither built nor run here, so these checks read the
file: schema and storage, retention, and how OTLP attributes are mapped.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from support.prerequisites import REPO_ROOT

LOKI_CONFIG = REPO_ROOT / "loki" / "loki-config.yaml"


@pytest.fixture(scope="module")
def loki() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(LOKI_CONFIG.read_text(encoding="utf-8"))
    return loaded


def test_single_node_on_the_filesystem(loki: dict[str, Any]) -> None:
    assert loki["auth_enabled"] is False
    assert loki["common"]["replication_factor"] == 1
    assert loki["common"]["ring"]["kvstore"]["store"] == "inmemory"
    assert set(loki["common"]["storage"]) == {"filesystem"}


def test_schema_is_v13_on_tsdb(loki: dict[str, Any]) -> None:
    (period,) = loki["schema_config"]["configs"]

    assert (period["store"], period["schema"], period["object_store"]) == ("tsdb", "v13", "filesystem")
    assert period["index"] == {"prefix": "index_", "period": "24h"}


def test_retention_is_enabled_for_30_days(loki: dict[str, Any]) -> None:
    compactor = loki["compactor"]

    assert compactor["retention_enabled"] is True
    # Loki 3 refuses retention without a store for delete requests.
    assert compactor["delete_request_store"] == "filesystem"
    assert loki["limits_config"]["retention_period"] == "30d"


def test_job_tag_is_an_index_label_and_job_id_structured_metadata(loki: dict[str, Any]) -> None:
    limits = loki["limits_config"]

    assert limits["allow_structured_metadata"] is True
    assert limits["otlp_config"] == {
        "log_attributes": [
            {"action": "index_label", "attributes": ["job.tag"]},
            {"action": "structured_metadata", "attributes": ["job.id"]},
        ]
    }


def test_no_usage_reports_leave_the_machine(loki: dict[str, Any]) -> None:
    assert loki["analytics"] == {"reporting_enabled": False}


def test_compose_runs_loki_3_5_or_newer_with_this_file() -> None:
    stack = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    loki = stack["services"]["loki"]
    match = re.fullmatch(r"grafana/loki:(\d+)\.(\d+)\.(\d+)", loki["image"])

    assert match, loki["image"]
    # log_attributes with action index_label needs Loki 3.5.
    assert (int(match[1]), int(match[2])) >= (3, 5)
    assert loki["command"] == ["-config.file=/etc/loki/loki-config.yaml"]
    assert "./loki/loki-config.yaml:/etc/loki/loki-config.yaml:ro" in loki["volumes"]
