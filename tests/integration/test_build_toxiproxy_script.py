"""scripts/build-toxiproxy.sh: one line on stdout, the cached binary; loud, early failures."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.prerequisites import REPO_ROOT, unavailable
from support.toxiproxy import BUILD_SCRIPT, RELEASE

pytestmark = pytest.mark.timeout(900)


def run_script(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=600, env=env, check=False
    )


def test_a_second_run_prints_the_cached_binary_and_nothing_else() -> None:
    first = run_script()
    if first.returncode != 0:
        unavailable(f"build-toxiproxy.sh failed:\n{first.stderr[-2000:]}")

    second = run_script()

    cache = Path(os.environ.get("OTEL_JOBTAGS_CACHE", Path.home() / ".cache" / "otel-jobtags"))
    binary = cache / f"toxiproxy-{RELEASE}" / "toxiproxy-server"
    assert (first.stdout, second.stdout, second.stderr) == (f"{binary}\n", f"{binary}\n", "")
    version = subprocess.run(
        [str(binary), "-version"], capture_output=True, text=True, timeout=30, check=True
    )
    assert version.stdout.strip() == f"toxiproxy-server version {RELEASE}"


def test_without_a_go_toolchain_the_script_fails_before_building(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "scripts", tmp_path / "scripts")
    proc = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "build-toxiproxy.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "OTEL_JOBTAGS_CACHE": str(tmp_path / "cache"),
            "GO": str(tmp_path / "no-go"),
        },
        check=False,
    )

    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "build-toxiproxy: error: no go toolchain found (set GO=/path/to/go)\n"
    assert not (tmp_path / "cache").exists()
