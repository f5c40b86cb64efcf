"""Benchmarks of the delivery pipeline against the stock OpenTelemetry pieces, in one run.

    python benchmarks/run.py            # full: 30 s outage, 15 rounds of 50,000 calls
    python benchmarks/run.py --quick    # 6 s outage, 3 rounds of 20,000 calls

"stock" is the pipeline OpenTelemetry offers out of the box: the contrib ``LoggingHandler`` on
the root logger, the default ``BatchLogRecordProcessor`` and the OTLP/gRPC
exporter. "ours" is ``otel_jobtags.install()`` with its defaults. Every figure
is measured in the same run and quoted as a ratio, since absolute numbers only
describe the machine. Receivers are real OTLP/gRPC servers on 127.0.0.1 (from
``tests/support/otlp.py``), in this process; the applications run in child
processes, so the receiver does not compete with them for the GIL.

Prints a Markdown table (and the machine it ran on).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from opentelemetry.instrumentation.logging.handler import LoggingHandler  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord  # noqa: E402
from opentelemetry.sdk._logs.export import (  # noqa: E402
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from support.otlp import GrpcReceiver  # noqa: E402

import otel_jobtags as oj  # noqa: E402

TAG = "AUTO_REBAL"
JOB_ID = "auto_rebalance"


class NullExporter(LogRecordExporter):
    """Accepts every batch at once: measures the pipeline, not a network."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _registry() -> oj.TagRegistry:
    jobs = oj.TagRegistry()
    jobs.define(TAG, JOB_ID, "rebalance", "hourly at minute 17")
    jobs.define("PRICE_CACHE", "price_cache", "refresh prices", "every 5 s")
    return jobs


# -- 1. per-record cost --------------------------------------------------------------------


def _isolated_logger(name: str, handler: logging.Handler | None) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers[:] = [handler] if handler is not None else []
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def per_record_cost(rounds: int, calls: int) -> dict[str, dict[str, list[float]]]:
    """µs per log call, one figure per round, for: NullHandler, stock pieces, install()'s pipeline.

    Two clocks: the CPU time of the application's thread (``time.thread_time``:
    what the log call itself costs, whatever the export thread does meanwhile)
    and the wall time of the loop (which also pays, under the GIL, for the
    export thread's work and for other processes on a shared machine).
    """
    null_log = _isolated_logger("bench.null", logging.NullHandler())

    stock_provider = LoggerProvider(shutdown_on_exit=False)
    stock_provider.add_log_record_processor(BatchLogRecordProcessor(NullExporter()))
    stock_log = _isolated_logger("bench.stock", LoggingHandler(logger_provider=stock_provider))

    ours_log = _isolated_logger("bench.ours", None)
    installation = oj.install(_registry(), exporter=NullExporter(), logger=ours_log)

    # The same record everywhere: body "[AUTO_REBAL] processed: <n> items" with
    # job.tag/job.id attributes. The stock handler gets them the way it can,
    # from the message and extra=; ours attributes the record itself.
    extra = {"job.tag": TAG, "job.id": JOB_ID}

    def floor() -> None:
        for i in range(calls):
            null_log.info("[AUTO_REBAL] processed: %d items", i, extra=extra)

    def stock() -> None:
        for i in range(calls):
            stock_log.info("[AUTO_REBAL] processed: %d items", i, extra=extra)

    def ours() -> None:
        with oj.job_context(JOB_ID):
            for i in range(calls):
                ours_log.info("processed: %d items", i)

    def drain() -> None:
        stock_provider.force_flush()
        installation.force_flush()
        gc.collect()

    timings: dict[str, dict[str, list[float]]] = {
        clock: {"floor": [], "stock": [], "ours": []} for clock in ("cpu", "wall")
    }
    runs: list[tuple[str, Callable[[], None]]] = [("floor", floor), ("stock", stock), ("ours", ours)]
    # One unmeasured round of each: caches (loggers, severity table) and the
    # allocator's arenas warm up outside the measurement.
    for _name, fn in runs:
        fn()
        drain()
    for r in range(rounds):
        order = runs if r % 2 == 0 else runs[::-1]
        for name, fn in order:
            cpu, wall = time.thread_time(), time.perf_counter()
            fn()
            timings["cpu"][name].append((time.thread_time() - cpu) / calls * 1e6)
            timings["wall"][name].append((time.perf_counter() - wall) / calls * 1e6)
            drain()
    installation.shutdown()
    stock_provider.shutdown()
    return timings


