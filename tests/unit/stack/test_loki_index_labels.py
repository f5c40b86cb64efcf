"""loki/loki-config.yaml: which OTLP resource attributes become index labels.

Loki is AGPL and does not run here, so this resolves the file the way Loki
3.7's source does (pkg/loghttp/push/otlp_config.go): unless
``limits_config.otlp_config.resource_attributes.ignore_defaults`` is true,
``distributor.otlp_config.default_resource_attributes_as_index_labels`` goes
first as one ``index_label`` rule, then the ``attributes_config`` rules in
order; the first rule whose ``attributes`` or (anchored) ``regex`` matches
decides; an attribute no rule matches is structured metadata.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from support.prerequisites import REPO_ROOT

LOKI_CONFIG = REPO_ROOT / "loki" / "loki-config.yaml"

# Loki 3.7's default for -distributor.otlp.default_resource_attributes_as_index_labels
# (GlobalOTLPConfig.RegisterFlags; the configuration reference's `distributor`
# block, https://grafana.com/docs/loki/latest/configure/#distributor).
LOKI_DEFAULT_INDEX_LABELS = [
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
]
# A new value per process or pod: Loki's docs ("Remove default OpenTelemetry
# labels") recommend structured metadata for both.
PER_PROCESS = ("service.instance.id", "k8s.pod.name")


def resource_attribute_action(config: dict[str, Any], attribute: str) -> str:
    """The action Loki takes on an OTLP resource attribute under ``config``."""
    defaults = (
        config.get("distributor", {})
        .get("otlp_config", {})
        .get("default_resource_attributes_as_index_labels", LOKI_DEFAULT_INDEX_LABELS)
    )
    resource = config.get("limits_config", {}).get("otlp_config", {}).get("resource_attributes", {})
    rules: list[dict[str, Any]] = list(resource.get("attributes_config", []))
    if not resource.get("ignore_defaults", False) and defaults:
        rules.insert(0, {"action": "index_label", "attributes": defaults})
    for rule in rules:
        regex = rule.get("regex")
        if (regex is not None and re.fullmatch(regex, attribute)) or attribute in rule.get("attributes", []):
            action: str = rule.get("action", "structured_metadata")
            return action
    return "structured_metadata"


@pytest.fixture(scope="module")
def loki() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(LOKI_CONFIG.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("attribute", PER_PROCESS)
def test_per_process_attributes_cannot_become_index_labels(loki: dict[str, Any], attribute: str) -> None:
    assert resource_attribute_action(loki, attribute) == "structured_metadata"


def test_the_other_default_index_labels_are_kept(loki: dict[str, Any]) -> None:
    expected = [a for a in LOKI_DEFAULT_INDEX_LABELS if a not in PER_PROCESS]

    assert loki["distributor"]["otlp_config"]["default_resource_attributes_as_index_labels"] == expected
    assert [a for a in expected if resource_attribute_action(loki, a) != "index_label"] == []


@pytest.mark.parametrize(
    ("config", "action"),
    [
        ({}, "index_label"),
        # A structured_metadata rule comes after the default list: too late.
        (
            {
                "limits_config": {
                    "otlp_config": {
                        "resource_attributes": {
                            "attributes_config": [
                                {"action": "structured_metadata", "attributes": ["service.instance.id"]}
                            ]
                        }
                    }
                }
            },
            "index_label",
        ),
        (
            {
                "limits_config": {
                    "otlp_config": {
                        "resource_attributes": {
                            "ignore_defaults": True,
                            "attributes_config": [{"action": "index_label", "regex": "service\\..*"}],
                        }
                    }
                }
            },
            "index_label",
        ),
        (
            {
                "distributor": {
                    "otlp_config": {"default_resource_attributes_as_index_labels": ["service.name"]}
                }
            },
            "structured_metadata",
        ),
    ],
    ids=[
        "loki-defaults",
        "late-structured-metadata-rule",
        "ignore-defaults-with-a-broad-regex",
        "trimmed-default-list",
    ],
)
def test_the_resolution_model_follows_lokis_rule_order(config: dict[str, Any], action: str) -> None:
    assert resource_attribute_action(config, "service.instance.id") == action
