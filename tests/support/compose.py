"""Docker Compose for tests: the real ``compose config`` validator, no engine needed.

``docker compose config`` loads a compose file the way ``up`` would
(interpolation, the Compose Specification's JSON schema, references between
services, volumes and networks) without contacting a Docker engine. The
command is, in order of preference: ``$OTEL_JOBTAGS_COMPOSE`` (a
``docker-compose`` binary), ``docker compose`` when that plugin works, or the
binary ``scripts/build-compose.sh`` builds from the Go module proxy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from support.prerequisites import REPO_ROOT, PrerequisiteError, check_version, run_build_script, unavailable

__all__ = [
    "BUILD_SCRIPT",
    "COMPOSE_FILE",
    "compose_command_or_unavailable",
    "compose_config",
    "find_compose_command",
    "run_compose",
]

COMPOSE_FILE: Path = REPO_ROOT / "docker-compose.yml"
"""The stack's compose file."""

BUILD_SCRIPT: Path = REPO_ROOT / "scripts" / "build-compose.sh"
"""Builds Docker Compose from its Go module and prints the binary's path."""


def _docker_compose_plugin() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        proc = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [docker, "compose"] if proc.returncode == 0 else None


def find_compose_command() -> list[str]:
    """The command that runs Docker Compose, as an argument list.

    Raises:
        PrerequisiteError: ``$OTEL_JOBTAGS_COMPOSE`` names no executable, or
            there is no plugin and the build failed.
    """
    named = os.environ.get("OTEL_JOBTAGS_COMPOSE")
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PrerequisiteError(f"OTEL_JOBTAGS_COMPOSE={named!r} is not an executable file")
        command = [str(path)]
    else:
        command = _docker_compose_plugin() or [str(run_build_script(BUILD_SCRIPT, timeout=1800))]
    check_version(
        [*command, "version"],
        r"\bDocker Compose version v?[2-9]\.",
        what=f"Docker Compose {'(OTEL_JOBTAGS_COMPOSE) ' if named else ''}{' '.join(command)!r}",
    )
    return command


def run_compose(
    command: Sequence[str],
    *args: str,
    env: Mapping[str, str],
    compose_file: Path = COMPOSE_FILE,
) -> subprocess.CompletedProcess[str]:
    """Run ``<command> -f <compose_file> <args>`` with exactly ``env`` plus ``PATH`` and ``HOME``.

    The environment is not inherited, so that a variable set in the caller's
    shell (GRAFANA_ADMIN_PASSWORD, say) cannot change the verdict.
    """
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run(
        [*command, "-f", str(compose_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
        cwd=compose_file.parent,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def compose_command_or_unavailable() -> list[str]:
    """:func:`find_compose_command` for a test: skips without it, fails without it in CI."""
    try:
        return find_compose_command()
    except PrerequisiteError as exc:
        unavailable(f"no Docker Compose to validate docker-compose.yml: {exc}")


def compose_config(
    command: Sequence[str],
    *args: str,
    env: Mapping[str, str],
    compose_file: Path = COMPOSE_FILE,
) -> subprocess.CompletedProcess[str]:
    """Run ``<command> -f <compose_file> config <args>``, as :func:`run_compose` does."""
    return run_compose(command, "config", *args, env=env, compose_file=compose_file)
