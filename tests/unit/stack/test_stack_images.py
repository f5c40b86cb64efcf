"""docker-compose.yml runs only programs its pinned images are known to contain.

No container runs here (no Docker engine), so what each image holds is taken
from the image's own build recipe or its documentation, recorded in IMAGES
below with the line or page that says so. The tests then check that every
program docker-compose.yml makes a container run (its entrypoint, its
command when the image has no entrypoint of its own, its health check) is
one the table lists for that exact image and tag. Bumping an image fails
here until someone re-reads that image's sources and updates its row; a
health check or init step that calls a program the image lacks fails here
instead of on a user's machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from support.compose import COMPOSE_FILE
from support.prerequisites import REPO_ROOT

DEMO_DOCKERFILE = REPO_ROOT / "Dockerfile"
STACK_DOC = REPO_ROOT / "docs" / "stack.md"


@dataclass(frozen=True)
class Image:
    """What one pinned image contains, as its sources say."""

    entrypoint: tuple[str, ...]
    """The image's own ENTRYPOINT (empty: none, the command is run as is)."""
    user: str
    """The uid:gid the image runs as."""
    programs: dict[str, str]
    """Program (absolute path, or a name looked up on the image's PATH) -> the source saying it is there."""
    shell: bool
    """Whether the image has /bin/sh (CMD-SHELL health checks need it)."""


LOKI_DOCKERFILE = "https://github.com/grafana/loki/blob/v3.7.8/cmd/loki/Dockerfile"
COLLECTOR_DOCKERFILE = (
    "https://github.com/open-telemetry/opentelemetry-collector-releases/blob/v0.165.0/"
    "distributions/otelcol-contrib/Dockerfile"
)
GRAFANA_DOCKERFILE = "https://github.com/grafana/grafana/blob/v12.4.3/Dockerfile"
BUSYBOX_BUILDER = "https://github.com/docker-library/busybox/blob/master/latest-1/glibc/Dockerfile.builder"

