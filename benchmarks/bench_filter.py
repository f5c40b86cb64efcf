"""How fast the job log filter is, next to ``grep -F '[TAG]'``, and what each keeps.

    python benchmarks/bench_filter.py --size-mb 500

Generates (once; cached under ~/.cache/otel-jobtags-bench) a text log in the
demo's format: the 13 seed jobs on their real schedules, each run logging as
the demo's jobs do (APScheduler's own lines, a quiet exit for frequent jobs
with nothing to do, ~5 % failures with a traceback). Then, for jobs from the
rarest to the most frequent, it times on the same warm file:

* ``grep -F '[TAG]' app.log > out`` (GNU grep, one process);
* ``LogFilter(job).write(app.log, out)`` -- what ``otel-jobtags logs --job`` runs,
  records copied as they are, continuation lines included;
* ``LogFilter(job).scan(app.log)`` -- every record as a ``LogEntry``;
* ``LogFilter(job).last(app.log, 200)`` -- the 200 most recent, what an admin page shows;
* ``python -m otel_jobtags logs --job JOB app.log > out`` -- the whole command,
  interpreter start-up and imports included;

and counts the continuation lines (traceback lines) each kept, against the
numbers the generator wrote. The filter's output must be byte-identical to what
a plain line-by-line reading of the file selects (``reference_digest``: a line
that starts a record starts the job's record or another's, every other line
stays with the record above); the run exits with status 1 when it is not.
Times are the median of ``--repeat`` runs: wall time, and CPU time (this
process's for the filter, the child's for grep), which other processes on a
shared machine disturb less. A benchmark, not a test: it prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from otel_jobtags.demo import JOBS  # noqa: E402
from otel_jobtags.logfiles import LogFilter  # noqa: E402
from otel_jobtags.schedule import Cron, Interval  # noqa: E402
from otel_jobtags.tags import JobTag  # noqa: E402

GENERATOR_VERSION = 1
START = datetime(2025, 10, 20, 0, 0, 0)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "otel-jobtags-bench"


def _due(tag_schedule: object, moment: datetime, second: int) -> bool:
    if isinstance(tag_schedule, Interval):
        return second % tag_schedule.seconds == 0
    if isinstance(tag_schedule, Cron):
        minutes, hours, *_ = tag_schedule.fields
        return moment.second == 0 and moment.minute in minutes and moment.hour in hours
    return False


def _stamp(moment: datetime, ms: int) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S},{ms:03d}"


def _trigger(tag_schedule: object) -> str:
    if isinstance(tag_schedule, Interval):
        return f"interval[{timedelta(seconds=tag_schedule.seconds)}]"
    assert isinstance(tag_schedule, Cron)
    minute, hour, *_ = tag_schedule.expression.split()
    return f"cron[month='*', day='*', day_of_week='*', hour='{hour}', minute='{minute}']"


def generate(path: Path, size_mb: int, seed: int) -> dict[str, dict[str, int]]:
    """Write the log; return per tag: records and continuation lines written."""
    rng = random.Random(seed)
    target = size_mb * 1024 * 1024
    stats: dict[str, Counter[str]] = {tag.name: Counter() for tag in JOBS}
    runs: Counter[str] = Counter()
    tmp = path.with_suffix(".partial")
    written = 0
    second = 0
    with open(tmp, "w", encoding="utf-8", newline="\n") as out:
        while written < target:
            lines: list[str] = []
            for _ in range(3600):  # an hour at a time
                moment = START + timedelta(seconds=second)
                ms = 0
                for tag in JOBS:
                    if not _due(tag.schedule, moment, second):
                        continue
                    runs[tag.name] += 1
                    ms = min(ms + rng.randint(1, 9), 990)
                    st = stats[tag.name]
                    trigger = _trigger(tag.schedule)
                    lines.append(
                        f'{_stamp(moment, ms)} INFO: Running job "{tag.job_id} (trigger: {trigger}, '
                        f'next run at: {moment:%Y-%m-%d %H:%M:%S} UTC)" (scheduled at '
                        f"{moment:%Y-%m-%d %H:%M:%S}+00:00)\n"
                    )
                    frequent = isinstance(tag.schedule, Interval) and tag.schedule.seconds <= 5
                    items = rng.randint(0, 6)
                    p = tag.prefix
                    took = rng.randint(20, 180)
                    lines.append(f"{_stamp(moment, ms)} DEBUG: {p}GET /api/{tag.job_id} -> 200 ({took} ms)\n")
                    st["records"] += 1
                    if not (frequent and runs[tag.name] > 1 and items == 0):
                        ms = min(ms + rng.randint(0, 3), 995)
                        level = "DEBUG" if frequent else "INFO"
                        lines.append(f"{_stamp(moment, ms)} {level}: {p}🔄 job started\n")
                        lines.append(f"{_stamp(moment, ms)} DEBUG: {p}processed: {items} items\n")
                        st["records"] += 2
                        if rng.random() < 0.05:
                            depth = rng.randint(2, 6)
                            tb = ["Traceback (most recent call last):"]
                            for d in range(depth):
                                tb.append(
                                    f'  File "/srv/app/jobs/{tag.job_id}.py", line {40 + 7 * d}, in step_{d}'
                                )
                                tb.append(f"    return client.fetch('/api/{tag.job_id}', attempt={d})")
                            tb.append(f"app.exchange.UpstreamError: upstream answered 503 for {tag.job_id}")
                            lines.append(
                                f"{_stamp(moment, ms)} ERROR: {p}❌ failed: upstream answered 503 for "
                                f"{tag.job_id}\n" + "\n".join(tb) + "\n"
                            )
                            st["records"] += 1
                            st["continuation"] += len(tb)
                        else:
                            if items > 4:
                                lines.append(
                                    f"{_stamp(moment, ms)} WARNING: {p}⚠️ backlog: {items} items waiting\n"
                                )
                                st["records"] += 1
                            lines.append(
                                f"{_stamp(moment, ms)} INFO: {p}✅ done - processed: {items} items\n"
                            )
                            st["records"] += 1
                    lines.append(
                        f'{_stamp(moment, min(ms + 1, 999))} INFO: Job "{tag.job_id} (trigger: {trigger}, '
                        f'next run at: {moment:%Y-%m-%d %H:%M:%S} UTC)" executed successfully\n'
                    )
                second += 1
            chunk = "".join(lines)
            out.write(chunk)
            written += len(chunk.encode("utf-8"))
    tmp.rename(path)
    return {name: dict(counter) for name, counter in stats.items()}


def ensure_log(size_mb: int, seed: int, cache: Path) -> tuple[Path, dict[str, dict[str, int]]]:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"demo-{size_mb}mb-seed{seed}-v{GENERATOR_VERSION}.log"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    print(f"generating {path} ({size_mb} MB, once) ...", file=sys.stderr, flush=True)
    stats = generate(path, size_mb, seed)
    meta.write_text(json.dumps(stats))
    return path, stats


def _warm(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(16 << 20):
            pass


def _continuation_lines(path: Path) -> int:
    """Lines of an output file that do not start a record (that do not start with a date)."""
    count = 0
    with open(path, "rb") as f:
        for line in f:
            if not (line[:4].isdigit() and line[4:5] == b"-"):
                count += 1
    return count


def _lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b""))


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    return _median_times(fn, repeat)[0]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median_times(fn: Callable[[], object], repeat: int, child: bool = False) -> tuple[float, float]:
    """Median wall time and median CPU time (this process's, or its children's) of ``fn``."""
    walls, cpus = [], []
    for _ in range(repeat):
        c0 = _children_cpu() if child else time.process_time()
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append((_children_cpu() if child else time.process_time()) - c0)
    return statistics.median(walls), statistics.median(cpus)


_RECORD_START = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d\d\d [^\n:]{1,64}: ")


def reference_digest(path: Path, tag: JobTag) -> str:
    """SHA-256 of the job's records as a plain line-by-line reading selects them."""
    digest = hashlib.sha256()
    prefix = tag.prefix.encode()
    keep = False
    with open(path, "rb") as f:
        for line in f:
            m = _RECORD_START.match(line)
            if m is not None:
                keep = line.startswith(prefix, m.end())
            if keep:
                digest.update(line if line.endswith(b"\n") else line + b"\n")
    return digest.hexdigest()


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def machine() -> dict[str, str]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    grep = subprocess.run(["grep", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %z"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu or "unknown",
        "python": platform.python_version(),
        "grep": grep,
        "os": platform.platform(),
    }


def measure(tag: JobTag, path: Path, out: Path, repeat: int) -> dict[str, Any]:
    """Time grep and the filter on one job; count what each kept."""
    result: dict[str, Any] = {}

    def grep() -> None:
        with open(out, "wb") as o:
            subprocess.run(["grep", "-F", str(tag), str(path)], stdout=o, check=False)

    result["grep_s"], result["grep_cpu"] = _median_times(grep, repeat, child=True)
    result["grep_lines"] = _lines(out)
    result["grep_cont"] = _continuation_lines(out)

    selection = LogFilter(tag, registry=JOBS)

    def write() -> None:
        with open(out, "wb") as o:
            selection.write(path, o, rotated=False)

    result["write_s"], result["write_cpu"] = _median_times(write, repeat)
    result["digest"] = _digest(out)
    result["ours_cont"] = _continuation_lines(out)
    result["ours_records"] = _lines(out) - int(result["ours_cont"])

    def entries() -> None:
        for _ in selection.scan(path, rotated=False):
            pass

    result["entries_s"] = _median_time(entries, repeat)
    result["last_s"] = _median_time(lambda: selection.last(path, 200, rotated=False), repeat)

    def cli() -> None:
        with open(out, "wb") as o:
            argv = ["logs", "--job", tag.name, "--no-rotated", str(path)]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            subprocess.run(
                [sys.executable, "-m", "otel_jobtags", *argv], stdout=o, check=True, cwd=ROOT, env=env
            )

    result["cli_s"] = _median_time(cli, repeat)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=500, help="size of the generated log (default: 500)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the generated log")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is shown")
    parser.add_argument("--cache-dir", type=Path, default=_cache_dir(), help="where the log is kept")
    parser.add_argument(
        "--jobs",
        default="AUTO_REBAL,WS_HEALTH,PRICE_CACHE,QUEUE_REBAL",
        help="tags to look for, comma-separated (default: from the rarest to the most frequent job)",
    )
    args = parser.parse_args(argv)

    path, stats = ensure_log(args.size_mb, args.seed, args.cache_dir)
    size = path.stat().st_size
    total_lines = _lines(path)
    _warm(path)
    info = machine()
    print(f"log: {path.name}, {size / 1e6:.0f} MB, {total_lines:,} lines (demo format, generated, cached)")
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['os']}")
    print(f"software: Python {info['python']}, {info['grep']}")
    print(
        f"date: {info['date']}; load average before: {os.getloadavg()[0]:.2f}; median of {args.repeat} runs"
    )
    print()
    print(
        "| job | records (share of lines) | continuation lines: written / kept by grep / kept by filter "
        "| output = reference | grep -F | filter (`logs` path) | ratio | CPU: grep / filter | CPU ratio "
        "| filter → LogEntry | last 200 | `otel-jobtags logs` process |"
    )
    print("|---|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    digests_file = path.with_suffix(".digests.json")
    digests: dict[str, str] = json.loads(digests_file.read_text()) if digests_file.exists() else {}
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        for name in args.jobs.split(","):
            tag = JOBS.by_name(name.strip())
            if tag.name not in digests:
                digests[tag.name] = reference_digest(path, tag)
                digests_file.write_text(json.dumps(digests))
            r = measure(tag, path, out, args.repeat)
            expected = stats[tag.name]
            lines = expected["records"] + expected.get("continuation", 0)
            identical = r["digest"] == digests[tag.name]
            print(
                f"| {tag.name} | {r['ours_records']:,} ({100 * lines / total_lines:.1f} %) "
                f"| {expected.get('continuation', 0):,} / {r['grep_cont']:,} / {r['ours_cont']:,} "
                f"| {'yes' if identical else '**NO**'} "
                f"| {r['grep_s']:.2f} s | {r['write_s']:.2f} s | {r['write_s'] / r['grep_s']:.2f}× "
                f"| {r['grep_cpu']:.2f} s / {r['write_cpu']:.2f} s | {r['write_cpu'] / r['grep_cpu']:.2f}× "
                f"| {r['entries_s']:.2f} s | {r['last_s']:.3f} s | {r['cli_s']:.2f} s |",
                flush=True,
            )
            if r["ours_records"] != expected["records"]:
                print(f"  !! expected {expected['records']:,} records for {tag.name}", file=sys.stderr)
                status = 1
            if not identical:
                print(f"  !! the filter's output for {tag.name} differs from the reference", file=sys.stderr)
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
