"""Day-2 commands and the Grafana admin password, through Docker Compose's own loader.

Compose interpolates the whole file for every subcommand, so a required
variable (``${VAR:?…}``) in it would make ``ps``, ``logs`` and ``down`` fail
unless it is set again (docker/compose#8117). The password therefore reaches
Grafana as a compose secret read from the environment only when ``up``
starts the container. Without a Docker engine here, ``ps``/``logs``/``down``
are run against an engine address that does not exist: they must get past
loading the file and fail only on the missing engine. That ``up`` refuses to
start Grafana without the variable is Compose's behaviour at container start
(pkg/compose/secrets.go, ``resolveFileContent``), which needs an engine and
is checked against that source only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.compose import compose_command_or_unavailable, compose_config, run_compose

pytestmark = pytest.mark.timeout(1800)

PASSWORD = "not-a-real-password-7f3a"
SECRET_TARGET = "/run/secrets/grafana_admin_password"


@pytest.fixture(scope="session")
def compose() -> list[str]:
    """The Docker Compose command; skips without it, fails without it in CI."""
    return compose_command_or_unavailable()


@pytest.mark.parametrize(
    "subcommand",
    [["ps"], ["logs"], ["down"], ["down", "-v"], ["config", "--quiet"]],
    ids=["ps", "logs", "down", "down-v", "config"],
)
def test_day2_commands_load_the_file_without_the_admin_password(
    compose: list[str], subcommand: list[str], tmp_path: Path
) -> None:
    engine = tmp_path / "no-engine.sock"

    proc = run_compose(compose, *subcommand, env={"DOCKER_HOST": f"unix://{engine}"})

    assert "GRAFANA_ADMIN_PASSWORD" not in proc.stderr
    if subcommand[0] != "config":
        # Past the file, stopped by the engine this machine does not have.
        assert proc.returncode != 0
        assert str(engine) in proc.stderr
    else:
        assert (proc.returncode, proc.stderr) == (0, "")


@pytest.fixture(scope="module")
def model(compose: list[str]) -> dict[str, Any]:
    proc = compose_config(compose, "--format", "json", env={"GRAFANA_ADMIN_PASSWORD": PASSWORD})
    assert proc.returncode == 0, proc.stderr
    loaded: dict[str, Any] = json.loads(proc.stdout)
    return loaded


def test_the_password_is_in_no_container_setting(compose: list[str]) -> None:
    # What `docker inspect` shows of a container (environment, labels,
    # command) comes from this model; the secret's value is not in it.
    proc = compose_config(compose, "--format", "json", env={"GRAFANA_ADMIN_PASSWORD": PASSWORD})

    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout


def test_grafana_reads_its_admin_password_from_the_secret_file(model: dict[str, Any]) -> None:
    grafana = model["services"]["grafana"]

    assert model["secrets"] == {
        "grafana_admin_password": {
            "name": "otel-jobtags_grafana_admin_password",
            "environment": "GRAFANA_ADMIN_PASSWORD",
        }
    }
    assert grafana["secrets"] == [{"source": "grafana_admin_password", "target": SECRET_TARGET}]
    # Grafana's own file expansion: a missing file (the variable set but
    # empty, so compose writes none) stops Grafana instead of leaving the
    # default admin password in place.
    # `config` prints every '$' of the model doubled, so that its output
    # loads again (cmd/compose/config.go); the container gets one.
    assert (
        grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].replace("$$", "$")
        == f"$__file{{{SECRET_TARGET}}}"
    )
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE" not in grafana["environment"]
