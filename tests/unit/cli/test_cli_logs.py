"""`otel-jobtags logs`: a job's records from text log files, run in-process and as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_jobtags import cli

ROOT = Path(__file__).resolve().parents[3]

LOG = """\
2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] 🔄 job started
2025-10-23 14:30:45,200 DEBUG: [PRICE_CACHE] refreshed 12 prices
2025-10-23 14:30:47,345 ERROR: [AUTO_REBAL] ❌ failed: upstream answered 503
Traceback (most recent call last):
  File "/srv/app/jobs.py", line 94, in job
app.UpstreamError: 503
2025-10-23 14:30:49,456 INFO: [AUTO_REBAL] ✅ done - processed: 5 items
"""


@pytest.fixture(autouse=True)
def _no_registry_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_JOBTAGS_REGISTRY", raising=False)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    path.write_text(LOG, encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_logs_prints_the_job_s_records_as_they_were_logged(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "logs", "--job", "auto_rebalance", str(log)) == (
        0,
        "2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] 🔄 job started\n"
        "2025-10-23 14:30:47,345 ERROR: [AUTO_REBAL] ❌ failed: upstream answered 503\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app/jobs.py", line 94, in job\n'
        "app.UpstreamError: 503\n"
        "2025-10-23 14:30:49,456 INFO: [AUTO_REBAL] ✅ done - processed: 5 items\n",
        "",
    )


def test_logs_writes_json_lines(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "logs", "-j", "AUTO_REBAL", "--level", "error", "--format", "json", str(log))
    assert (code, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "time": "2025-10-23T14:30:47.345000",
            "level": "ERROR",
            "tag": "AUTO_REBAL",
            "job_id": "auto_rebalance",
            "message": "❌ failed: upstream answered 503",
            "continuation": [
                "Traceback (most recent call last):",
                '  File "/srv/app/jobs.py", line 94, in job',
                "app.UpstreamError: 503",
            ],
            "source": str(log),
        }
    ]


@pytest.mark.parametrize(
    ("options", "messages"),
    [
        (["--tail", "1"], ["✅ done - processed: 5 items"]),
        (
            ["--since", "2025-10-23 14:30:46", "--until", "2025-10-23T14:30:49"],
            ["❌ failed: upstream answered 503"],
        ),
        (["--contains", "UPSTREAMERROR", "-i"], ["❌ failed: upstream answered 503"]),
        (
            [],
            [
                "🔄 job started",
                "refreshed 12 prices",
                "❌ failed: upstream answered 503",
                "✅ done - processed: 5 items",
            ],
        ),
    ],
)
def test_logs_selects_by_tail_time_and_text(
    log: Path, capsys: pytest.CaptureFixture[str], options: list[str], messages: list[str]
) -> None:
    code, out, _ = run(capsys, "logs", *options, "--format", "json", str(log))
    assert (code, [json.loads(line)["message"] for line in out.splitlines()]) == (0, messages)


def test_logs_that_match_nothing_exit_0_with_no_output(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "logs", "--job", "send_daily_summary", str(log)) == (0, "", "")


def test_an_unknown_job_is_a_usage_error_listing_the_known_jobs(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "logs", "--job", "nope", str(log))
    assert (code, out) == (2, "")
    assert err == (
        "otel-jobtags: error: Unknown job 'nope': known jobs are precision_cache, symbol_validator, "
        "market_info, price_cache, update_open_orders, update_positions, send_daily_summary, "
        "calculate_daily_performance, auto_rebalance, securities_token_refresh, queue_rebalancer, "
        "release_stale_processing, websocket_health_monitor\n"
    )


def test_a_missing_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.log"
    assert run(capsys, "logs", str(missing)) == (
        1,
        "",
        f"otel-jobtags: error: No such log file: '{missing}'\n",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["logs", "--follow", "a.log", "b.log"], "--follow reads one LOGFILE"),
        (["logs", "--max-seconds", "1", "a.log"], "--max-seconds goes with --follow"),
        (["logs", "--level", "loud", "a.log"], "argument -l/--level: Invalid level 'loud': use DEBUG, INFO,"),
        (
            ["logs", "--since", "yesterday", "a.log"],
            "argument --since: Invalid time 'yesterday': use ISO 8601",
        ),
        (
            ["logs", "--registry", "no_colon", "a.log"],
            "argument --registry: 'no_colon' is not a module:attribute",
        ),
    ],
)
def test_bad_options_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_registry_comes_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_logs_jobs.py").write_text(
        "from otel_jobtags import TagRegistry\nJOBS = TagRegistry()\nJOBS.define('MY_JOB', 'my_job')\n"
    )
    (tmp_path / "app.log").write_text("2025-10-23 14:30:45,123 INFO: [MY_JOB] mine\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OTEL_JOBTAGS_REGISTRY", "cli_logs_jobs:JOBS")
    assert run(capsys, "logs", "-j", "my_job", str(tmp_path / "app.log")) == (
        0,
        "2025-10-23 14:30:45,123 INFO: [MY_JOB] mine\n",
        "",
    )


@pytest.mark.parametrize(
    ("env", "code", "message"),
    [
        ("not a spec", 2, "Invalid OTEL_JOBTAGS_REGISTRY='not a spec': write module:attribute, "
         "e.g. 'myapp.jobs:JOBS'"),
        ("no_such_module_xyz:JOBS", 2, "Invalid OTEL_JOBTAGS_REGISTRY='no_such_module_xyz:JOBS': cannot "
         "import 'no_such_module_xyz': No module named 'no_such_module_xyz'"),
        ("otel_jobtags.demo:NOPE", 2, "Invalid OTEL_JOBTAGS_REGISTRY='otel_jobtags.demo:NOPE': module "
         "'otel_jobtags.demo' has no attribute 'NOPE'"),
    ],
)  # fmt: skip
def test_a_registry_that_cannot_be_loaded_is_reported(
    log: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    code: int,
    message: str,
) -> None:
    monkeypatch.setenv("OTEL_JOBTAGS_REGISTRY", env)
    assert run(capsys, "logs", str(log)) == (code, "", f"otel-jobtags: error: {message}\n")


def test_a_registry_that_breaks_the_rules_at_import_is_reported(
    tmp_path: Path, log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cli_logs_dup.py").write_text(
        "from otel_jobtags import TagRegistry\nJOBS = TagRegistry()\n"
        "JOBS.define('A_JOB', 'a')\nJOBS.define('A_JOB', 'b')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert run(capsys, "logs", "--registry", "cli_logs_dup:JOBS", str(log)) == (
        1,
        "",
        "otel-jobtags: error: Invalid --registry 'cli_logs_dup:JOBS': importing it raised TagError: "
        "Duplicate tag 'A_JOB': it is already defined for job id 'a'; choose another name\n",
    )


def test_logs_runs_as_a_program(log: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_jobtags", "logs", "--job", "auto_rebalance", "--tail", "1", str(log)],
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (
        0,
        "2025-10-23 14:30:49,456 INFO: [AUTO_REBAL] ✅ done - processed: 5 items\n",
        "",
    )


@pytest.mark.parametrize("command", ["logs", "query", "check"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert (exit_.value.code, out.startswith(f"usage: otel-jobtags {command} ")) == (0, True)
    assert "--registry MODULE:ATTR" in out


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_text(
        "".join(f"2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] record {i}\n" for i in range(20_000))
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_jobtags", "logs", "-j", "auto_rebalance", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # like `| head -1`
    code = process.wait(timeout=60)
    assert (first, code, process.stderr.read()) == (
        b"2025-10-23 14:30:45,123 INFO: [AUTO_REBAL] record 0\n",
        141,
        b"",
    )


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--tail", "-1", "argument -n/--tail: '-1' is negative"),
        ("--tail", "ten", "argument -n/--tail: 'ten' is not a whole number"),
        ("--max-seconds", "-0.5", "argument --max-seconds: '-0.5' is negative"),
        ("--max-seconds", "soon", "argument --max-seconds: 'soon' is not a number"),
    ],
)
def test_a_negative_or_non_numeric_count_is_refused_with_the_option_named(
    log: Path, option: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["logs", "--registry", "otel_jobtags.demo:JOBS", option, value, str(log)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"otel-jobtags logs: error: {says}"
