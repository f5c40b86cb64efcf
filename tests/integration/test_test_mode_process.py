"""Test mode from a user's test suite, in a real process: what is left at exit, and the console.

(The in-process side of test mode is in ``tests/unit/configure/test_test_mode.py``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from support.otlp import free_port

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
