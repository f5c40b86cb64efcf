"""``otel-jobtags demo``: run the example application's jobs and summarise their logs."""

from __future__ import annotations

import argparse

from ._options import non_negative_float


def add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the 13 seed jobs for a while and summarise their logs",
        description=(
            "Run the seed application's 13 background jobs on APScheduler, write "
            "their tagged log to a file and print a per-job summary. Set "
            "OTEL_EXPORTER_OTLP_ENDPOINT (or --endpoint) to export over OTLP too."
        ),
    )
    demo.add_argument(
        "--duration",
        type=non_negative_float,
        default=20.0,
        help="seconds to run; 0 runs until interrupted (default: 20)",
    )
    demo.add_argument(
        "--log-file", default="otel-jobtags-demo.log", help="text log to write (default: %(default)s)"
    )
    demo.add_argument("--endpoint", help="OTLP endpoint, e.g. http://localhost:4317")
    demo.add_argument("--protocol", choices=["grpc", "http/protobuf"], help="OTLP protocol")
    demo.add_argument("--service-name", default="otel-jobtags-demo", help="service.name of exported records")
    demo.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    demo.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(
        duration=args.duration,
        log_file=args.log_file,
        endpoint=args.endpoint,
        protocol=args.protocol,
        service_name=args.service_name,
        seed=args.seed,
    )
    return 0
