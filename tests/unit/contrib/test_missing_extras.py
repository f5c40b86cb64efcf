"""Importing an integration without its package says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("extra", ["structlog", "loguru"])
def test_without_the_package_the_import_says_which_extra_to_install(extra: str) -> None:
    code = (
        f"import sys; sys.modules[{extra!r}] = None\n"
        "try:\n"
        f"    import otel_jobtags.contrib.{extra}\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == (
        f"MissingExtraError otel_jobtags.contrib.{extra} needs the {extra!r} package: "
        f"install otel-jobtags[{extra}] (pip install 'otel-jobtags[{extra}]')\n"
    )
