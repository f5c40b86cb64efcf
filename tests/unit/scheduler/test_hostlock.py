"""The host lock in one process: two openings of one lock file exclude each other like two processes.

(``flock`` locks belong to open files, so two ``SchedulerLock`` objects on one
path compete exactly as two workers do; the real multi-process test, with
gunicorn and SIGKILL, is ``tests/integration/test_gunicorn_scheduler.py``.)
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from otel_jobtags import ConfigError, TagRegistry
from otel_jobtags.scheduler import SchedulerLock, connect, default_lock_path, start_once_per_host
from otel_jobtags.testing import capture_logs


@pytest.fixture
def registry() -> TagRegistry:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "rebalance the portfolio", "hourly at minute 17")
    return jobs


@pytest.fixture
def locks() -> Iterator[list[SchedulerLock]]:
    made: list[SchedulerLock] = []
    yield made
    for lock in made:
        lock.release()


def scheduler() -> BackgroundScheduler:
    return BackgroundScheduler(timezone="UTC")


def test_one_process_runs_the_scheduler_and_the_other_takes_over_when_it_lets_go(
    registry: TagRegistry, tmp_path: Path, locks: list[SchedulerLock]
) -> None:
    path = tmp_path / "jobs.lock"
    first, second = scheduler(), scheduler()
    with capture_logs(logger="otel_jobtags.scheduler", level=logging.INFO) as logs:
        locks.append(holder := start_once_per_host(first, registry, lock_path=path, retry_every=0.05))
        assert holder.wait(10)
        locks.append(waiter := start_once_per_host(second, registry, lock_path=path, retry_every=0.05))
        assert not waiter.wait(0.3)
        assert (first.running, second.running) == (True, False)
        holder.release()
        assert waiter.wait(10)
    assert (first.running, second.running) == (False, True)
    assert waiter.holder() == f"pid {path.read_text().split()[0]} on {path.read_text().split()[1]}"
    assert [r.message for r in logs] == [
        f"This process (pid {os.getpid()}) holds the scheduler lock {path}: the scheduler runs here",
        f"The scheduler lock {path} is held by {holder.holder()}: this process (pid {os.getpid()}) waits, "
        "and starts the scheduler if that one ends",
        f"This process (pid {os.getpid()}) holds the scheduler lock {path}: the scheduler runs here",
    ]


def test_release_of_a_waiting_lock_stops_it_without_starting(
    registry: TagRegistry, tmp_path: Path, locks: list[SchedulerLock]
) -> None:
    path = tmp_path / "jobs.lock"
    locks.append(holder := start_once_per_host(scheduler(), registry, lock_path=path, retry_every=0.05))
    assert holder.wait(10)
    waiting = scheduler()
    lock = start_once_per_host(waiting, registry, lock_path=path, retry_every=0.05)
    lock.release()
    holder.release()
    assert not lock.held and not waiting.running
    assert repr(lock) == f"<SchedulerLock {str(path)!r} released>"


def test_the_default_lock_file_is_shared_by_one_application_and_not_by_another(
    registry: TagRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    other = TagRegistry()
    other.define("NIGHTLY", "nightly_export", "export", "daily 02:00")
    path = default_lock_path(registry)
    assert path.parent == tmp_path and path.name.startswith("otel-jobtags-") and path.suffix == ".lock"
    assert default_lock_path(registry) == path
    assert default_lock_path(other) != path
    monkeypatch.setenv("OTEL_SERVICE_NAME", "another-app")
    assert default_lock_path(registry) != path


def test_the_lock_file_comes_from_the_environment_when_not_given(
    registry: TagRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, locks: list[SchedulerLock]
) -> None:
    monkeypatch.setenv("OTEL_JOBTAGS_SCHEDULER_LOCK", str(tmp_path / "from-env.lock"))
    locks.append(lock := start_once_per_host(scheduler(), registry))
    assert lock.path == tmp_path / "from-env.lock"
    assert lock.wait(10)


def test_a_lock_file_that_cannot_be_opened_is_a_config_error(registry: TagRegistry, tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "jobs.lock"
    with pytest.raises(
        ConfigError,
        match=rf"^Cannot open the scheduler lock '{path}': No such file or directory; give a lock_path "
        r"\(or OTEL_JOBTAGS_SCHEDULER_LOCK\) in a directory this process can write$",
    ):
        start_once_per_host(scheduler(), registry, lock_path=path)


@pytest.mark.parametrize("value", [0, -1, True, "1"])
def test_retry_every_must_be_a_positive_number(registry: TagRegistry, tmp_path: Path, value: object) -> None:
    with pytest.raises(
        ConfigError, match=r"^Invalid retry_every=.*: give a positive number of seconds, e\.g\. 1\.0$"
    ):
        start_once_per_host(scheduler(), registry, lock_path=tmp_path / "x.lock", retry_every=value)  # type: ignore[arg-type]


OTHER_PROCESS = """
import sys
from apscheduler.schedulers.background import BackgroundScheduler
from otel_jobtags import TagRegistry
from otel_jobtags.scheduler import connect

jobs = TagRegistry()
jobs.define("AUTO_REBAL", "auto_rebalance", "rebalance the portfolio", "hourly at minute 17")
scheduler = BackgroundScheduler(timezone="UTC")
connect(scheduler, jobs)
scheduler.start()
print("started", flush=True)
sys.stdin.read()  # until the test closes it
scheduler.shutdown()
"""


def test_a_second_process_starting_a_scheduler_for_the_same_jobs_is_told_once(
    registry: TagRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_PROCESS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == "started\n"
        for _ in range(2):  # said once, however many schedulers follow
            scheduler = BackgroundScheduler(timezone="UTC")
            connection = connect(scheduler, registry)
            scheduler.start()
            scheduler.shutdown()
            connection.disconnect()
    finally:
        assert other.stdin is not None
        other.stdin.close()
        assert other.wait(30) == 0
    assert capsys.readouterr().err == (
        f"otel-jobtags: pid {other.pid} on this host already runs a scheduler for the same jobs, and this "
        f"process (pid {os.getpid()}) starts another: every job now runs once per process. In gunicorn/uWSGI "
        "workers start it with otel_jobtags.scheduler.start_once_per_host(scheduler, registry) instead of "
        "scheduler.start() (said once)\n"
    )
    # Once the other process has ended, a scheduler here takes the mark without a word.
    scheduler = BackgroundScheduler(timezone="UTC")
    connection = connect(scheduler, registry)
    scheduler.start()
    scheduler.shutdown()
    connection.disconnect()
    assert capsys.readouterr().err == ""


def test_schedulers_of_one_process_do_not_warn_about_each_other(
    registry: TagRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    schedulers = [BackgroundScheduler(timezone="UTC") for _ in range(2)]
    connections = [connect(s, registry) for s in schedulers]
    for s in schedulers:
        s.start()
    for s, c in zip(schedulers, connections, strict=True):
        s.shutdown()
        c.disconnect()
    assert capsys.readouterr().err == ""
