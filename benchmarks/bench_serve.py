"""How fast ``otel-jobtags serve`` ingests, and how fast its store answers, on this machine.

    python benchmarks/bench_serve.py   # 200,000 records over OTLP/HTTP; 1,000,000 in the store
    python benchmarks/bench_serve.py --ingest 50000 --store-records 200000

Ingest: ``otel-jobtags serve`` runs in its own process (OTLP/HTTP only); an
application in another process calls ``otel_jobtags.install(protocol=
"http/protobuf")`` with its defaults and logs ``--ingest`` records in a job:
paced at ``--rate`` records/s (a steady application), then as fast as it can
(one process, then ``--apps`` processes). Timed from the first log call until
the last record is committed in the store. Flat out, the application's own
logging loop holds the GIL and starves its exporter thread, so those columns
measure the application more than the receiver. Next to it, in the same run, the same application with
a no-op exporter (how fast the application side can emit at all: the ceiling
any receiver is measured against), and the receiver's CPU time (user + system,
from /proc) and the store's bytes per record.

Queries: the store of ``benchmarks/bench_web.py`` (the demo's 13 jobs on their
real schedules, ``--store-records`` records, cached), timed in this process:
median of ``--repeat`` calls after a warm-up. Next to the store's indexed
queries, the same ``job.tag`` page as a store without indexes would run
it (every record read, then sorted), for scale.

A benchmark, not a test: it prints Markdown tables and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from otel_jobtags.store import Store, severity_number_of  # noqa: E402

ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    "OTEL_JOBTAGS_SHUTDOWN_TIMEOUT": "300",  # deliver everything: the figure is the time to the last commit
}
TICKS = os.sysconf("SC_CLK_TCK")

APPLICATION = textwrap.dedent(
    """
    import logging, sys, time
    from otel_jobtags import TagRegistry, install, job_context
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

    class Null(LogRecordExporter):
        def export(self, batch):
            return LogRecordExportResult.SUCCESS
        def shutdown(self):
            pass
        def force_flush(self, timeout_millis=30000):
            return True

    count, endpoint, rate = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    jobs = TagRegistry()
    tag = jobs.define("AUTO_REBAL", "auto_rebalance", "automatic portfolio rebalancing", "every 5 s")
    options = {"exporter": Null()}
    if endpoint != "null":
        options = {"endpoint": endpoint, "protocol": "http/protobuf"}
    installation = install(jobs, service_name="bench", level="INFO", **options)
    log = logging.getLogger("bench.app")
    started = time.perf_counter()
    with job_context(tag, run_id="run-1"):
        if rate <= 0:  # flat out
            for i in range(count):
                log.info("rebalanced portfolio %d: %d orders", i, i % 7)
        else:  # paced: rate/100 records every 10 ms, as a steady application would log
            step = max(1, int(rate / 100))
            for start in range(0, count, step):
                for i in range(start, min(count, start + step)):
                    log.info("rebalanced portfolio %d: %d orders", i, i % 7)
                pause = started + (start + step) / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
    emitted = time.perf_counter()
    installation.shutdown()
    print(started, emitted, time.perf_counter(), flush=True)
    """
)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    load = os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, "
        f"load average {load:.1f} at start; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def committed(db: Path) -> int:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(connection.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0])
    finally:
        connection.close()


def application(count: int, endpoint: str, rate: float = 0) -> tuple[subprocess.Popen[str], float]:
    process = subprocess.Popen(
        [sys.executable, "-c", APPLICATION, str(count), endpoint, str(rate)],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    return process, time.perf_counter()


def serve_process(db: Path) -> Any:
    """``otel-jobtags serve`` (OTLP/HTTP only) in its own process, and its port."""
    from support.serve import serve_process as start

    args = ["--db", str(db), "--otlp-grpc", "off", "--otlp-http", "127.0.0.1:0", "--http", "off"]
    return start(*args, "--max-size", "off", env={"OTEL_JOBTAGS_SHUTDOWN_TIMEOUT": "300"})


def ingest(count: int, apps: int, rate: float = 0) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.db"
        with serve_process(db) as (serve, port):
            cpu_before = cpu_seconds(serve.pid)
            endpoint = f"http://127.0.0.1:{port}"
            running = [application(count // apps, endpoint, rate / apps)[0] for _ in range(apps)]
            while committed(db) < count and any(app.poll() is None for app in running):
                time.sleep(0.02)
            done = time.perf_counter()
            stored = committed(db)
            cpu = cpu_seconds(serve.pid) - cpu_before
            timings = []
            for app in running:
                assert app.stdout is not None
                timings.append([float(x) for x in app.stdout.read().split()])
                app.wait(60)
            started = min(t[0] for t in timings)
            emitted = max(t[1] for t in timings)
        connection = sqlite3.connect(db)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = db.stat().st_size
        connection.close()
    # perf_counter is CLOCK_MONOTONIC on Linux, system-wide: the processes' readings compare.
    elapsed = done - started
    return {
        "stored": stored,
        "rate": stored / elapsed,
        "emit_rate": count / (emitted - started),
        "elapsed": elapsed,
        "lag": done - emitted,
        "cpu": cpu,
        "bytes": size / max(1, stored),
    }


def receiver_capacity(count: int, connections: int = 2) -> tuple[float, float]:
    """Records/s ``serve`` stores from pre-encoded 512-record exports sent back to back; its CPU µs/record."""
    import http.client
    import threading

    from support.serve import export_request

    batches = count // 512 // connections
    start = time.time_ns()
    bodies = [f"rebalanced portfolio {i}: {i % 7} orders" for i in range(512)]
    encoded = [
        [export_request(bodies, start_ns=start + (n * batches + b) * 1_000_000) for b in range(batches)]
        for n in range(connections)
    ]  # times increase as they would from an application: the store's indexes append

    with tempfile.TemporaryDirectory() as folder, serve_process(Path(folder) / "raw.db") as (serve, port):

        def send(mine: list[bytes]) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for body in mine:
                connection.request(
                    "POST", "/v1/logs", body=body, headers={"Content-Type": "application/x-protobuf"}
                )
                connection.getresponse().read()
            connection.close()

        threads = [threading.Thread(target=send, args=(mine,)) for mine in encoded]
        cpu_before = cpu_seconds(serve.pid)
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(serve.pid) - cpu_before
    sent = batches * connections * 512
    return sent / elapsed, cpu / sent * 1e6


def emit_ceiling(count: int) -> float:
    app, _ = application(count, "null")
    assert app.stdout is not None
    started, emitted, _ = (float(x) for x in app.stdout.read().split())
    app.wait(60)
    return count / (emitted - started)


def median_ms(action: Callable[[], Any], repeat: int) -> float:
    action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def queries(records: int, repeat: int) -> list[tuple[str, float]]:
    from bench_web import build_store  # the web view's benchmark store: one generator for both

    path = build_store(records)
    rows: list[tuple[str, float]] = []
    with Store.open(path, readonly=True) as store:
        newest = store.stats().newest
        assert newest is not None
        day = newest - timedelta(hours=24)
        busiest = max(store.jobs(since=day), key=lambda job: job.records)
        tag = busiest.job_tag
        error = severity_number_of("ERROR")
        timed: list[tuple[str, Callable[[], Any]]] = [
            (f"latest 200 records of job.tag={tag}", lambda: store.records(job_tag=tag, limit=200)),
            ("latest 200 ERROR+ records of the job", lambda: store.records(job_tag=tag, min_severity=error)),
            ("latest 200 records, text filter 'failed'", lambda: store.records(job_tag=tag, text="failed")),
            ("overview figures, 13 jobs over 24 h", lambda: store.jobs(since=day)),
            ("one job's levels over 24 h (60 buckets)", lambda: store.levels_over_time(tag, since=day)),
            ("one job's latest 500 runs", lambda: store.runs(tag)),
        ]
        rows += [(name, median_ms(action, repeat)) for name, action in timed]
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        naive = "SELECT id FROM records NOT INDEXED WHERE job_tag = ? ORDER BY time_ns DESC LIMIT 200"
        scan_ms = median_ms(lambda: connection.execute(naive, (tag,)).fetchall(), max(1, repeat // 5))
        rows.append(("same page without indexes (scan and sort)", scan_ms))
        connection.close()
        rows.insert(
            0, (f"store: {store.stats().records:,} records, {Path(path).stat().st_size / 1e6:,.0f} MB", 0.0)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ingest", type=int, default=200_000, help="records to send over OTLP/HTTP")
    parser.add_argument(
        "--store-records", type=int, default=1_000_000, help="records in the query benchmark's store"
    )
    parser.add_argument("--apps", type=int, default=2, help="application processes exporting at once")
    parser.add_argument(
        "--rate", type=float, default=20_000, help="records/s of the paced application (default: 20,000)"
    )
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()

    print(f"Machine: {machine()}\n")
    ceiling = emit_ceiling(args.ingest)
    runs = [(f"1 process logging {args.rate:,.0f}/s", 1, args.rate), ("1 process flat out", 1, 0.0)]
    if args.apps > 1:
        runs.append((f"{args.apps} processes flat out", args.apps, 0.0))
    results = [ingest(args.ingest, apps, rate) for _, apps, rate in runs]
    print(f"## Ingest over OTLP/HTTP from install() ({args.ingest:,} records)\n")
    columns = [name for name, _, _ in runs]
    print("| figure | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(columns))

    def line(name: str, cell: Callable[[dict[str, float]], str]) -> None:
        print(f"| {name} | " + " | ".join(cell(r) for r in results) + " |")

    line("records stored", lambda r: f"{r['stored']:,.0f} of {args.ingest:,}")
    line("**ingest rate**, first log call to last commit", lambda r: f"**{r['rate']:,.0f} records/s**")
    line("the applications' emit rate meanwhile (all together)", lambda r: f"{r['emit_rate']:,.0f} records/s")
    line("last commit after the last log call", lambda r: f"{r['lag']:.2f} s")
    line("ingest / one process's no-op-exporter emit rate", lambda r: f"{r['rate'] / ceiling:.2f}")
    line(
        "receiver CPU (user + system)",
        lambda r: f"{r['cpu']:.1f} s, {r['cpu'] / r['stored'] * 1e6:.0f} µs/record",
    )
    line("receiver CPU share of one core", lambda r: f"{r['cpu'] / r['elapsed']:.0%}")
    line("store size per record (indexes included)", lambda r: f"{r['bytes']:.0f} bytes")
    capacity, capacity_cpu = receiver_capacity(args.ingest)
    print(
        f"\nOne process with a no-op exporter emits {ceiling:,.0f} records/s (the application-side ceiling). "
        "Fed pre-encoded 512-record exports on 2 connections (no SDK encoding on the sending side), "
        f"serve stores {capacity:,.0f} records/s ({capacity_cpu:.0f} µs of receiver CPU per record): "
        f"{capacity / max(r['rate'] for r in results):.1f}x the best rate above.\n"
    )

    rows = queries(args.store_records, args.repeat)
    print(f"## Store queries, median of {args.repeat} (server time, in process)\n")
    print("| query | ms |\n| --- | ---: |")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |" if ms else f"| {name} | |")


if __name__ == "__main__":
    main()
