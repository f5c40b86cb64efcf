"""``otel-jobtags demo``: run the example application's jobs and show their view, or summarise their logs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._options import non_negative_float

_TERMINAL_DURATION = 0.0
"""On a terminal the demo runs until Ctrl-C, so its view stays open."""
_PIPED_DURATION = 20.0


def add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the 13 example jobs and open their view in the browser (no Docker), or export them",
        description=(
            "Run the example application's 13 background jobs on APScheduler, write their tagged log to a "
            "file, export them over OTLP to an embedded 'otel-jobtags serve' and print the URL of its "
            "jobs view; at the end print a per-job summary. On a terminal it runs until Ctrl-C, else "
            "for 20 s (--duration changes both). With --endpoint or OTEL_EXPORTER_OTLP_ENDPOINT it "
            "exports there instead (a collector, the Loki/Grafana stack) and serves nothing."
        ),
    )
    demo.add_argument(
        "--duration",
        type=non_negative_float,
        help="seconds to run; 0 runs until interrupted (default: until Ctrl-C on a terminal, else 20)",
    )
    demo.add_argument(
        "--log-file", default="otel-jobtags-demo.log", help="text log to write (default: %(default)s)"
    )
    demo.add_argument("--endpoint", help="export to this OTLP endpoint instead, e.g. http://localhost:4317")
    demo.add_argument("--protocol", choices=["grpc", "http/protobuf"], help="OTLP protocol")
    demo.add_argument("--service-name", default="otel-jobtags-demo", help="service.name of exported records")
    demo.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    demo.add_argument(
        "--db", type=Path, help="the embedded store's database (default: the log file's name with .db)"
    )
    demo.add_argument(
        "--http",
        default="127.0.0.1:4320",
        metavar="HOST:PORT",
        help="where the jobs view listens (default: %(default)s, else a free port)",
    )
    demo.add_argument(
        "--no-serve", action="store_true", help="serve nothing; export only if an endpoint is configured"
    )
    demo.set_defaults(func=_cmd_demo)


def _duration(args: argparse.Namespace) -> float:
    if args.duration is not None:
        return float(args.duration)
    on_terminal = sys.stdin.isatty() and sys.stdout.isatty()
    return _TERMINAL_DURATION if on_terminal else _PIPED_DURATION


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import JOBS, run_demo

    duration = _duration(args)
    exporting = (
        args.endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    if exporting or args.no_serve:
        run_demo(
            duration=duration,
            log_file=args.log_file,
            endpoint=args.endpoint,
            protocol=args.protocol,
            service_name=args.service_name,
            seed=args.seed,
        )
        return 0

    from ..receiver import DEFAULT_HTTP, ServeConfig, parse_address, start_with_fallback
    from ._serve import describe

    config = ServeConfig(
        db=args.db or Path(args.log_file).with_suffix(".db"),
        http=parse_address(args.http, DEFAULT_HTTP, "--http"),
        registry=JOBS,
    )
    server = start_with_fallback(config)
    try:
        print(describe(server), flush=True)
        assert server.grpc is not None
        if server.web_url is not None:
            until = "Ctrl-C stops" if duration == 0 else f"for {duration:g} s"
            print(f"otel-jobtags demo: open {server.web_url} to see every job's panels ({until})", flush=True)
        run_demo(
            duration=duration,
            log_file=args.log_file,
            endpoint=server.grpc.endpoint,
            protocol="grpc",
            service_name=args.service_name,
            seed=args.seed,
        )
    finally:
        server.stop()
    return 0
