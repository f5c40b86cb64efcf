"""Test mode: OTEL_LOGS_EXPORTER and the in-memory install, from a user's test suite."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from support.otlp import free_port

import otel_jobtags
from otel_jobtags import ConfigError, TagRegistry, job_context
from otel_jobtags.testing import ExportedLog, capture_exports, export_in_memory

APP = textwrap.dedent(
    """
    import logging
    import otel_jobtags
    from otel_jobtags import TagRegistry, job_context

    JOBS = TagRegistry()
    JOBS.define("AUTO_REBAL", "auto_rebalance", "automatic portfolio rebalancing", "hourly at minute 17")

    def create_app():
        installation = otel_jobtags.install(JOBS, service_name="web", level="INFO", shutdown_timeout=3)
        return installation

    installation = create_app()
    with job_context("auto_rebalance"):
        for i in range(23):
            logging.getLogger("app").info("step %d", i)
    print(installation.stats.emitted)
    """
)


def run_app(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(environ)
    # Nothing listens there: a real export would wait and give up at exit.
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    return subprocess.run(
        [sys.executable, "-c", APP], capture_output=True, text=True, env=env, timeout=120, check=True
    )


def test_a_test_suite_with_otel_logs_exporter_none_has_nothing_left_to_deliver_at_exit() -> None:
    result = run_app({"OTEL_LOGS_EXPORTER": "none"})
    assert result.stdout == "23\n"
    assert result.stderr == ""


def test_without_it_the_undelivered_records_are_reported_at_exit() -> None:
    result = run_app({})
    assert "23 log records were not delivered" in result.stderr


def test_otel_logs_exporter_console_prints_each_record_on_stdout() -> None:
    result = run_app({"OTEL_LOGS_EXPORTER": "console"})
    decoder, rest, records = json.JSONDecoder(), result.stdout.strip(), []
    while rest:  # the console exporter prints indented JSON objects, one per record
        value, end = decoder.raw_decode(rest)
        records.append(value)
        rest = rest[end:].lstrip()
    records = [r for r in records if isinstance(r, dict)]
    assert [r["body"] for r in records][:2] == ["[AUTO_REBAL] step 0", "[AUTO_REBAL] step 1"]
    assert records[0]["attributes"] == {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"}
    assert result.stderr == ""


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
