"""How fast the jobs view renders with 1,000,000 records in the store.

    python benchmarks/bench_web.py                 # 1,000,000 records
    python benchmarks/bench_web.py --records 200000

Generates (once; cached under ~/.cache/otel-jobtags-bench) a store holding the
demo's 13 jobs on their real schedules -- lines, run records (summaries for
the every-1-s and every-5-s jobs), ~5 % failures with a traceback -- until it
holds ``--records`` records, appended through ``Store.append`` in batches as
the receiver does. Then it times, in this process (server time: the WSGI call,
body included, no network), the median of ``--repeat`` calls after one warm-up:

* the overview (``/``) over 24 h and over 7 d (every record of the store);
* a job page for the busiest job and for an hourly job (lines, levels chart, runs);
* ``/api/v1/records?job.tag=...&limit=200`` and ``/api/v1/jobs``;

next to what a view without the store's per-minute counts would run for the
overview's level counts: one ``GROUP BY`` over the records of the window, and
``SELECT count(*) FROM records`` for scale. A benchmark, not a test: it prints
a Markdown table and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.jobsview import call  # noqa: E402

from otel_jobtags.demo import JOBS  # noqa: E402
from otel_jobtags.store import NewRecord, Store  # noqa: E402
from otel_jobtags.web import create_app  # noqa: E402

GENERATOR_VERSION = 2
START = datetime(2026, 11, 1, tzinfo=timezone.utc)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "otel-jobtags-bench"
RESOURCE = {"service.name": "demo", "service.instance.id": "bench-1", "process.pid": 4242}
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/jobs.py", line 42, in run\n'
    "    client.call()\n"
    "ConnectionError: upstream answered 503"
)
BATCH = 5000


def _records(limit: int) -> Iterator[list[NewRecord]]:
    """Batches of records in time order, from :data:`START`, until ``limit``."""
    rng = random.Random(7)
    jobs = [(tag, tag.schedule) for tag in JOBS]
    due: dict[str, datetime] = {tag.name: START for tag, _ in jobs}
    summary_due: dict[str, datetime] = {tag.name: START for tag, _ in jobs}
    pending: dict[str, int] = {}
    batch: list[NewRecord] = []
    produced = 0
    run = 0
    now = START
    while produced < limit:
        tag, schedule = min(jobs, key=lambda job: due[job[0].name])
        now = due[tag.name]
        period = schedule.period or timedelta(days=1)
        if hasattr(schedule, "next_after"):
            due[tag.name] = schedule.next_after(now)
        else:
            due[tag.name] = now + period
        run += 1
        ns = int(now.timestamp() * 1e9)
        attrs = {"job.tag": tag.name, "job.id": tag.job_id, "job.run_id": f"r{run:08x}"}
        frequent = period <= timedelta(seconds=5)
        failed = rng.random() < 0.05
        out: list[NewRecord] = []
        if not frequent or rng.random() < 0.3 or failed:
            out.append(
                NewRecord(
                    ns,
                    9,
                    "INFO",
                    f"[{tag.name}] processed {rng.randint(1, 40)} items",
                    attrs,
                    RESOURCE,
                    "app.jobs",
                )
            )
        if not frequent and rng.random() < 0.5:
            out.append(
                NewRecord(
                    ns + 1000,
                    5,
                    "DEBUG",
                    f"[{tag.name}] fetched page {rng.randint(1, 9)}",
                    attrs,
                    RESOURCE,
                    "app.jobs",
                )
            )
        duration = round(rng.uniform(2, 40) if frequent else rng.uniform(50, 4000), 1)
        end = ns + int(duration * 1e6)
        if failed:
            error = {**attrs, "exception.type": "ConnectionError", "exception.stacktrace": TRACEBACK}
            out.append(
                NewRecord(end - 1000, 17, "ERROR", f"[{tag.name}] ❌ failed", error, RESOURCE, "app.jobs")
            )
            run_attrs = {**attrs, "job.outcome": "error", "job.duration_ms": duration}
            out.append(
                NewRecord(
                    end,
                    17,
                    "ERROR",
                    f"run failed after {duration} ms",
                    run_attrs,
                    RESOURCE,
                    "otel_jobtags.runs",
                )
            )
        elif not frequent:
            run_attrs = {**attrs, "job.outcome": "success", "job.duration_ms": duration}
            out.append(
                NewRecord(
                    end, 9, "INFO", f"run finished in {duration} ms", run_attrs, RESOURCE, "otel_jobtags.runs"
                )
            )
        else:
            pending[tag.name] = pending.get(tag.name, 0) + 1
            if now >= summary_due[tag.name]:
                summary_due[tag.name] = now + timedelta(minutes=5)
                runs = pending.pop(tag.name)
                run_attrs = {**attrs, "job.outcome": "success", "job.duration_ms": duration, "job.runs": runs}
                body = f"{runs} runs finished in the last 5 min, {duration} ms on average"
                out.append(NewRecord(end, 9, "INFO", body, run_attrs, RESOURCE, "otel_jobtags.runs"))
        for record in out[: limit - produced]:
            batch.append(record)
            produced += 1
        if len(batch) >= BATCH or produced >= limit:
            yield batch
            batch = []


def build_store(records: int) -> Path:
    """The cached store with ``records`` records; built on first use."""
    path = CACHE / f"web-v{GENERATOR_VERSION}-{records}.db"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    with Store.open(partial) as store:
        for batch in _records(records):
            store.append(batch)
    elapsed = time.perf_counter() - started
    print(
        f"built {records:,} records in {elapsed:.1f} s ({records / elapsed:,.0f} records/s)", file=sys.stderr
    )
    connection = sqlite3.connect(partial)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    partial.rename(path)
    return path


def _median_ms(action: Callable[[], Any], repeat: int) -> tuple[float, float]:
    started = time.perf_counter()
    action()  # warm-up, also the "first call" figure
    first = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    path = build_store(args.records)
    with Store.open(path, readonly=True) as store:
        stats = store.stats()
        assert stats.newest is not None and stats.oldest is not None
        now = stats.newest + timedelta(seconds=1)
        app = create_app(store, JOBS, clock=lambda: now)
        busiest = max(JOBS, key=lambda tag: store.job(tag.name, since=stats.oldest, until=now).records)

        def get(path: str, query: str = "") -> Callable[[], Any]:
            def action() -> Any:
                answer = call(app, path, query)
                assert answer.status == 200, (path, query, answer.status, answer.body[:300])
                return answer

            return action

        raw = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        since_24h = int((now - timedelta(days=1)).timestamp() * 1e9)

        def naive_overview() -> Any:
            return raw.execute(
                "SELECT job_tag, severity, count(*) FROM records WHERE time_ns >= ? "
                "GROUP BY job_tag, severity",
                (since_24h,),
            ).fetchall()

        in_24h = raw.execute("SELECT count(*) FROM records WHERE time_ns >= ?", (since_24h,)).fetchone()[0]
        since_7d = int((now - timedelta(days=7)).timestamp() * 1e9)
        in_7d = raw.execute("SELECT count(*) FROM records WHERE time_ns >= ?", (since_7d,)).fetchone()[0]
        rows = [
            ("overview `/`, 24 h", get("/")),
            (f"overview `/?window=7d` ({in_7d:,} records)", get("/", "window=7d")),
            (f"job page `/jobs/{busiest.name}` (busiest), 24 h", get(f"/jobs/{busiest.name}")),
            (f"job page `/jobs/{busiest.name}`, 7 d", get(f"/jobs/{busiest.name}", "since=7d")),
            ("job page `/jobs/AUTO_REBAL` (hourly), 7 d", get("/jobs/AUTO_REBAL", "since=7d")),
            ("job page, errors only, text filter, 24 h", get("/jobs/AUTO_REBAL", "level=error&q=failed")),
            (
                f"`/api/v1/records?job.tag={busiest.name}&limit=200`",
                get("/api/v1/records", f"job.tag={busiest.name}&limit=200"),
            ),
            ("`/api/v1/jobs`, 24 h", get("/api/v1/jobs")),
            ("stock: `GROUP BY job_tag, severity` over 24 h of records", naive_overview),
            (
                "stock: `SELECT count(*) FROM records`",
                lambda: raw.execute("SELECT count(*) FROM records").fetchone(),
            ),
        ]
        print(
            f"Store: {stats.records:,} records, {stats.bytes / 2**20:,.0f} MiB, "
            f"{stats.oldest:%Y-%m-%d %H:%M} to {stats.newest:%Y-%m-%d %H:%M} UTC "
            f"({in_24h:,} in the last 24 h)"
        )
        print(
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC\n"
        )
        print("| what | first call | median |")
        print("|---|---:|---:|")
        figures = {}
        for name, action in rows:
            first, median = _median_ms(action, args.repeat)
            figures[name] = median
            print(f"| {name} | {first:.1f} ms | {median:.1f} ms |")
        overview, stock = (
            figures["overview `/`, 24 h"],
            figures["stock: `GROUP BY job_tag, severity` over 24 h of records"],
        )
        print(f"\nThe whole overview takes {overview / stock:.2f}x the time of the stock GROUP BY alone.")
        raw.close()


if __name__ == "__main__":
    main()
