"""The commands that write generated artefacts: dashboard, alerts, table."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from otel_jobtags.cli import main
from otel_jobtags.markdown import JOBS_TABLE_END, JOBS_TABLE_START

SMALL_REGISTRY = textwrap.dedent(
    """
    from otel_jobtags import TagRegistry

    JOBS = TagRegistry()
    JOBS.define("AUTO_REBAL", "auto_rebalance", "rebalance", "hourly at minute 17")
    NOT_A_REGISTRY = 42
    """
)


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module ``myjobs`` in the current directory, holding a registry."""
    (tmp_path / "myjobs.py").write_text(SMALL_REGISTRY, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "myjobs", raising=False)
    return "myjobs:JOBS"


def test_dashboard_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dashboards"
    assert main(["dashboard", "--out", str(out)]) == 0
    assert capsys.readouterr().out == (
        f"wrote {out / 'otel-jobtags-overview.json'}\nwrote {out / 'otel-jobtags-job.json'}\n"
    )
    assert main(["dashboard", "--out", str(out), "--check"]) == 0
    assert capsys.readouterr().out == "up to date\n"
    assert main(["dashboard", "--out", str(out), "--check", "--job-tag-as", "structured_metadata"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"otel-jobtags: {out / 'otel-jobtags-overview.json'} is stale: run 'otel-jobtags dashboard' to "
        "regenerate it\n"
        f"otel-jobtags: {out / 'otel-jobtags-job.json'} is stale: run 'otel-jobtags dashboard' to "
        "regenerate it\n"
    )


def test_dashboard_check_writes_nothing(tmp_path: Path) -> None:
    assert main(["dashboard", "--out", str(tmp_path / "d"), "--check"]) == 1
    assert not (tmp_path / "d").exists()


def test_alerts_writes_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / 'otel-jobtags-alerts.yaml'}\n"
    assert main(["alerts", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "up to date\n"
    (tmp_path / "otel-jobtags-alerts.yaml").write_text("apiVersion: 1\n", encoding="utf-8")
    assert main(["alerts", "--out", str(tmp_path), "--check"]) == 1
    assert "otel-jobtags-alerts.yaml is stale: run 'otel-jobtags alerts'" in capsys.readouterr().err


def test_table_prints_the_registry(app_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table", "--registry", app_module]) == 0
    assert capsys.readouterr().out == (
        "| constant | tag | job id | what it does | schedule |\n"
        "|---|---|---|---|---|\n"
        "| AUTO_REBAL | [AUTO_REBAL] | auto_rebalance | rebalance | hourly at minute 17 |\n"
    )


def test_table_updates_a_file_between_its_markers(
    app_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# App\n\n{JOBS_TABLE_START}\n{JOBS_TABLE_END}\n", encoding="utf-8")
    assert main(["table", "--registry", app_module, "--update", str(readme), "--check"]) == 1
    assert main(["table", "--registry", app_module, "--update", str(readme)]) == 0
    assert main(["table", "--registry", app_module, "--update", str(readme), "--check"]) == 0
    assert readme.read_text(encoding="utf-8").splitlines()[5] == (
        "| AUTO_REBAL | [AUTO_REBAL] | auto_rebalance | rebalance | hourly at minute 17 |"
    )
    out = capsys.readouterr()
    assert out.out == f"wrote {readme}\nup to date\n"
    assert out.err == (
        f"otel-jobtags: {readme} is stale: run 'otel-jobtags table --update {readme}' to regenerate it\n"
    )


def test_dashboard_from_an_application_registry(app_module: str, tmp_path: Path) -> None:
    assert main(["dashboard", "--registry", app_module, "--out", "out"]) == 0
    assert '"AUTO_REBAL — rebalance : AUTO_REBAL"' in (tmp_path / "out" / "otel-jobtags-job.json").read_text(
        encoding="utf-8"
    )


def test_a_registry_that_is_not_module_colon_attribute_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["table", "--registry", "myjobs"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: argument --registry: 'myjobs' is not a module:attribute; "
        "write module:attribute, e.g. 'myapp.jobs:JOBS'\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["table", "--registry", "nosuchmodule:JOBS"],
            "otel-jobtags: error: Invalid --registry 'nosuchmodule:JOBS': cannot import 'nosuchmodule': "
            "No module named 'nosuchmodule'\n",
        ),
        (
            ["table", "--registry", "myjobs:NOT_A_REGISTRY"],
            "otel-jobtags: error: Invalid --registry 'myjobs:NOT_A_REGISTRY': myjobs:NOT_A_REGISTRY is "
            "of type int: point it at a TagRegistry or at a mapping of job id to tag such as "
            "{'auto_rebalance': '[AUTO_REBAL]'}\n",
        ),
        (
            ["table", "--registry", "myjobs:MISSING"],
            "otel-jobtags: error: Invalid --registry 'myjobs:MISSING': module 'myjobs' has no attribute "
            "'MISSING'\n",
        ),
        (
            ["table", "--registry", "myjobs:JOBS", "--check"],
            "otel-jobtags: error: --check needs --update FILE: the file whose table is checked\n",
        ),
        (
            ["table", "--registry", "myjobs:JOBS", "--update", "missing.md"],
            "otel-jobtags: error: missing.md does not exist: create it with the lines "
            "'<!-- jobs-table:start -->' and '<!-- jobs-table:end -->' where the job table goes\n",
        ),
    ],
)
def test_errors_are_one_line_with_the_exit_code_of_their_kind(
    app_module: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Settings the command line got wrong exit 2, like usage errors; a missing file exits 1.
    assert main(argv) == (1 if "--update" in argv else 2)
    assert capsys.readouterr().err == message


@pytest.mark.parametrize("command", ["dashboard", "alerts", "table"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert "--registry MODULE:ATTR" in capsys.readouterr().out
