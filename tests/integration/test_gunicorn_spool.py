"""gunicorn ``--preload`` with a spool: a killed worker's batches are delivered by the processes still running.

The application installs at import, in gunicorn's master (``--preload``), and
every worker is forked from it. A worker that is killed (its timeout, the
OOM killer: SIGKILL) leaves its written batches in the spool. Nothing would
start cold to adopt them: the master and the replacement worker are both
running already, so one of them must take them over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.collector import poll_until
from support.otlp import HttpReceiver, free_port
from support.prerequisites import unavailable

pytestmark = pytest.mark.timeout(180)

COUNT = 50

APP = """
import logging, os
import otel_jobtags as oj

jobs = oj.TagRegistry()
jobs.define("PRICE_CACHE", "price_cache", "refresh the price cache", "every 5 s")
oj.install(jobs, protocol="http/protobuf", service_name="web", level=logging.INFO, shutdown_timeout=1)
log = logging.getLogger("app.web")

def app(environ, start_response):
    count = int(environ["QUERY_STRING"] or "0")
    with oj.job_context("price_cache"):
        for i in range(count):
            log.info("request record %d", i)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


@pytest.fixture
def gunicorn_installed() -> None:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        unavailable("gunicorn is not installed: pip install -e '.[test]'")


class Gunicorn:
    """``gunicorn --preload`` running the app above, with one worker."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        (workdir / "spoolapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")
        self.log_path = workdir / "gunicorn.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--preload",
                "--workers=1",
                f"--bind=127.0.0.1:{self.port}",
                "--graceful-timeout=5",
                "spoolapp:app",
            ],
            cwd=workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def get(self, count: int) -> int:
        """Have a worker log ``count`` records; its pid."""
        url = f"http://127.0.0.1:{self.port}/?{count}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.read())

    def serving_pid(self) -> int | None:
        """The pid of the worker that answers now; ``None`` while none does."""
        assert self.process.poll() is None, self.output()
        try:
            return self.get(0)
        except OSError:
            return None

    def wait_ready(self) -> None:
        poll_until(self.serving_pid, timeout=60, what="gunicorn to answer")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


@pytest.fixture
def receiver_port() -> int:
    return free_port()


@pytest.fixture
def server(tmp_path: Path, gunicorn_installed: None, receiver_port: int) -> Iterator[tuple[Gunicorn, Path]]:
    spool = tmp_path / "spool"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in [os.environ.get("PYTHONPATH", ""), str(tmp_path)] if p),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}",
        "OTEL_JOBTAGS_SPOOL_DIR": str(spool),
    }
    running = Gunicorn(tmp_path, env)
    try:
        running.wait_ready()
        yield running, spool
    finally:
        running.stop()


def _batches_of(spool: Path, pid: int) -> list[Path]:
    # <start ns>-<pid>-<random>-<seq>.batch
    return [p for p in spool.glob("*.batch") if p.name.split("-")[1] == str(pid)]


def test_a_killed_workers_spooled_batches_are_delivered_without_a_restart(
    server: tuple[Gunicorn, Path], receiver_port: int
) -> None:
    gunicorn, spool = server
    # The receiver is down: the worker's records wait in the spool.
    pid = gunicorn.get(COUNT)
    poll_until(
        lambda: sum(1 for _ in _batches_of(spool, pid)), timeout=30, what=f"worker {pid}'s batches on disk"
    )
    os.kill(pid, signal.SIGKILL)
    # gunicorn replaces it; nothing restarts cold.
    poll_until(lambda: gunicorn.serving_pid() not in (None, pid), timeout=60, what="a replacement worker")

    with HttpReceiver(port=receiver_port) as receiver:
        records = receiver.wait_for(COUNT, timeout=60)
        time.sleep(1)  # anything sent twice would arrive meanwhile
        records = receiver.records

    assert [r.body for r in records] == [f"[PRICE_CACHE] request record {i}" for i in range(COUNT)]
    assert {r.resource["process.pid"] for r in records} == {pid}
    assert _batches_of(spool, pid) == []
