"""Run Toxiproxy, a TCP proxy that injects network faults, for tests.

The binary is the one ``scripts/build-toxiproxy.sh`` builds from the Go module
``github.com/Shopify/toxiproxy/v2`` (or whatever ``OTEL_JOBTAGS_TOXIPROXY``
names). :class:`Toxiproxy` starts its server on a free loopback port; proxies
and toxics are made through its HTTP API (with ``urllib``, no client library).
Typical use::

    with Toxiproxy(find_toxiproxy_binary(), tmp_path) as toxiproxy:
        proxy = toxiproxy.proxy("to-collector", upstream=collector.otlp_grpc_endpoint)
        with proxy.toxic("latency", latency=500):
            ...  # send to proxy.address: every byte from upstream comes 500 ms late

A toxic acts on one direction: ``"downstream"`` (upstream server to client,
the default) or ``"upstream"`` (client to server). Toxic types and their
attributes are Toxiproxy's: ``latency`` (``latency``, ``jitter`` ms),
``bandwidth`` (``rate`` KB/s), ``reset_peer`` (``timeout`` ms, then RST),
``timeout`` (``timeout`` ms of silence, then close; 0 = a black hole for
ever), ``slicer`` (``average_size``, ``size_variation`` bytes, ``delay`` µs),
``limit_data`` (``bytes``, then close), ``slow_close`` (``delay`` ms).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from support.otlp import free_port
from support.prerequisites import REPO_ROOT, PrerequisiteError, check_version, run_build_script

__all__ = ["BUILD_SCRIPT", "Proxy", "Toxiproxy", "ToxiproxyError", "find_toxiproxy_binary"]

BUILD_SCRIPT: Path = REPO_ROOT / "scripts" / "build-toxiproxy.sh"
"""Builds (or finds in its cache) the Toxiproxy server and prints its path."""

RELEASE = "2.5.0"
"""The Toxiproxy release the build script builds and the tests expect."""

BUILD_TIMEOUT_S = 600.0
"""A cold build downloads and compiles a few modules: well under a minute here."""


class ToxiproxyError(RuntimeError):
    """The Toxiproxy API refused a request; the message carries its answer."""


def find_toxiproxy_binary() -> Path:
    """The Toxiproxy server: ``$OTEL_JOBTAGS_TOXIPROXY``, else the one the build script builds.

    Raises:
        PrerequisiteError: the variable names no executable, or the build failed.
    """
    named = os.environ.get("OTEL_JOBTAGS_TOXIPROXY")
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PrerequisiteError(f"OTEL_JOBTAGS_TOXIPROXY={named!r} is not an executable file")
    else:
        path = run_build_script(BUILD_SCRIPT, timeout=BUILD_TIMEOUT_S)
    check_version(
        [str(path), "-version"],
        rf"^toxiproxy-server version {re.escape(RELEASE)}$",
        what=f"toxiproxy {'(OTEL_JOBTAGS_TOXIPROXY) ' if named else ''}at {path}",
    )
    return path


class Proxy:
    """One proxy: listens on :attr:`address` and forwards to ``upstream``."""

    def __init__(self, server: Toxiproxy, name: str, listen: str, upstream: str) -> None:
        self._server = server
        self.name = name
        self.address = listen
        """``127.0.0.1:<port>``, where clients connect instead of upstream."""
        self.upstream = upstream

    @property
    def url(self) -> str:
        """``http://`` + :attr:`address`, for OTLP endpoints."""
        return f"http://{self.address}"

    def add_toxic(
        self, kind: str, *, stream: str = "downstream", toxicity: float = 1.0, **attributes: Any
    ) -> str:
        """Add a toxic of type ``kind`` with Toxiproxy's ``attributes``; return its name."""
        name = f"{kind}_{stream}"
        self._server.api(
            "POST",
            f"/proxies/{self.name}/toxics",
            {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes},
        )
        return name

    def remove_toxic(self, name: str) -> None:
        """Remove a toxic; connections carry on without it."""
        self._server.api("DELETE", f"/proxies/{self.name}/toxics/{name}")

    @contextlib.contextmanager
    def toxic(
        self, kind: str, *, stream: str = "downstream", toxicity: float = 1.0, **attributes: Any
    ) -> Iterator[str]:
        """A toxic for the ``with`` block's duration."""
        name = self.add_toxic(kind, stream=stream, toxicity=toxicity, **attributes)
        try:
            yield name
        finally:
            self.remove_toxic(name)

    def set_enabled(self, enabled: bool) -> None:
        """Disable (close every connection, refuse new ones) or enable the proxy."""
        self._server.api("POST", f"/proxies/{self.name}", {"enabled": enabled})


class Toxiproxy:
    """A Toxiproxy server on a free loopback port.

    Args:
        binary: the ``toxiproxy-server`` executable.
        workdir: a directory of the test's own; holds the server's output.
    """

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "toxiproxy.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until its API answers.

        Raises:
            RuntimeError: the process exited, or did not answer within ``timeout``.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [str(self.binary), "-host", "127.0.0.1", "-port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.api("GET", "/version")
                return
            except (OSError, ToxiproxyError):
                pass
            if self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"toxiproxy exited with {self._process.returncode}:\n{self.output()}")
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"toxiproxy's API did not answer within {timeout:g} s:\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (and with it every proxy)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self, last_lines: int = 40) -> str:
        """The end of the server's output."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-last_lines:])

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One API request; the decoded JSON answer (text if not JSON, ``None`` when empty).

        Raises:
            ToxiproxyError: the API answered with an error status.
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read()
                is_json = "json" in (response.headers.get("Content-Type") or "")
        except urllib.error.HTTPError as exc:
            raise ToxiproxyError(
                f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}"
            ) from None
        if not text.strip():
            return None
        return json.loads(text) if is_json else text.decode()

    def proxy(self, name: str, *, upstream: str) -> Proxy:
        """Create a proxy listening on a free loopback port that forwards to ``upstream`` (host:port)."""
        listen = f"127.0.0.1:{free_port()}"
        self.api("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True})
        return Proxy(self, name, listen, upstream)

    def reset(self) -> None:
        """Remove every toxic and enable every proxy."""
        self.api("POST", "/reset")

    def __enter__(self) -> Toxiproxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
