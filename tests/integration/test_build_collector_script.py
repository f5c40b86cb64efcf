"""scripts/build-collector.sh refuses, loudly and before building, a manifest without one clear release."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.prerequisites import REPO_ROOT


def run_on_manifest(tmp_path: Path, old: str, new: str) -> subprocess.CompletedProcess[str]:
    """Run a copy of the script against a copy of the manifest with ``old`` replaced by ``new``."""
    shutil.copytree(REPO_ROOT / "scripts", tmp_path / "scripts")
    shutil.copytree(REPO_ROOT / "collector", tmp_path / "collector")
    manifest = tmp_path / "collector" / "builder-config.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert old in text
    manifest.write_text(text.replace(old, new), encoding="utf-8")
    return subprocess.run(
        ["bash", str(tmp_path / "scripts" / "build-collector.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OTEL_JOBTAGS_CACHE": str(tmp_path / "cache")},
        check=False,
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "otlpreceiver v0.165.0",
            "otlpreceiver v0.164.0",
            "mixes releases: v0.164.0 is neither v0.165.0 nor a stable v1.x module version",
        ),
        (
            "fileprovider v1.71.0",
            "fileprovider v1.70.0",
            "mixes releases of the stable modules: v1.70.0 v1.71.0",
        ),
        ("  version: 0.165.0", "  version: latest", "could not read dist.version (x.y.z)"),
    ],
)
def test_script_refuses_a_manifest_without_one_clear_release(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    proc = run_on_manifest(tmp_path, old, new)

    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("build-collector: error: ")
    assert message in proc.stderr
    assert not (tmp_path / "cache").exists()
