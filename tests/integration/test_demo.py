"""The demo: the 13 seed jobs, run for a few seconds, every tag in the log and the summary."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.otlp import HttpReceiver

from otel_jobtags.cli import main
from otel_jobtags.demo import JOBS, run_demo

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL): (.*)$")


def test_demo_logs_every_job_with_its_prefix_and_summarises_them(tmp_path: Path) -> None:
    log_file = tmp_path / "demo.log"
    out = io.StringIO()
    summaries = run_demo(duration=2.5, log_file=log_file, seed=7, out=out)
    assert set(summaries) == set(JOBS.names)
    assert all(s.records > 0 for s in summaries.values())
    tagged = set()
    for line in log_file.read_text("utf-8").splitlines():
        m = LINE.match(line)
        if m and (t := re.match(r"\[([A-Z_]+)\] ", m.group(2))):
            tagged.add(t.group(1))
    assert tagged == set(JOBS.names)
    text = out.getvalue()
    for tag in JOBS:
        assert re.search(rf"^{tag.name}\s+{tag.job_id}\s+\d+", text, re.M), tag.name
    # the seed's first run of these two jobs fails with a traceback
    assert summaries["AUTO_REBAL"].errors >= 1
    assert "Traceback (most recent call last):" in log_file.read_text("utf-8")


def test_demo_exports_to_an_otlp_endpoint_when_one_is_set(tmp_path: Path) -> None:
    with HttpReceiver() as receiver:
        run_demo(
            duration=1.5,
            log_file=tmp_path / "demo.log",
            endpoint=receiver.base_url,  # type: ignore[attr-defined]
            protocol="http/protobuf",
            seed=3,
            out=io.StringIO(),
        )
        records = receiver.wait_for(13, timeout=5, predicate=lambda r: "job.tag" in r.attributes)
    assert {r.attributes["job.tag"] for r in records} == set(JOBS.names)
    assert all(r.body.startswith(f"[{r.attributes['job.tag']}] ") for r in records)
    assert {r.resource["service.name"] for r in records} == {"otel-jobtags-demo"}


def test_demo_command_exits_zero(tmp_path: Path, capsys: object) -> None:
    assert main(["demo", "--duration", "1", "--log-file", str(tmp_path / "d.log"), "--seed", "1"]) == 0


def test_demo_command_runs_as_a_program(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_jobtags",
            "demo",
            "--duration",
            "1",
            "--log-file",
            str(tmp_path / "d.log"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^otel-jobtags demo: 13 jobs for 1 s; text log: ", result.stdout, re.M)
    assert "QUEUE_REBAL" in result.stdout


def test_demo_rejects_a_negative_duration(capsys: object) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--duration", "-1"])
    assert exc.value.code == 2


def test_an_invalid_export_setting_fails_before_logging_is_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_jobtags import ConfigError
    from otel_jobtags.context import active_registry

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    root = logging.getLogger()
    before = (list(root.handlers), root.level, active_registry())
    with pytest.raises(ConfigError, match=r"^Invalid OTEL_EXPORTER_OTLP_PROTOCOL='carrier-pigeon'"):
        run_demo(duration=0.1, log_file=tmp_path / "d.log", out=io.StringIO())
    assert (list(root.handlers), root.level, active_registry()) == before


def test_demo_command_serves_every_jobs_view_and_prints_its_url(tmp_path: Path) -> None:
    import json
    import urllib.request

    from otel_jobtags.store import Store

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_jobtags",
            "demo",
            "--duration",
            "6",
            "--seed",
            "2",
            "--log-file",
            str(tmp_path / "d.log"),
            "--http",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPORTER_OTLP")}
        | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert process.stdout is not None
        url = None
        for line in process.stdout:
            found = re.match(
                r"^otel-jobtags demo: open (http://127\.0\.0\.1:\d+/) to see every job's panels", line
            )
            if found:
                url = found.group(1)
                break
        assert url, process.stderr.read() if process.stderr else ""
        with urllib.request.urlopen(f"{url}api/v1/jobs", timeout=30) as answer:
            listed = json.load(answer)
        process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)

    assert process.returncode == 0
    assert {job["job_tag"] for job in listed["jobs"]} == set(JOBS.names)
    with Store.open(tmp_path / "d.db", readonly=True) as store:
        assert store.job_tags() == sorted(JOBS.names)  # every job exported over OTLP into the embedded store
        assert all(store.runs(name) for name in JOBS.names)  # each job's run records: its timeline


def test_demo_runs_every_seed_job_with_run_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    log_file = tmp_path / "demo.log"
    summaries = run_demo(duration=1.5, log_file=log_file, seed=7, out=io.StringIO())

    assert sorted(name for name, s in summaries.items() if s.records) == sorted(JOBS.names)
    text = log_file.read_text(encoding="utf-8")
    for tag in JOBS:
        assert f"{tag} run " in text, f"no run record of {tag}"