IMAGES: dict[str, Image] = {
    # `FROM gcr.io/distroless/static:nonroot` since 3.5.8/3.6.0: no busybox,
    # no shell, no wget (Loki's upgrade guide, "Removal of BusyBox Shell from
    # Docker Images"; grafana/loki#20149).
    "grafana/loki:3.7.8": Image(
        entrypoint=("/usr/bin/loki",),
        user="10001",
        programs={
            "/usr/bin/loki": f"{LOKI_DOCKERFILE}: COPY --from=build /src/loki/cmd/loki/loki /usr/bin/loki;"
            ' ENTRYPOINT [ "/usr/bin/loki" ]. `-health` (GET http://localhost:3100/ready,'
            " exit 0 on 200): cmd/loki/health.go, grafana/loki#20313 (3.7), backported to 3.6 by #20590",
        },
        shell=False,
    ),
    # `FROM scratch`: the binary, CA certificates and a default config only.
    "otel/opentelemetry-collector-contrib:0.165.0": Image(
        entrypoint=("/otelcol-contrib",),
        user="10001:10001",
        programs={
            "/otelcol-contrib": f"{COLLECTOR_DOCKERFILE}: COPY --chmod=755 otelcol-contrib /otelcol-contrib;"
            ' ENTRYPOINT ["/otelcol-contrib"]; ARG USER_UID=10001, ARG USER_GID=10001,'
            " USER ${USER_UID}:${USER_GID}",
        },
        shell=False,
    ),
    # Alpine based; its entrypoint /run.sh is a /bin/sh script.
    "grafana/grafana:12.4.3": Image(
        entrypoint=("/run.sh",),
        user="472:0",
        programs={
            "/run.sh": f'{GRAFANA_DOCKERFILE}: COPY ${{RUN_SH}} /run.sh; ENTRYPOINT [ "/run.sh" ]',
            "curl": f"{GRAFANA_DOCKERFILE}: apk add --no-cache ca-certificates bash curl tzdata musl-utils"
            " (apt-get install -y ca-certificates curl tzdata musl on the Ubuntu variant)",
            "grafana": f"{GRAFANA_DOCKERFILE}: COPY --from=go-src /tmp/grafana/bin/grafana* ... ./bin/;"
            ' ENV PATH="/usr/share/grafana/bin:$PATH"; `grafana cli admin reset-admin-password`:'
            " https://grafana.com/docs/grafana/latest/cli/",
        },
        shell=True,
    ),
    # The official image: one busybox binary, its applets installed in /bin,
    # `CMD ["sh"]`, no ENTRYPOINT, no USER (root).
    "busybox:1.37.0": Image(
        entrypoint=(),
        user="0:0",
        programs={
            "chown": f"{BUSYBOX_BUILDER}: chroot rootfs /bin/busybox --install /bin (ENV BUSYBOX_VERSION 1.37.0);"
            " image-config.json: Cmd [sh], PATH includes /bin",
        },
        shell=True,
    ),
    # Built here from ./Dockerfile (checked against it below).
    "otel-jobtags-demo:local": Image(
        entrypoint=(),
        user="demo",
        programs={
            "python": "Dockerfile: FROM python:3.12-slim (the official Python image puts python on PATH)",
            "otel-jobtags": 'Dockerfile: RUN pip install ".[scheduler]" installs the console script'
            " of pyproject.toml [project.scripts]",
        },
        shell=True,
    ),
}


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """docker-compose.yml as written (not interpolated)."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def programs_run(service: dict[str, Any], image: Image) -> list[str]:
    """Every program a service makes its container execute, per the Compose Specification.

    ``entrypoint`` replaces the image's ENTRYPOINT; without either, the first
    word of ``command`` is what runs. A health check ``CMD`` runs its first
    word; ``CMD-SHELL`` runs /bin/sh.
    """
    run: list[str] = []
    entrypoint = service.get("entrypoint")
    if entrypoint is not None:
        run.append(entrypoint[0] if isinstance(entrypoint, list) else str(entrypoint).split()[0])
    elif image.entrypoint:
        run.append(image.entrypoint[0])
    elif "command" in service:
        command = service["command"]
        run.append(command[0] if isinstance(command, list) else str(command).split()[0])
    test = service.get("healthcheck", {}).get("test")
    if test:
        if test[0] == "CMD":
            run.append(test[1])
        elif test[0] == "CMD-SHELL":
            run.append("/bin/sh")
        else:
            pytest.fail(f"unexpected health check form {test[0]!r}")
    return run


def test_every_image_of_the_compose_file_is_in_the_table(stack: dict[str, Any]) -> None:
    images = {svc["image"] for svc in stack["services"].values()}

    assert images == set(IMAGES)


@pytest.mark.parametrize("name", ["collector-init", "collector", "loki", "grafana", "demo"])
def test_service_runs_only_programs_its_image_contains(stack: dict[str, Any], name: str) -> None:
    service = stack["services"][name]
    image = IMAGES[service["image"]]
    allowed = set(image.programs) | ({"/bin/sh"} if image.shell else set())

    run = programs_run(service, image)

    assert run, f"{name} runs nothing the table could check"
    assert [program for program in run if program not in allowed] == []


def test_commands_the_docs_run_in_containers_use_programs_their_images_contain(stack: dict[str, Any]) -> None:
    text = STACK_DOC.read_text(encoding="utf-8")
    execs = re.findall(r"^docker compose exec (?:-\S+ )*([\w-]+) (\S+)", text, re.MULTILINE)

    assert execs, "docs/stack.md runs nothing inside a container"
    assert [
        (name, program)
        for name, program in execs
        if program not in IMAGES[stack["services"][name]["image"]].programs
    ] == []


def test_every_listed_program_names_its_source() -> None:
    assert {
        (image, program)
        for image, facts in IMAGES.items()
        for program, source in facts.programs.items()
        if not re.match(r"(https://|Dockerfile: )", source)
    } == set()


def test_loki_health_check_is_lokis_own_probe(stack: dict[str, Any]) -> None:
    # The image has no shell, wget or curl; `-health` exists since 3.6.x/3.7.
    assert stack["services"]["loki"]["healthcheck"]["test"] == ["CMD", "/usr/bin/loki", "-health"]


def test_the_collector_has_no_health_check_and_its_senders_wait_for_its_start(stack: dict[str, Any]) -> None:
    services = stack["services"]

    assert "healthcheck" not in services["collector"]
    assert services["demo"]["depends_on"] == {"collector": {"condition": "service_started"}}


def test_init_hands_the_queue_volume_to_the_collector_images_user(stack: dict[str, Any]) -> None:
    services = stack["services"]
    collector, init = services["collector"], services["collector-init"]
    queue_dir = collector["environment"]["FILE_STORAGE_DIR"]
    collector_user = IMAGES[collector["image"]].user

    # The collector keeps its image's user; the init step, as root, gives it the volume.
    assert "user" not in collector
    assert f"collector-queue:{queue_dir}" in collector["volumes"]
    assert init["volumes"] == ["collector-queue:/queue"]
    assert init["user"] == "0:0"
    assert init["command"] == ["chown", "-R", collector_user, "/queue"]
    assert collector["depends_on"]["collector-init"] == {"condition": "service_completed_successfully"}


def test_demo_image_facts_match_the_dockerfile_that_builds_it() -> None:
    dockerfile = DEMO_DOCKERFILE.read_text(encoding="utf-8")
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")

    assert re.search(r"^FROM python:3\.\d+-slim$", dockerfile, re.MULTILINE)
    assert re.search(r'^RUN pip install "\.\[scheduler\]"', dockerfile, re.MULTILINE)
    assert re.search(r"^USER demo$", dockerfile, re.MULTILINE)
    assert "ENTRYPOINT" not in dockerfile
    assert re.search(r'^otel-jobtags = "', pyproject, re.MULTILINE)
