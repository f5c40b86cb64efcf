"""gunicorn with 2 workers: each job runs once per tick, and survives its worker's SIGKILL.

Without ``--preload`` each worker imports the application, which adds its
jobs and calls ``start_once_per_host`` instead of ``scheduler.start()``. With
``--preload`` the master imports it once, before the fork, and each worker
calls ``start_once_per_host`` from gunicorn's ``post_worker_init`` hook (the
documented recipe). Every run is written to a file as ``<pid> <scheduled run
time>`` by a scheduler listener, so the test sees which process ran which tick.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.collector import poll_until
from support.otlp import free_port
from support.prerequisites import unavailable

pytestmark = pytest.mark.timeout(240)

APP = """
import logging, os
from apscheduler.events import EVENT_JOB_EXECUTED
from apscheduler.schedulers.background import BackgroundScheduler
import otel_jobtags as oj
from otel_jobtags.scheduler import connect, start_once_per_host

jobs = oj.TagRegistry()
jobs.define("PRICE_CACHE", "price_cache", "refresh the price cache", "every 1 s")
log = logging.getLogger("app.jobs")

def refresh_prices():
    log.info("prices refreshed")

def record_run(event):
    with open(os.environ["RUNS_FILE"], "a", encoding="utf-8") as out:
        out.write(f"{os.getpid()} {event.scheduled_run_time.isoformat()}\\n")

scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"misfire_grace_time": None})
scheduler.add_job(refresh_prices, "interval", seconds=1, id="price_cache")
scheduler.add_listener(record_run, EVENT_JOB_EXECUTED)
connect(scheduler, jobs)


def start_scheduler():
    return start_once_per_host(scheduler, jobs, lock_path=os.environ["LOCK_FILE"], retry_every=0.2)


if os.environ.get("START") == "plain":
    scheduler.start()  # what applications do, and what runs every job once per worker
elif os.environ.get("START") == "at-import":
    lock = start_scheduler()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def workers_of(pid: int, count: int) -> set[int] | None:
    """The ``count`` workers of gunicorn's master ``pid``, once there are exactly that many."""
    found = children(pid)
    return found if len(found) == count else None


CONFIG = """
def post_worker_init(worker):
    import lockapp

    lockapp.lock = lockapp.start_scheduler()
"""


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (gunicorn's workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


class Runs:
    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[tuple[int, str]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [(int(pid), when) for pid, when in (line.split() for line in lines if line.count(" ") == 1)]

    def by(self, pid: int) -> list[str]:
        return [when for who, when in self.all() if who == pid]


@pytest.fixture(params=["no-preload", "preload"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(mode: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Runs, Path, Path]]:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        unavailable("gunicorn is not installed: pip install -e '.[test]'")
    (tmp_path / "lockapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    preload = mode == "preload"
    options = []
    if preload:
        (tmp_path / "gunicorn_conf.py").write_text(textwrap.dedent(CONFIG), encoding="utf-8")
        options = ["--preload", "--config=python:gunicorn_conf"]
    lock_file = tmp_path / "scheduler.lock"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in [os.environ.get("PYTHONPATH", ""), str(tmp_path)] if p),
        "RUNS_FILE": str(tmp_path / "runs.txt"),
        "LOCK_FILE": str(lock_file),
        "OTEL_LOGS_EXPORTER": "none",
        "START": {"no-preload": "at-import", "preload": "post-fork", "plain": "plain"}[mode],
        "XDG_RUNTIME_DIR": str(tmp_path),  # where the running mark goes
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers=2",
                *options,
                f"--bind=127.0.0.1:{free_port()}",
                "--graceful-timeout=5",
                "lockapp:app",
            ],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            yield process, Runs(tmp_path / "runs.txt"), lock_file, log_path
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def owner_of(lock_file: Path) -> int | None:
    """The pid the lock file names, or None before any process has written it."""
    words = lock_file.read_text().split()
    return int(words[0]) if words else None


def test_two_workers_run_each_tick_once_and_a_survivor_takes_over_after_sigkill(
    server: tuple[subprocess.Popen[bytes], Runs, Path, Path],
) -> None:
    process, runs, lock_file, log_path = server

    def output() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")

    workers = poll_until(lambda: workers_of(process.pid, 2), timeout=60, what="2 gunicorn workers")
    poll_until(lambda: len(runs.all()) >= 5, timeout=60, what=f"5 runs:\n{output()}")

    holder = owner_of(lock_file)
    assert holder in workers
    assert {pid for pid, _ in runs.all()} == {holder}, "one process runs the jobs"
    assert all(n == 1 for n in Counter(when for _, when in runs.all()).values()), "each tick once"

    os.kill(holder, signal.SIGKILL)
    # The other worker (or, if it is quicker, the worker gunicorn forks in its place) takes over.
    taker = poll_until(
        lambda: (pid := owner_of(lock_file)) not in (None, holder) and len(runs.by(pid)) >= 3 and pid,
        timeout=60,
        what=f"3 runs of another worker:\n{output()}",
    )
    workers_now = poll_until(lambda: workers_of(process.pid, 2), timeout=60, what="a replacement worker")
    assert taker in workers_now and holder not in workers_now
    assert {pid for pid, _ in runs.all()} == {holder, taker}
    assert all(n == 1 for n in Counter(when for _, when in runs.all()).values()), "each tick once"
    before = len(runs.by(taker))
    poll_until(lambda: len(runs.by(taker)) >= before + 2, timeout=60, what="2 more runs of the new holder")
    assert {pid for pid, _ in runs.all()} == {holder, taker}
    assert "already runs a scheduler" not in output()


@pytest.mark.parametrize("mode", ["plain"])
def test_schedulers_started_in_every_worker_run_each_tick_twice_and_are_told(
    server: tuple[subprocess.Popen[bytes], Runs, Path, Path],
) -> None:
    process, runs, _, log_path = server

    def output() -> str:
        return log_path.read_text(encoding="utf-8", errors="replace")

    workers = poll_until(lambda: workers_of(process.pid, 2), timeout=60, what="2 gunicorn workers")
    poll_until(lambda: all(len(runs.by(pid)) >= 3 for pid in workers), timeout=60, what=f"runs:\n{output()}")
    poll_until(lambda: "already runs a scheduler" in output(), timeout=30, what=f"the warning:\n{output()}")
    (warning,) = [line for line in output().splitlines() if "already runs a scheduler" in line]
    first, second = sorted(workers, key=lambda pid: f"pid {pid} on" in warning)
    assert warning == (
        f"otel-jobtags: pid {second} on this host already runs a scheduler for the same jobs, and this process "
        f"(pid {first}) starts another: every job now runs once per process. In gunicorn/uWSGI workers start "
        "it with otel_jobtags.scheduler.start_once_per_host(scheduler, registry) instead of scheduler.start() "
        "(said once)"
    )
