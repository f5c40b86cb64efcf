"""Where the command line finds the tag registry: --registry, the environment, pyproject.toml; never a default."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otel_jobtags import cli

ROOT = Path(__file__).resolve().parents[3]

REGISTRY = textwrap.dedent(
    """
    from otel_jobtags import TagRegistry

    JOBS = TagRegistry()
    JOBS.define("NIGHTLY_EXPORT", "nightly_export", "export the day", "daily 02:00")
    """
)
LOG = "2025-10-23 02:00:01,000 INFO: [NIGHTLY_EXPORT] exported 12 rows\n"
NO_REGISTRY = (
    "otel-jobtags: error: No tag registry given: pass --registry module:ATTR (e.g. --registry "
    'myapp.jobs:JOBS), set OTEL_JOBTAGS_REGISTRY=module:ATTR, or add registry = "module:ATTR" under '
    "[tool.otel-jobtags] in your project's pyproject.toml (for the demo's jobs: --registry "
    "otel_jobtags.demo:JOBS)\n"
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder outside any pyproject.toml, as the current directory, holding a log."""
    monkeypatch.delenv("OTEL_JOBTAGS_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    (tmp_path / "app.log").write_text(LOG, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("command", [["logs", "app.log"], ["query", "--print-logql"], ["check"], ["table"]])
def test_without_a_registry_every_command_but_demo_says_where_to_name_one(
    project: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(command) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", NO_REGISTRY)


def test_a_job_id_the_demo_also_has_is_not_read_with_the_demo_s_tags(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "app.log").write_text(
        "2025-10-23 02:00:01,000 INFO: [AUTO_REBAL] demo line\n", encoding="utf-8"
    )
    assert cli.main(["logs", "-j", "auto_rebalance", "app.log"]) == 2
    assert capsys.readouterr().err == NO_REGISTRY


def test_the_registry_comes_from_the_project_s_pyproject_found_from_a_subfolder(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "nightly"\n\n[tool.otel-jobtags]\nregistry = "nightly_jobs_pp:JOBS"\n',
        encoding="utf-8",
    )
    (project / "nightly_jobs_pp.py").write_text(REGISTRY, encoding="utf-8")
    (project / "logs").mkdir()
    (project / "logs" / "app.log").write_text(LOG, encoding="utf-8")
    monkeypatch.chdir(project / "logs")
    monkeypatch.delitem(sys.modules, "nightly_jobs_pp", raising=False)
    assert cli.main(["logs", "-j", "nightly_export", "app.log"]) == 0
    assert capsys.readouterr() == (LOG, "")


def test_an_invalid_registry_in_pyproject_names_the_file_and_the_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text('[tool.otel-jobtags]\nregistry = "no colon"\n', encoding="utf-8")
    assert cli.main(["logs", "app.log"]) == 2
    assert capsys.readouterr().err == (
        "otel-jobtags: error: Invalid registry = 'no colon' under [tool.otel-jobtags] in "
        f"{project / 'pyproject.toml'}: write module:attribute, e.g. 'myapp.jobs:JOBS'\n"
    )


def test_a_pyproject_without_the_table_is_no_registry(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "nightly"\n', encoding="utf-8")
    assert cli.main(["logs", "app.log"]) == 2
    assert capsys.readouterr().err == NO_REGISTRY


def test_a_module_in_the_current_folder_named_like_the_standard_library_never_runs(tmp_path: Path) -> None:
    """``query`` imports ``stringprep`` (through the idna codec) after loading the registry."""
    (tmp_path / "nightly_jobs.py").write_text(REGISTRY, encoding="utf-8")
    (tmp_path / "stringprep.py").write_text(
        "from pathlib import Path\nPath('SHADOWED').write_text('stringprep.py ran')\n", encoding="utf-8"
    )
    # Run as the console script does: the script's own folder, not the current one, first on sys.path.
    launcher = tmp_path / "bin" / "otel-jobtags"
    launcher.parent.mkdir()
    launcher.write_text("import sys\nfrom otel_jobtags.cli import main\nsys.exit(main())\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "OTEL_JOBTAGS_REGISTRY"}
    env["PYTHONPATH"] = str(ROOT)
    query = [
        "query",
        "--registry",
        "nightly_jobs:JOBS",
        "-j",
        "nightly_export",
        "--loki",
        "http://127.0.0.1:9",
    ]
    done = subprocess.run(
        [sys.executable, str(launcher), *query, "--timeout", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr  # nothing listens on port 9: the query itself fails
    assert done.stderr.startswith("otel-jobtags: error: "), done.stderr
    assert not (tmp_path / "SHADOWED").exists()
