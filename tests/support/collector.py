"""Run the real OpenTelemetry Collector with the repository's config, for tests.

The binary is the one ``scripts/build-collector.sh`` builds from
``collector/builder-config.yaml`` (or whatever ``OTEL_JOBTAGS_COLLECTOR``
names). :class:`Collector` starts it on free loopback ports with
``collector-config.yaml``, whose every address and path is an environment
variable, and waits for its health check; it can be stopped and started again
on the same ports and queue directory. Typical use::

    binary = find_collector_binary()
    with HttpReceiver(path="/otlp/v1/logs") as loki:
        with Collector(binary, tmp_path, loki_endpoint=f"{loki.base_url}/otlp") as collector:
            ...  # send OTLP to collector.otlp_http_endpoint, read loki.records
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from support.otlp import free_port
from support.prerequisites import REPO_ROOT, PrerequisiteError, check_version, run_build_script

__all__ = [
    "BUILD_SCRIPT",
    "COLLECTOR_CONFIG",
    "MANIFEST",
    "Collector",
    "CollectorPorts",
    "collector_release",
    "find_collector_binary",
    "poll_until",
    "validate_config",
]

COLLECTOR_CONFIG: Path = REPO_ROOT / "collector-config.yaml"
"""The collector config the stack ships."""

BUILD_SCRIPT: Path = REPO_ROOT / "scripts" / "build-collector.sh"
"""Builds (or finds in its cache) the collector binary and prints its path."""

MANIFEST: Path = REPO_ROOT / "collector" / "builder-config.yaml"
"""The builder manifest: the components and the release of the collector the tests run."""

BUILD_TIMEOUT_S = 1800.0
"""A cold build downloads and compiles the collector's modules: minutes."""

T = TypeVar("T")


def find_collector_binary() -> Path:
    """The collector binary: ``$OTEL_JOBTAGS_COLLECTOR``, else the one the build script builds.

    Raises:
        PrerequisiteError: the variable names no executable, or the build failed.
    """
    named = os.environ.get("OTEL_JOBTAGS_COLLECTOR")
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PrerequisiteError(f"OTEL_JOBTAGS_COLLECTOR={named!r} is not an executable file")
    else:
        path = run_build_script(BUILD_SCRIPT, timeout=BUILD_TIMEOUT_S)
    check_version(
        [str(path), "--version"],
        rf"\bversion v?{re.escape(collector_release())}\b",
        what=f"the collector {'(OTEL_JOBTAGS_COLLECTOR) ' if named else ''}at {path}",
    )
    return path


def collector_release() -> str:
    """The collector release the builder manifest pins (``dist.version``)."""
    match = re.search(r"^  version: *\"?([0-9][0-9.]*)\"? *$", MANIFEST.read_text(encoding="utf-8"), re.M)
    if match is None:
        raise PrerequisiteError(f"no dist.version in {MANIFEST}")
    return match.group(1)


def poll_until(condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Raises:
        TimeoutError: naming ``what``, when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class CollectorPorts:
    """The loopback ports one collector listens on."""

    otlp_grpc: int
    otlp_http: int
    health_check: int
    metrics: int

    @classmethod
    def free(cls) -> CollectorPorts:
        """Four ports that are free right now."""
        return cls(free_port(), free_port(), free_port(), free_port())


def _config_env(
    ports: CollectorPorts, loki_endpoint: str, storage_dir: Path, extra: Mapping[str, str]
) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("COLLECTOR_LOGS_EXPORTERS", None)  # the config's default unless a test asks
    env.update(
        {
            "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports.otlp_grpc}",
            "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports.otlp_http}",
            "HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{ports.health_check}",
            "COLLECTOR_METRICS_HOST": "127.0.0.1",
            "COLLECTOR_METRICS_PORT": str(ports.metrics),
            "LOKI_OTLP_ENDPOINT": loki_endpoint,
            "FILE_STORAGE_DIR": str(storage_dir),
        }
    )
    env.update(extra)
    return env


def validate_config(
    binary: Path, config: Path = COLLECTOR_CONFIG, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``<binary> validate --config <config>`` and return the finished process."""
    return subprocess.run(
        [str(binary), "validate", f"--config={config}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
    )


class Collector:
    """A collector process running ``collector-config.yaml`` on loopback ports.

    Args:
        binary: the collector executable.
        workdir: a directory of the test's own; holds the persistent queue
            (``file_storage/``) and the process's output (``collector-N.log``).
        loki_endpoint: base URL the ``otlp_http/loki`` exporter sends to
            (it appends ``/v1/logs``), e.g. ``http://127.0.0.1:PORT/otlp``.
        config: the collector config (default: the repository's).
        env: more environment variables, e.g. ``COLLECTOR_LOGS_EXPORTERS``.
        ports: the ports to listen on (default: free ones).
    """

    def __init__(
        self,
        binary: Path,
        workdir: Path,
        *,
        loki_endpoint: str,
        config: Path = COLLECTOR_CONFIG,
        env: Mapping[str, str] | None = None,
        ports: CollectorPorts | None = None,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config = config
        self.ports = ports or CollectorPorts.free()
        self.storage_dir = workdir / "file_storage"
        self.env = _config_env(self.ports, loki_endpoint, self.storage_dir, env or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._starts = 0
        self.log_path: Path = workdir / "collector-0.log"

    @property
    def otlp_http_endpoint(self) -> str:
        """Base URL of the OTLP/HTTP receiver (the SDK appends ``/v1/logs``)."""
        return f"http://127.0.0.1:{self.ports.otlp_http}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        """Address of the OTLP/gRPC receiver."""
        return f"127.0.0.1:{self.ports.otlp_grpc}"

    @property
    def health_url(self) -> str:
        """URL of the health_check extension."""
        return f"http://127.0.0.1:{self.ports.health_check}/"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until its health check reports it available.

        Raises:
            RuntimeError: the process exited, or was not healthy within ``timeout``;
                the message ends with its output.
        """
        if self.running:
            raise RuntimeError("the collector is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._starts += 1
        self.log_path = self.workdir / f"collector-{self._starts}.log"
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [str(self.binary), f"--config={self.config}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if not self.running:
                self._close_log()
                raise RuntimeError(f"the collector exited with {self._process.returncode}:\n{self.output()}")
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(f"the collector was not healthy within {timeout:g} s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the process gracefully (SIGTERM; SIGKILL after ``timeout``); return its exit code."""
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            code = process.returncode
        self._close_log()
        return code

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self, last_lines: int = 60) -> str:
        """The end of the current (or last) run's stdout and stderr."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-last_lines:])

    def healthy(self) -> bool:
        """Whether the health check answers 200 with status ``Server available``."""
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as response:
                body = json.loads(response.read())
                return bool(response.status == 200 and body.get("status") == "Server available")
        except (OSError, ValueError):
            return False

    def metric(self, name: str) -> float | None:
        """Sum of one of the collector's own Prometheus metrics over its label sets.

        For example ``otelcol_exporter_queue_size`` (records waiting for
        Loki) or ``otelcol_exporter_send_failed_log_records``. ``None`` when
        the metric is not (yet) exported.
        """
        url = f"http://127.0.0.1:{self.ports.metrics}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except (OSError, urllib.error.URLError):
            return None
        pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
        values = [float(v) for v in pattern.findall(text)]
        return sum(values) if values else None

    def __enter__(self) -> Collector:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
