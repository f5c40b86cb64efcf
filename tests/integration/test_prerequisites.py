"""Tests that need a built tool skip on a developer's machine but fail in CI.

Each case runs one such test in a child pytest with the tool's variable
pointing nowhere, once with CI=true (must end in an error: the fixture fails)
and once without (must skip).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.prerequisites import REPO_ROOT


@pytest.mark.parametrize(
    ("variable", "test_id"),
    [
        (
            "OTEL_JOBTAGS_COLLECTOR",
            "tests/integration/test_collector.py::test_validate_accepts_the_repo_config",
        ),
        ("OTEL_JOBTAGS_COMPOSE", "tests/integration/test_compose.py::test_compose_config_accepts_the_file"),
    ],
)
@pytest.mark.parametrize(("ci", "outcome", "exit_code"), [("true", "1 error", 1), ("", "1 skipped", 0)])
def test_missing_tool_fails_in_ci_and_skips_elsewhere(
    tmp_path: Path, variable: str, test_id: str, ci: str, outcome: str, exit_code: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({variable: str(tmp_path / "missing"), "CI": ci, "COLUMNS": "400"})

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", test_id],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )

    assert proc.returncode == exit_code, proc.stdout + proc.stderr
    assert outcome in proc.stdout
    assert f"{variable}={str(tmp_path / 'missing')!r} is not an executable file" in proc.stdout


@pytest.mark.parametrize(
    ("variable", "test_id", "says"),
    [
        (
            "OTEL_JOBTAGS_COLLECTOR",
            "tests/integration/test_collector.py::test_validate_accepts_the_repo_config",
            "the collector (OTEL_JOBTAGS_COLLECTOR) at /bin/true: '/bin/true --version' printed 'true (GNU coreutils)",
        ),
        (
            "OTEL_JOBTAGS_COMPOSE",
            "tests/integration/test_compose.py::test_compose_config_accepts_the_file",
            "Docker Compose (OTEL_JOBTAGS_COMPOSE) '/bin/true': '/bin/true version' printed 'nothing' (exit code 0), not a version matching",
        ),
    ],
)
def test_a_named_tool_that_is_not_the_tool_fails_in_ci(variable: str, test_id: str, says: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({variable: "/bin/true", "CI": "true", "COLUMNS": "400"})

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", test_id],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )

    assert (proc.returncode, "1 error" in proc.stdout) == (1, True), proc.stdout + proc.stderr
    assert says in proc.stdout
