"""``otel-jobtags serve`` as a process: it keeps every acknowledged record through SIGKILL,
follows a text log, and refuses to listen beyond loopback without a token."""

from __future__ import annotations

import http.client
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from support.serve import export_request, running_server, serve_process, wait_until

from otel_jobtags import TagRegistry
from otel_jobtags.store import Store

REPO = Path(__file__).resolve().parents[2]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def all_bodies(db: Path) -> set[str]:
    with Store.open(db) as store:
        seen: set[str] = set()
        cursor = None
        while True:
            page = store.records(limit=1000, cursor=cursor)
            seen.update(r.body for r in page.records)
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor


def test_every_acknowledged_record_survives_sigkill_during_ingest(tmp_path: Path) -> None:
    db = tmp_path / "kill.db"
    acknowledged: set[str] = set()
    lock = threading.Lock()
    enough = threading.Event()

    def send(name: str, port: int, pid: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        batch = 0
        while True:
            bodies = [f"{name}-{batch}-{i}" for i in range(200)]
            try:
                connection.request(
                    "POST",
                    "/v1/logs",
                    body=export_request(bodies),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                status = connection.getresponse()
                status.read()
            except (OSError, http.client.HTTPException):
                return  # killed: this batch was never acknowledged
            assert status.status == 200
            with lock:
                acknowledged.update(bodies)
                if len(acknowledged) >= 20 * 200 and not enough.is_set():
                    # Kill the moment an answer arrives, while the other senders' exports are in flight.
                    os.kill(pid, signal.SIGKILL)
                    enough.set()
            batch += 1

    with serve_process(
        "--db", str(db), "--otlp-grpc", "off", "--otlp-http", "127.0.0.1:0", "--http", "off"
    ) as (
        process,
        port,
    ):
        senders = [threading.Thread(target=send, args=(f"s{n}", port, process.pid)) for n in range(3)]
        for sender in senders:
            sender.start()
        assert enough.wait(120), "too few exports were acknowledged"
        for sender in senders:
            sender.join(60)
        assert process.wait(30) == -signal.SIGKILL

    stored = all_bodies(db)
    assert len(acknowledged) >= 4000
    assert acknowledged - stored == set()


def test_serve_follows_a_rotating_text_log_into_the_store(tmp_path: Path) -> None:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "automatic portfolio rebalancing", "hourly at minute 17")
    log_path = tmp_path / "app.log"
    writer = logging.getLogger("test.serve.logfile")
    handler = logging.handlers.RotatingFileHandler(log_path, maxBytes=300, backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    writer.addHandler(handler)
    writer.propagate = False
    writer.setLevel(logging.INFO)
    try:
        writer.info("[AUTO_REBAL] before serve started")
        writer.info("[OTHER] not a registered job")
        with running_server(tmp_path / "f.db", registry=jobs, log_file=log_path) as server:
            assert server.store is not None
            store = server.store

            def stored() -> list[str]:
                return [r.body for r in reversed(store.records(limit=100).records)]

            assert wait_until(lambda: len(stored()) == 1, timeout=60), stored()
            for n in range(12):  # rotates every 2 records (300-byte files), 6 times in all
                writer.error(
                    "[AUTO_REBAL] run %d failed\nTraceback (most recent call last):\nValueError: %d", n, n
                )
                # One record at a time, as a log grows: rotating faster than any follower polls
                # (several renames between two reads) would outrun every tail -F as well.
                assert wait_until(lambda n=n: len(stored()) == n + 2, timeout=60), stored()
            expected = ["[AUTO_REBAL] before serve started"] + [
                f"[AUTO_REBAL] run {n} failed\nTraceback (most recent call last):\nValueError: {n}"
                for n in range(12)
            ]

            assert wait_until(lambda: stored() == expected, timeout=60), stored()
            record = store.records(limit=1).records[0]
    finally:
        writer.removeHandler(handler)
        handler.close()

    assert record.attributes == {
        "job.tag": "AUTO_REBAL",
        "job.id": "auto_rebalance",
        "log.file.path": str(log_path),
    }
    assert (record.severity_number, record.severity_text, record.scope) == (
        17,
        "ERROR",
        "otel_jobtags.logfile",
    )


def test_following_the_same_log_again_adds_no_duplicates(tmp_path: Path) -> None:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "automatic portfolio rebalancing", "hourly at minute 17")
    log_path = tmp_path / "app.log"
    log_path.write_text(
        "2026-11-30 10:00:00,001 INFO: [AUTO_REBAL] one\n2026-11-30 10:00:01,002 INFO: [AUTO_REBAL] two\n",
        encoding="utf-8",
    )
    db = tmp_path / "again.db"
    for _ in range(2):
        with running_server(db, registry=jobs, log_file=log_path) as server:
            assert server.store is not None
            assert wait_until(lambda s=server.store: len(s.records().records) >= 2)
    with log_path.open("a", encoding="utf-8") as log:
        log.write("2026-11-30 10:00:02,003 INFO: [AUTO_REBAL] three\n")
    with running_server(db, registry=jobs, log_file=log_path) as server:
        assert server.store is not None
        store = server.store
        assert wait_until(lambda: len(store.records().records) >= 3)

    assert sorted(all_bodies(db)) == ["[AUTO_REBAL] one", "[AUTO_REBAL] three", "[AUTO_REBAL] two"]


def test_serve_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_jobtags",
            "serve",
            "--db",
            str(tmp_path / "x.db"),
            "--otlp-http",
            "0.0.0.0:0",
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in environment().items() if k != "OTEL_JOBTAGS_TOKEN"},
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "otel-jobtags: error: Listening beyond this machine (--otlp-http 0.0.0.0:0) needs a token: pass --token "
        "(or set OTEL_JOBTAGS_TOKEN); exporters then send 'Authorization: Bearer <token>'\n"
    )
    assert not (tmp_path / "x.db").exists()
