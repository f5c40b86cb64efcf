"""The ``otel-jobtags`` command line.

A thin edge over the library: each command parses its options, calls the
library, and turns library errors into one clean line on stderr with a
non-zero exit code (2 for usage errors, 1 for everything else).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import JobTagsError

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(
        duration=args.duration,
        log_file=args.log_file,
        endpoint=args.endpoint,
        protocol=args.protocol,
        service_name=args.service_name,
        seed=args.seed,
    )
    return 0


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="otel-jobtags",
        description="Tell background jobs' logs apart: tags, OpenTelemetry export, queries.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
        type=_non_negative_float,
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except JobTagsError as exc:
        print(f"otel-jobtags: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
