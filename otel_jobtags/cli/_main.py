"""The ``otel-jobtags`` command line.

A thin edge over the library: each command parses its options, calls the
library, and turns library errors into one clean line on stderr,
``otel-jobtags: error: ...``. Exit codes: 0 success (``logs`` and ``query``
also when nothing matched), 1 a runtime error or ``check`` findings, 2 a
usage error -- a bad option, an unknown job, an invalid setting.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from ..errors import ConfigError, JobTagsError, UnknownJobError
from ._check import add_check_command
from ._demo import add_demo_command
from ._generated import add_generated_artefact_commands
from ._logs import add_logs_command
from ._query import add_query_command
from ._serve import add_serve_command

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="otel-jobtags",
        description="Tell background jobs' logs apart: tags, OpenTelemetry export, queries.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    add_demo_command(commands)
    add_logs_command(commands)
    add_query_command(commands)
    add_check_command(commands)
    add_serve_command(commands)
    add_generated_artefact_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, like a program killed by SIGPIPE,
        # and keep the interpreter from failing again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (UnknownJobError, ConfigError) as exc:  # the command line asked for something impossible
        print(f"otel-jobtags: error: {exc}", file=sys.stderr)
        return 2
    except (JobTagsError, OSError) as exc:
        print(f"otel-jobtags: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