# -- 4. memory per waiting record -------------------------------------------------------------

_MEMORY_APP = r"""
import gc, json, logging, os, sys, threading, tracemalloc
sys.path[:0] = [os.environ["BENCH_ROOT"]]
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
import otel_jobtags as oj

pipeline, n = sys.argv[1], int(sys.argv[2])
blocked = threading.Event()

class Down(LogRecordExporter):
    # The receiver is down: every export fails (stock: blocks), so records wait.
    def export(self, batch):
        if pipeline == "stock":
            blocked.wait()
        return LogRecordExportResult.FAILURE
    def shutdown(self):
        blocked.set()
    def force_flush(self, timeout_millis=0):
        return True

jobs = oj.TagRegistry()
jobs.define("AUTO_REBAL", "auto_rebalance")
log = logging.getLogger("app.jobs")
log.propagate = False
log.setLevel(logging.INFO)
if pipeline == "stock":
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(Down()))
    log.addHandler(LoggingHandler(logger_provider=provider))
    waiting = lambda: n
else:
    installation = oj.install(jobs, exporter=Down(), logger=log, shutdown_timeout=0.1)
    waiting = lambda: installation.stats.queued
extra = {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"} if pipeline == "stock" else {}
log.info("[AUTO_REBAL] warm-up", extra=extra)
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
for i in range(n):
    if pipeline == "stock":
        log.info("[AUTO_REBAL] processed: %d items", i, extra=extra)
    else:
        with oj.job_context("auto_rebalance"):
            log.info("processed: %d items", i)
gc.collect()
after = tracemalloc.get_traced_memory()[0]
held = waiting()
print(json.dumps({"waiting": held, "bytes": after - before}), flush=True)
os._exit(0)
"""


def memory_per_record(n: int) -> dict[str, dict[str, Any]]:
    """Bytes of memory per record waiting for a receiver that is down (traced allocations)."""
    results: dict[str, dict[str, Any]] = {}
    env = dict(os.environ, BENCH_ROOT=str(ROOT))
    for pipeline, count in (("stock", min(n, 2000)), ("ours", n)):  # stock holds 2,048 at most
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_APP, pipeline, str(count)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        result["per_record"] = result["bytes"] / max(1, result["waiting"])
        results[pipeline] = result
    return results


# -- 2. and 3.: applications in child processes ----------------------------------------------

_APP = r"""
import json, logging, os, sys, time
sys.path[:0] = [os.environ["BENCH_ROOT"]]
import otel_jobtags as oj

mode, pipeline, endpoint = sys.argv[1:4]
jobs = oj.TagRegistry()
jobs.define("AUTO_REBAL", "auto_rebalance")
jobs.define("PRICE_CACHE", "price_cache")
root = logging.getLogger()
root.setLevel(logging.INFO)
if pipeline == "stock":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    provider = LoggerProvider(shutdown_on_exit=False)
    exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    root.addHandler(LoggingHandler(logger_provider=provider))
    def finish():
        provider.force_flush()
        provider.shutdown()
    stats = lambda: None
else:
    installation = oj.install(jobs, endpoint=endpoint)
    finish = installation.shutdown
    stats = lambda: installation.stats.__dict__
log = logging.getLogger("app.jobs")
extra_for = {
    "auto_rebalance": {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"},
    "price_cache": {"job.tag": "PRICE_CACHE", "job.id": "price_cache"},
}

def emit(seq, job):
    if pipeline == "stock":
        tag = extra_for[job]["job.tag"]
        log.info("[%s] record %d", tag, seq, extra={**extra_for[job], "seq": seq})
    else:
        with oj.job_context(job):
            log.info("record %d", seq, extra={"seq": seq})

if mode == "burst":
    n = int(sys.argv[4])
    start = time.perf_counter()
    for seq in range(n):
        emit(seq, "auto_rebalance")
    seconds = time.perf_counter() - start
    print(json.dumps({"emitted": n, "seconds": seconds, "stats": stats()}), flush=True)
    finish()
else:
    start_at, before, outage, after = (float(x) for x in sys.argv[4:8])
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + before + outage + after
    down_from, down_until = start_at + before, start_at + before + outage
    seq = 0
    calls = []
    outage_calls = []
    next_at = time.time()
    while time.time() < end:
        for job in ("auto_rebalance", "price_cache"):
            now = time.time()
            t = time.perf_counter()
            emit(seq, job)
            took = time.perf_counter() - t
            calls.append(took)
            if down_from <= now < down_until:
                outage_calls.append(took)
            seq += 1
        next_at += 0.01  # 2 records per 10 ms: 200 records/s
        time.sleep(max(0.0, next_at - time.time()))
    calls.sort()
    outage_calls.sort()
    finish_start = time.perf_counter()
    finish()
    print(json.dumps({
        "emitted": seq,
        "max_call_ms": calls[-1] * 1e3,
        "p99_call_ms": calls[int(len(calls) * 0.99)] * 1e3,
        "outage_max_call_ms": outage_calls[-1] * 1e3,
        "outage_p99_call_ms": outage_calls[int(len(outage_calls) * 0.99)] * 1e3,
        "shutdown_s": time.perf_counter() - finish_start,
        "stats": stats(),
    }), flush=True)
"""


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, BENCH_ROOT=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", _APP, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark app failed ({proc.returncode}):\n{err}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["stderr_lines"] = len(err.splitlines())
    return result


