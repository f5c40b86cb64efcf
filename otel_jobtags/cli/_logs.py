"""``otel-jobtags logs``: a job's records from text log files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from .._loading import load_registry
from ._options import non_negative_float, non_negative_int, selection_options


def add_logs_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = commands.add_parser(
        "logs",
        help="show a job's records from a text log file, tracebacks included",
        description=(
            "Print one job's records from text log files written in the default format "
            "('%(asctime)s %(levelname)s: [TAG] message'), with their continuation lines "
            "(tracebacks, multi-line messages). Each file stands for its rotated generations too "
            "(app.log.3, app.log.2.gz, ..., app.log, read oldest first). Exits 0 also when "
            "nothing matches; 1 on errors; 2 on usage errors such as an unknown job."
        ),
    )
    logs.add_argument("paths", nargs="+", metavar="LOGFILE", help="log file(s) to read")
    selection_options(logs)
    logs.add_argument(
        "-n",
        "--tail",
        type=non_negative_int,
        metavar="N",
        help="only the last N records (with --follow: default 10)",
    )
    logs.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep reading as the file grows, across rotation, like tail -f (one LOGFILE)",
    )
    logs.add_argument(
        "--max-seconds",
        type=non_negative_float,
        metavar="S",
        help="with --follow, stop after S seconds (default: until interrupted)",
    )
    logs.add_argument(
        "--no-rotated", action="store_true", help="read only the files named, not their rotations"
    )
    logs.add_argument(
        "--line-format",
        metavar="FMT",
        help="the logging format string the file was written with (default: "
        "'%%(asctime)s %%(levelname)s: %%(message)s'); %%(message)s must come last",
    )
    logs.add_argument(
        "--line-regex",
        metavar="REGEX",
        help="instead of --line-format: a regex matching a record's first line, with a 'message' "
        "group and optional 'time' and 'level' groups",
    )
    logs.add_argument("--datefmt", help="the formatter's datefmt, if it had one")
    logs.set_defaults(func=_cmd_logs, parser=logs)


def _cmd_logs(args: argparse.Namespace) -> int:
    import json
    import time

    from ..logfiles import DEFAULT_LINE_FORMAT, LineFormat, LogEntry, LogFilter

    parser: argparse.ArgumentParser = args.parser
    if args.follow and len(args.paths) != 1:
        parser.error("--follow reads one LOGFILE")
    if args.max_seconds is not None and not args.follow:
        parser.error("--max-seconds goes with --follow")
    if args.line_format and args.line_regex:
        parser.error("give --line-format or --line-regex, not both")
    registry = load_registry(args.registry)
    if args.line_regex:
        line_format = LineFormat.from_regex(args.line_regex, datefmt=args.datefmt)
    elif args.line_format or args.datefmt:
        line_format = LineFormat(args.line_format or DEFAULT_LINE_FORMAT, datefmt=args.datefmt)
    else:
        line_format = None
    selection = LogFilter(
        args.job,
        registry=registry,
        level=args.level,
        since=args.since,
        until=args.until,
        contains=args.contains,
        ignore_case=args.ignore_case,
        line_format=line_format,
    )
    rotated = not args.no_rotated
    binary = sys.stdout.buffer
    as_json = args.format == "json"

    def show_json(entry: LogEntry) -> None:
        sys.stdout.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")

    if args.follow:
        stop = None
        if args.max_seconds is not None:
            deadline = time.monotonic() + args.max_seconds
            stop = lambda: time.monotonic() >= deadline  # noqa: E731
        history = args.tail if args.tail is not None else 10
        if as_json:
            for entry in selection.follow(args.paths[0], history=history, rotated=rotated, stop=stop):
                show_json(entry)
                sys.stdout.flush()
        else:
            for raw in selection.follow_raw(args.paths[0], history=history, rotated=rotated, stop=stop):
                binary.write(raw)
                binary.flush()
        return 0
    if as_json:
        if args.tail is None:
            entries: Iterable[LogEntry] = selection.scan(args.paths, rotated=rotated)
        else:
            entries = selection.last(args.paths, args.tail, rotated=rotated)
        for entry in entries:
            show_json(entry)
    elif args.tail is None:
        sys.stdout.flush()
        selection.write(args.paths, binary, rotated=rotated)
    else:
        binary.writelines(selection.last_raw(args.paths, args.tail, rotated=rotated))
    return 0
