"""Headless Chromium for tests, driven by Playwright for Python, installed on first use.

Playwright's own browser download cannot run here, so the browser is Debian's
``chromium`` package (``/usr/bin/chromium``), which :func:`chromium_path`
installs with apt-get when it is missing (with a colour-emoji font, so
screenshots show what users see). Without it the test is skipped on a
developer's machine and fails under ``CI=true`` (:func:`~support.prerequisites.unavailable`).

:func:`launch` starts the browser with the flags a sandboxed, offline,
headless run needs; :class:`PageWatch` collects what a page reported to its
console and every Content-Security-Policy violation, so a test can assert
there were none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.prerequisites import REPO_ROOT, unavailable

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "PageWatch", "chromium_path", "launch", "save_screenshot"]

CHROMIUM = Path("/usr/bin/chromium")
"""Where Debian's chromium package puts the browser."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags for a headless browser in a container, with no network of its own."""
APT_PACKAGES = ["chromium", "fonts-noto-color-emoji"]
SCREENSHOTS_ENV = "OTEL_JOBTAGS_SCREENSHOTS"
"""Set to a directory (``docs/img``) to write the browser tests' screenshots there."""
INSTALL_TIMEOUT_S = 900.0

_installed: Path | None = None


def chromium_path() -> Path:
    """The browser, installed with apt-get on first use; ends the test when it cannot be had."""
    global _installed
    if _installed is not None:
        return _installed
    if not CHROMIUM.exists():
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            unavailable(
                f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
            )
        for command in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", *APT_PACKAGES]):
            try:
                subprocess.run(
                    command,
                    check=True,
                    capture_output=True,
                    timeout=INSTALL_TIMEOUT_S,
                    env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                )
            except (subprocess.SubprocessError, OSError) as exc:
                unavailable(f"Could not install chromium with {' '.join(command)}: {exc}")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is still missing after installing {APT_PACKAGES}")
    _installed = CHROMIUM
    return CHROMIUM


@contextmanager
def launch() -> Iterator[Any]:
    """A running headless Chromium (a Playwright ``Browser``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is missing: pip install 'otel-jobtags[test]'")
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# Runs in every page before its own scripts: records CSP violations where the test can read them.
_WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@dataclass
class PageWatch:
    """What one page reported: console messages, page errors, failed requests, CSP violations."""

    page: Any
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Any, *, width: int = 1400, height: int = 900) -> PageWatch:
        """A new page of ``browser``, watched."""
        page = browser.new_page(viewport={"width": width, "height": height})
        page.add_init_script(_WATCH_CSP)
        watch = cls(page)
        page.on("console", lambda message: watch.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: watch.errors.append(str(error)))
        page.on("requestfailed", lambda request: watch.failed.append(request.url))
        page.on("response", lambda response: watch._status(response))
        page.on("dialog", lambda dialog: (watch.dialogs.append(dialog.message), dialog.dismiss()))
        return watch

    def _status(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def csp_violations(self) -> list[str]:
        """The violations the current document saw."""
        return list(self.page.evaluate("window.__cspViolations"))

    def problems(self) -> list[str]:
        """Everything that went wrong: should be empty."""
        return [*self.console, *self.errors, *self.failed, *self.dialogs, *self.csp_violations()]


def save_screenshot(page: Any, name: str, tmp_path: Path, *, height: int | None = None) -> Path:
    """Save a screenshot in ``tmp_path``, and in ``$OTEL_JOBTAGS_SCREENSHOTS`` when set.

    ``height`` clips a long page to its top part.
    """
    options: dict[str, Any] = {"full_page": True}
    if height is not None:
        options["clip"] = {"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height}
    shot = page.screenshot(**options)
    path = tmp_path / name
    path.write_bytes(shot)
    target = os.environ.get(SCREENSHOTS_ENV)
    if target:
        directory = Path(target) if Path(target).is_absolute() else REPO_ROOT / target
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(shot)
    return path