def burst(n: int) -> dict[str, dict[str, Any]]:
    """Log ``n`` records as fast as one thread can, to a live receiver."""
    results: dict[str, dict[str, Any]] = {}
    for pipeline in ("stock", "ours"):
        with GrpcReceiver() as rx:
            result = _result(_spawn("burst", pipeline, rx.endpoint, str(n)), timeout=300)
            records = rx.wait_for(n, timeout=2)
        result["delivered"] = len({r.attributes.get("seq") for r in records if "seq" in r.attributes})
        result["rate"] = n / result["seconds"]
        results[pipeline] = result
    return results


def outage(before: float, down: float, after: float) -> dict[str, dict[str, Any]]:
    """200 records/s; the receiver is down for ``down`` seconds in the middle."""
    receivers = {"stock": GrpcReceiver(), "ours": GrpcReceiver()}
    for rx in receivers.values():
        rx.start()
    start_at = time.time() + 3.0  # after both apps have imported and installed
    procs = {
        name: _spawn("outage", name, rx.endpoint, str(start_at), str(before), str(down), str(after))
        for name, rx in receivers.items()
    }
    time.sleep(max(0.0, start_at + before - time.time()))
    for rx in receivers.values():
        rx.stop()
    time.sleep(max(0.0, start_at + before + down - time.time()))
    for rx in receivers.values():
        rx.start()
    results: dict[str, dict[str, Any]] = {}
    for name, proc in procs.items():
        result = _result(proc, timeout=before + down + after + 120)
        rx = receivers[name]
        time.sleep(0.5)
        records = rx.records
        rx.stop()
        app = [r for r in records if "seq" in r.attributes]
        seqs = [r.attributes["seq"] for r in app]
        in_order = all(
            [s for s, r in zip(seqs, app, strict=True) if r.attributes.get("job.tag") == tag]
            == sorted(s for s, r in zip(seqs, app, strict=True) if r.attributes.get("job.tag") == tag)
            for tag in ("AUTO_REBAL", "PRICE_CACHE")
        )
        result.update(
            delivered=len(set(seqs)),
            duplicates=len(seqs) - len(set(seqs)),
            internal=len(records) - len(app),
            in_order=in_order,
        )
        results[name] = result
    return results


