"""Prerequisites that tests build or find: skipped on a developer's machine, fatal in CI.

A test that needs an external tool (the collector binary, Docker Compose)
must never pass in CI by skipping, so :func:`unavailable` fails the test when
``CI=true`` and skips it otherwise. :func:`run_build_script` runs one of the
repository's ``scripts/build-*.sh`` tools, which print the built binary's
path as the last line of their stdout.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["REPO_ROOT", "PrerequisiteError", "check_version", "in_ci", "run_build_script", "unavailable"]

REPO_ROOT: Path = Path(__file__).resolve().parents[2]
"""The repository's root directory."""


class PrerequisiteError(RuntimeError):
    """A tool a test needs could not be found or built."""


def in_ci() -> bool:
    """Whether the tests run in CI (``CI=true``), where nothing may be skipped for lack of a tool."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(reason: str) -> NoReturn:
    """End the current test for lack of a prerequisite: fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing prerequisite fails the run)", pytrace=False)
    pytest.skip(reason)


def run_build_script(script: Path, *, timeout: float, env: dict[str, str] | None = None) -> Path:
    """Run a ``scripts/build-*.sh`` tool and return the executable it reports.

    Args:
        script: the script to run (with bash).
        timeout: seconds to allow; a cold build compiles a Go program.
        env: environment for the script (default: this process's).

    Returns:
        The path printed on the last line of the script's stdout.

    Raises:
        PrerequisiteError: the script failed, timed out, or printed no executable path.
    """
    try:
        proc = subprocess.run(
            ["bash", str(script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PrerequisiteError(f"{script.name} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise PrerequisiteError(f"{script.name} could not be run: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise PrerequisiteError(f"{script.name} failed with exit code {proc.returncode}:\n{tail}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise PrerequisiteError(f"{script.name} printed no path")
    path = Path(lines[-1])
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise PrerequisiteError(f"{script.name} printed {str(path)!r}, which is not an executable file")
    return path


def check_version(command: list[str], expected: str, *, what: str) -> str:
    """Run ``command`` (a tool's version command) and check that it prints ``expected``.

    A named executable is trusted only once it says it is the tool, at the
    release the repository pins: ``/bin/true`` or another program's binary
    must not stand in for it and make the tests that use it pass.

    Args:
        command: the argument list that prints the version, e.g. ``[binary, "--version"]``.
        expected: a regular expression the output must contain.
        what: how to name the tool in the error.

    Returns:
        The first line of the output.

    Raises:
        PrerequisiteError: the command failed, timed out, or printed something else.
    """
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PrerequisiteError(f"{what}: {command[0]!r} could not be run: {exc}") from exc
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or not re.search(expected, output):
        shown = output.splitlines()[0] if output else "nothing"
        raise PrerequisiteError(
            f"{what}: {' '.join(command)!r} printed {shown!r} (exit code {proc.returncode}), "
            f"not a version matching {expected!r}"
        )
    return output.splitlines()[0]
