"""Test mode: OTEL_LOGS_EXPORTER and the in-memory install, from a user's test suite.

What a real process leaves at exit is in ``tests/integration/test_test_mode_process.py``.
"""

from __future__ import annotations

import logging

import pytest

import otel_jobtags
from otel_jobtags import ConfigError, TagRegistry, job_context
from otel_jobtags.testing import ExportedLog, capture_exports, export_in_memory


def test_an_unknown_otel_logs_exporter_is_a_config_error(
    registry: TagRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "zipkin")
    with pytest.raises(
        ConfigError, match=r"^Invalid OTEL_LOGS_EXPORTER='zipkin': use one of 'otlp', 'console' or 'none'$"
    ):
        otel_jobtags.install(registry)


def test_export_in_memory_shows_what_would_be_exported(registry: TagRegistry) -> None:
    with export_in_memory(registry, level="INFO") as exported:
        with job_context(registry.AUTO_REBAL):
            logging.getLogger("app.rebalance").info("rebalanced %d accounts", 2)
        assert exported.records() == [
            ExportedLog(
                "INFO",
                "[AUTO_REBAL] rebalanced 2 accounts",
                {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"},
            )
        ]
    assert otel_jobtags.configure.current_installation() is None


def create_app(registry: TagRegistry) -> otel_jobtags.configure.Installation:
    """An application's factory: it installs with its production settings."""
    return otel_jobtags.install(
        registry, service_name="web", endpoint="http://collector.invalid:4317", level="INFO"
    )


def test_capture_exports_turns_the_applications_own_install_to_memory(registry: TagRegistry) -> None:
    with capture_exports() as exported:
        installation = create_app(registry)
        with job_context(registry.PRICE_CACHE, run_id="r1"):
            logging.getLogger("app.prices").warning("stale quote")
        assert exported.records() == [
            ExportedLog(
                "WARN",
                "[PRICE_CACHE] stale quote",
                {"job.tag": "PRICE_CACHE", "job.id": "price_cache", "job.run_id": "r1"},
            )
        ]
    assert installation.settings is None  # no OTLP exporter was made
    installation.shutdown()
    assert installation.stats.delivered == 1


def test_outside_capture_exports_install_uses_its_settings_again(registry: TagRegistry) -> None:
    with capture_exports():
        pass
    assert create_app(registry).settings == otel_jobtags.configure.Settings(
        "grpc", "http://collector.invalid:4317", {}, "web"
    )