# -- report --------------------------------------------------------------------------------


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = ", ".join(
        f"{dist} {metadata.version(dist)}"
        for dist in ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc", "grpcio")
    )
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # a shared machine: say how busy it was
    return (
        f"{date}; nproc {os.cpu_count()}, {model}; load average {load} at the start; "
        f"Python {platform.python_version()} ({platform.system()} {platform.release()}); {versions}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs: 6 s outage, fewer rounds")
    args = parser.parse_args(argv)
    rounds, calls = (3, 20_000) if args.quick else (15, 50_000)
    down = 6.0 if args.quick else 30.0

    print(f"machine: {_machine()}", flush=True)
    print("1/4 per-record cost ...", file=sys.stderr, flush=True)
    costs = per_record_cost(rounds, calls)
    cpu = {name: statistics.median(values) for name, values in costs["cpu"].items()}
    wall = {name: statistics.median(values) for name, values in costs["wall"].items()}
    print("2/4 burst of 100,000 records ...", file=sys.stderr, flush=True)
    bursts = burst(100_000)
    print(f"3/4 outage of {down:g} s at 200 records/s ...", file=sys.stderr, flush=True)
    outages = outage(5.0, down, 5.0)
    print("4/4 memory per waiting record ...", file=sys.stderr, flush=True)
    memory = memory_per_record(100_000)

    s, o = bursts["stock"], bursts["ours"]
    so, oo = outages["stock"], outages["ours"]
    ms, mo = memory["stock"], memory["ours"]
    rows = [
        (
            f"per-record cost on the app thread, CPU time (median of {rounds}); "
            f"NullHandler floor {cpu['floor']:.2f} µs",
            f"{cpu['stock']:.2f} µs",
            f"{cpu['ours']:.2f} µs = {cpu['ours'] / cpu['floor']:.2f}× floor (target ≤ 2×)",
            f"{cpu['ours'] / cpu['stock']:.2f}× (target ≤ 0.50×)",
        ),
        (
            f"per-record cost, wall time of the loop (median of {rounds}); "
            f"NullHandler floor {wall['floor']:.2f} µs",
            f"{wall['stock']:.2f} µs",
            f"{wall['ours']:.2f} µs = {wall['ours'] / wall['floor']:.2f}× floor",
            f"{wall['ours'] / wall['stock']:.2f}×",
        ),
        (
            "burst 100,000: delivered / emitted",
            f"{s['delivered'] / s['emitted']:.1%}",
            f"{o['delivered'] / o['emitted']:.1%}",
            "",
        ),
        (
            "burst 100,000: logging thread records/s",
            f"{s['rate']:,.0f}",
            f"{o['rate']:,.0f}",
            f"{o['rate'] / s['rate']:.2f}× (target ≥ 1.50×)",
        ),
        (
            "memory per record waiting for a receiver that is down",
            f"{ms['per_record']:,.0f} B ({ms['waiting']:,} waiting)",
            f"{mo['per_record']:,.0f} B ({mo['waiting']:,} waiting)",
            f"{mo['per_record'] / ms['per_record']:.2f}×",
        ),
        (
            f"outage {down:g} s at 200/s: delivered / emitted",
            f"{so['delivered']}/{so['emitted']} = {so['delivered'] / so['emitted']:.1%}",
            f"{oo['delivered']}/{oo['emitted']} = {oo['delivered'] / oo['emitted']:.1%}",
            "",
        ),
        (
            "outage: duplicates / in order per job",
            f"{so['duplicates']} / {'yes' if so['in_order'] else 'no'}",
            f"{oo['duplicates']} / {'yes' if oo['in_order'] else 'no'}",
            "",
        ),
        ("outage: pipeline's own records exported", str(so["internal"]), str(oo["internal"]), ""),
        (
            "log call while the receiver is down: slowest (p99)",
            f"{so['outage_max_call_ms']:.2f} ms ({so['outage_p99_call_ms']:.3f} ms)",
            f"{oo['outage_max_call_ms']:.2f} ms ({oo['outage_p99_call_ms']:.3f} ms)",
            "",
        ),
        (
            "log call over the whole run: slowest (p99)",
            f"{so['max_call_ms']:.2f} ms ({so['p99_call_ms']:.3f} ms)",
            f"{oo['max_call_ms']:.2f} ms ({oo['p99_call_ms']:.3f} ms)",
            "",
        ),
        (
            "exit after the run (flush), seconds",
            f"{so['shutdown_s']:.2f}",
            f"{oo['shutdown_s']:.2f}",
            "",
        ),
    ]
    print()
    print("| measure | stock | ours | ours / stock |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
