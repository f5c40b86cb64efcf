"""A child process that ``multiprocessing`` forks delivers what it logged when it ends.

Such a child ends through ``os._exit`` once its target returns, which skips
``atexit``: without a hook of multiprocessing's own, its queued records were
lost, and nothing said so. Each test runs real children against a real
OTLP/HTTP receiver (gRPC's C core is not fork-safe without
``GRPC_ENABLE_FORK_SUPPORT``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator

import pytest
from support.otlp import HttpReceiver, ReceivedLog, free_port

import otel_jobtags as oj

COUNT = 200
FORK = multiprocessing.get_context("fork")


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    rx = HttpReceiver()
    rx.start()
    yield rx
    rx.stop()


@pytest.fixture
def jobs() -> oj.TagRegistry:
    registry = oj.TagRegistry()
    registry.define("PRICE_CACHE", "price_cache", "refresh the price cache", "every 5 s")
    return registry


def _log_records(label: str, count: int = COUNT) -> int:
    # No uninstall(), no flush: what an application's worker function does.
    log = logging.getLogger("app.jobs")
    with oj.job_context("price_cache"):
        for i in range(count):
            log.info("%s %d", label, i)
    return os.getpid()


def _install_in_worker(endpoint: str) -> None:
    registry = oj.TagRegistry()
    registry.define("PRICE_CACHE", "price_cache", "refresh the price cache", "every 5 s")
    oj.install(
        registry, endpoint=endpoint, protocol="http/protobuf", service_name="worker", level=logging.INFO
    )


def _bodies_by_pid(records: list[ReceivedLog]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for r in records:
        out.setdefault(r.resource["process.pid"], []).append(r.body)
    return out


def test_a_child_process_delivers_its_records_when_its_target_returns(
    receiver: HttpReceiver, jobs: oj.TagRegistry
) -> None:
    oj.install(
        jobs, endpoint=receiver.base_url, protocol="http/protobuf", service_name="mp", level=logging.INFO
    )
    child = FORK.Process(target=_log_records, args=("child",))
    child.start()
    child.join(60)
    assert child.exitcode == 0

    records = receiver.wait_for(COUNT, timeout=10)
    assert _bodies_by_pid(records) == {child.pid: [f"[PRICE_CACHE] child {i}" for i in range(COUNT)]}


def test_pool_workers_deliver_their_records_when_the_pool_is_closed(
    receiver: HttpReceiver, jobs: oj.TagRegistry
) -> None:
    oj.install(
        jobs, endpoint=receiver.base_url, protocol="http/protobuf", service_name="mp", level=logging.INFO
    )
    pool = FORK.Pool(2)
    try:
        labels = [f"task{n}" for n in range(4)]
        pids = pool.map(_log_records, labels)
    finally:
        pool.close()
        pool.join()

    records = receiver.wait_for(COUNT * 4, timeout=10)
    assert len(records) == COUNT * 4
    bodies = _bodies_by_pid(records)
    assert set(bodies) == set(pids)
    for label in labels:
        mine = [b for b in (r.body for r in records) if b.startswith(f"[PRICE_CACHE] {label} ")]
        assert mine == [f"[PRICE_CACHE] {label} {i}" for i in range(COUNT)]


def test_a_pool_worker_that_installs_itself_delivers_its_records_when_the_pool_is_closed(
    receiver: HttpReceiver,
) -> None:
    pool = FORK.Pool(1, initializer=_install_in_worker, initargs=(receiver.base_url,))
    try:
        (pid,) = pool.map(_log_records, ["worker"])
    finally:
        pool.close()
        pool.join()

    records = receiver.wait_for(COUNT, timeout=10)
    assert _bodies_by_pid(records) == {pid: [f"[PRICE_CACHE] worker {i}" for i in range(COUNT)]}


def test_a_child_that_cannot_deliver_says_how_many_records_it_lost(
    jobs: oj.TagRegistry, capfd: pytest.CaptureFixture[str]
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    oj.install(
        jobs,
        endpoint=down,
        protocol="http/protobuf",
        service_name="mp",
        level=logging.INFO,
        shutdown_timeout=1,
    )
    child = FORK.Process(target=_log_records, args=("child", 5))
    child.start()
    child.join(60)
    assert child.exitcode == 0

    err = capfd.readouterr().err.splitlines()
    assert err[-1] == (
        "otel-jobtags: 5 log records were not delivered before exit (receiver unavailable for 1s); "
        "set a spool directory to keep them"
    )
