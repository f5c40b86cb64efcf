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
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, JobTagsError, UnknownJobError

if TYPE_CHECKING:
    from ..check import Finding
    from ..tags import TagRegistry

__all__ = ["main"]


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
    from .. import __version__

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
    _add_logs_command(commands)
    _add_query_command(commands)
    _add_check_command(commands)
    _add_generated_artefact_commands(commands)
    return parser


# ---- generated artefacts: dashboard, alerts, table ------------------------------
# Commands that write files derived from the tag registry, each with --check
# for CI: exit 1 when the committed copy is stale.


def _report(paths: list[Path], *, check: bool, command: str) -> int:
    """Say what was written, or (``check``) what is stale; exit 1 for stale files."""
    if check:
        for path in paths:
            print(
                f"otel-jobtags: {path} is stale: run 'otel-jobtags {command}' to regenerate it",
                file=sys.stderr,
            )
    else:
        for path in paths:
            print(f"wrote {path}")
    if not paths:
        print("up to date")
    return 1 if check and paths else 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from ..grafana import stale_dashboards, write_dashboards

    registry = _load_registry(args)
    act = stale_dashboards if args.check else write_dashboards
    return _report(act(registry, args.out, job_tag_as=args.job_tag_as), check=args.check, command="dashboard")


def _cmd_alerts(args: argparse.Namespace) -> int:
    from ..grafana import stale_alert_rules, write_alert_rules

    registry = _load_registry(args)
    act = stale_alert_rules if args.check else write_alert_rules
    return _report(act(registry, args.out, job_tag_as=args.job_tag_as), check=args.check, command="alerts")


def _cmd_table(args: argparse.Namespace) -> int:
    from ..markdown import render_job_table, update_job_table

    registry = _load_registry(args)
    if args.update is None:
        if args.check:
            raise ConfigError("--check needs --update FILE: the file whose table is checked")
        sys.stdout.write(render_job_table(registry))
        return 0
    path = Path(args.update)
    changed = [path] if update_job_table(path, registry, check=args.check) else []
    return _report(changed, check=args.check, command=f"table --update {path}")


def _job_tag_as_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--job-tag-as",
        choices=["index_label", "structured_metadata"],
        default="index_label",
        help="how Loki stores job_tag; must match loki-config.yaml (default: %(default)s)",
    )


def _add_generated_artefact_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def out_option(parser: argparse.ArgumentParser, default: str) -> None:
        parser.add_argument(
            "--out", default=default, metavar="DIR", help="directory to write to (default: %(default)s)"
        )

    def check_option(parser: argparse.ArgumentParser, what: str) -> None:
        parser.add_argument(
            "--check", action="store_true", help=f"write nothing; exit 1 when {what} on disk is stale"
        )

    dashboard = commands.add_parser(
        "dashboard",
        help="write the Grafana dashboards of the registry's jobs",
        description=(
            "Generate the Grafana dashboards (an overview of every job and a per-job view) "
            "from a tag registry and write them as <uid>.json, for Grafana to provision."
        ),
    )
    _registry_option(dashboard)
    out_option(dashboard, "grafana/dashboards")
    _job_tag_as_option(dashboard)
    check_option(dashboard, "a dashboard")
    dashboard.set_defaults(func=_cmd_dashboard)

    alerts = commands.add_parser(
        "alerts",
        help="write the Grafana alert rules of the registry's jobs",
        description=(
            "Generate Grafana alert rules (a job is late: no successful run within its period plus "
            "a grace; a job is failing: repeated failed runs) from a tag registry, as a Grafana "
            "alerting provisioning file."
        ),
    )
    _registry_option(alerts)
    out_option(alerts, "grafana/provisioning/alerting")
    _job_tag_as_option(alerts)
    check_option(alerts, "the rules file")
    alerts.set_defaults(func=_cmd_alerts)

    table = commands.add_parser(
        "table",
        help="print the registry as the seed's Markdown job table",
        description=(
            "Print the registry as the Markdown table | constant | tag | job id | what it does | "
            "schedule |, or put it between the <!-- jobs-table:start --> and "
            "<!-- jobs-table:end --> lines of a Markdown file."
        ),
    )
    _registry_option(table)
    table.add_argument("--update", metavar="FILE", help="replace the table between the markers of FILE")
    check_option(table, "the table in FILE")
    table.set_defaults(func=_cmd_table)


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


# --------------------------------------------------------------------------
# Choosing the registry: --registry, OTEL_JOBTAGS_REGISTRY, the demo's (logs, query, check)

DEFAULT_REGISTRY = "otel_jobtags.demo:JOBS"
REGISTRY_ENV = "OTEL_JOBTAGS_REGISTRY"
_SPEC_HELP = "write module:attribute, e.g. 'myapp.jobs:JOBS'"


def _valid_spec(text: str) -> bool:
    module, sep, attr = text.partition(":")
    return bool(sep and module.strip() and attr.strip() and " " not in text)


def _spec_arg(text: str) -> str:
    if not _valid_spec(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a module:attribute; {_SPEC_HELP}")
    return text


def _registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        type=_spec_arg,
        metavar="MODULE:ATTR",
        help=f"the tag registry (a TagRegistry, or a job id -> tag mapping); default: ${REGISTRY_ENV}, "
        f"else {DEFAULT_REGISTRY}",
    )


def _registry_spec(args: argparse.Namespace) -> tuple[str, str]:
    """The registry spec and where it came from."""
    if args.registry:
        return args.registry, "--registry"
    env = os.environ.get(REGISTRY_ENV, "").strip()
    if env:
        if not _valid_spec(env):
            raise ConfigError(f"Invalid {REGISTRY_ENV}={env!r}: {_SPEC_HELP}")
        return env, REGISTRY_ENV
    return DEFAULT_REGISTRY, "default"


class _NoSuchAttributeError(JobTagsError):
    """The module imported, but has nothing under that name."""


def _import_object(spec: str) -> object:
    """The object ``module:attr.sub`` names, importing the module (the current folder is importable)."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, so `myapp.jobs:JOBS` works from the project
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _NoSuchAttributeError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _load_registry(args: argparse.Namespace) -> TagRegistry:
    from collections.abc import Mapping

    from ..check import registry_from_object
    from ..tags import TagRegistry as TagRegistryType

    spec, source = _registry_spec(args)
    where = {
        "--registry": f"Invalid --registry {spec!r}",
        REGISTRY_ENV: f"Invalid {REGISTRY_ENV}={spec!r}",
    }.get(source, f"Invalid default registry {spec!r}")
    try:
        obj = _import_object(spec)
    except _NoSuchAttributeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{where}: cannot import {spec.partition(':')[0]!r}: {exc}") from None
    except Exception as exc:  # importing user code can raise anything, TagError included
        raise JobTagsError(f"{where}: importing it raised {type(exc).__name__}: {exc}") from None
    registry, findings = registry_from_object(obj, spec)
    if findings:
        # A wrong kind of object is a setting to fix (exit 2); broken tags are findings (exit 1).
        error = ConfigError if not isinstance(obj, Mapping | TagRegistryType) else JobTagsError
        raise error(f"{where}: " + "; ".join(f.message for f in findings))
    return registry


def _level_arg(text: str) -> int:
    from ..logfiles import parse_level

    try:
        level = parse_level(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert level is not None
    return level


def _time_arg(text: str) -> datetime:
    from ..logfiles import parse_time

    try:
        return parse_time(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def _selection_options(parser: argparse.ArgumentParser) -> None:
    """The options ``logs`` and ``query`` share: which records."""
    parser.add_argument(
        "-j", "--job", help="job id or tag name (AUTO_REBAL or [AUTO_REBAL]); default: every registered job"
    )
    parser.add_argument(
        "-l",
        "--level",
        type=_level_arg,
        help="minimum level: debug, info, warning, error, critical or a number",
    )
    parser.add_argument(
        "--since",
        type=_time_arg,
        metavar="TIME",
        help="records at or after TIME: ISO 8601 ('2025-10-23 14:30', local time unless an offset is "
        "given) or a duration ago ('15m', '2h', '1d')",
    )
    parser.add_argument("--until", type=_time_arg, metavar="TIME", help="records before TIME (same forms)")
    parser.add_argument("--contains", metavar="TEXT", help="records whose text contains TEXT")
    parser.add_argument("-i", "--ignore-case", action="store_true", help="match --contains ignoring case")
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text: the records as logged; json: one JSON object per line (default: text)",
    )
    _registry_option(parser)


# --------------------------------------------------------------------------
# otel-jobtags logs


def _add_logs_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    logs = commands.add_parser(
        "logs",
        help="show a job's records from a text log file, tracebacks included",
        description=(
            "Print one job's records from text log files written in the seed's format "
            "('%(asctime)s %(levelname)s: [TAG] message'), with their continuation lines "
            "(tracebacks, multi-line messages). Each file stands for its rotated generations too "
            "(app.log.3, app.log.2.gz, ..., app.log, read oldest first). Exits 0 also when "
            "nothing matches; 1 on errors; 2 on usage errors such as an unknown job."
        ),
    )
    logs.add_argument("paths", nargs="+", metavar="LOGFILE", help="log file(s) to read")
    _selection_options(logs)
    logs.add_argument(
        "-n",
        "--tail",
        type=_positive_int,
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
        type=_non_negative_float,
        metavar="S",
        help="with --follow, stop after S seconds (default: until interrupted)",
    )
    logs.add_argument(
        "--no-rotated", action="store_true", help="read only the files named, not their rotations"
    )
    logs.add_argument(
        "--line-format",
        metavar="FMT",
        help="the logging format string the file was written with (default: the seed's "
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
    registry = _load_registry(args)
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


# --------------------------------------------------------------------------
# otel-jobtags query


def _add_query_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    query = commands.add_parser(
        "query",
        help="show a job's records from Loki, or print the LogQL for them",
        description=(
            "Query Loki for one job's records (exported by otel_jobtags.install through the collector): "
            "the same selection as 'logs', as LogQL over Loki's HTTP API. Every value is escaped into the "
            "query. Prints the most recent --limit records, oldest first. Exits 0 also when nothing "
            "matches; 1 when Loki fails; 2 on usage errors such as an unknown job."
        ),
    )
    _selection_options(query)
    query.add_argument(
        "--loki",
        metavar="URL",
        help="Loki's base URL; default: $OTEL_JOBTAGS_LOKI_URL, else $LOKI_URL (e.g. http://localhost:3100)",
    )
    query.add_argument(
        "--service",
        default=os.environ.get("OTEL_SERVICE_NAME") or None,
        help="service.name of the application; default: $OTEL_SERVICE_NAME, else any",
    )
    query.add_argument(
        "--limit", type=_positive_int, default=100, help="at most this many records (default: %(default)s)"
    )
    query.add_argument("--tenant", help="Loki tenant (sent as X-Scope-OrgID)")
    query.add_argument(
        "--timeout",
        type=_non_negative_float,
        default=10.0,
        help="seconds to wait for Loki (default: %(default)s)",
    )
    query.add_argument(
        "--print-logql",
        action="store_true",
        help="print the LogQL query and exit, without contacting Loki (time range and limit are "
        "request parameters, not part of it)",
    )
    _job_tag_as_option(query)
    query.set_defaults(func=_cmd_query, parser=query)


def _cmd_query(args: argparse.Namespace) -> int:
    import json

    from ..loki import LokiClient, build_logql

    registry = _load_registry(args)
    options: dict[str, Any] = {
        "registry": registry,
        "service_name": args.service,
        "level": args.level,
        "contains": args.contains,
        "ignore_case": args.ignore_case,
        "job_tag_as": args.job_tag_as,
    }
    if args.print_logql:
        print(build_logql(args.job, **options))
        return 0
    if args.limit == 0:
        args.parser.error("--limit must be at least 1")
    client = LokiClient(args.loki, timeout=args.timeout, tenant=args.tenant)
    entries = client.query(args.job, since=args.since, until=args.until, limit=args.limit, **options)
    for entry in entries:
        if args.format == "json":
            print(json.dumps(entry.to_dict(), ensure_ascii=False))
        else:
            print(entry)
    return 0


# --------------------------------------------------------------------------
# otel-jobtags check


def _add_check_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check",
        help="check the registry, the tags used in source code, and the scheduler's job ids",
        description=(
            "Check the tag registry (naming rules, duplicates; errors raised while it is defined are "
            "reported), the [TAG] uses in .py files under PATH (unregistered tags, registered tags "
            "nothing uses, files without the @FEAT:background-log-tagging marker) and, with --scheduler, "
            "the scheduler's job ids against the registry's. Prints a report; exits 1 when there is an "
            "error (warnings alone exit 0), 2 on usage errors."
        ),
    )
    check.add_argument(
        "paths", nargs="*", default=["."], metavar="PATH", help=".py files or folders to scan (default: .)"
    )
    _registry_option(check)
    check.add_argument(
        "--scheduler",
        type=_spec_arg,
        metavar="MODULE:ATTR",
        help="an APScheduler scheduler (or a function returning one) whose get_jobs() ids must match "
        "the registry's job ids exactly, and whose triggers must follow the tags' schedules",
    )
    check.add_argument(
        "--allow-unused",
        action="store_true",
        help="registered tags that no source uses are warnings, not errors (for code that picks tags "
        "at run time)",
    )
    check.set_defaults(func=_cmd_check, parser=check)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _load_scheduler(spec: str) -> Any:
    obj = _import_object(spec)
    if not hasattr(obj, "get_jobs") and callable(obj):
        obj = obj()
    if getattr(obj, "get_jobs", None) is None:
        raise JobTagsError(f"{spec} is a {type(obj).__name__}, not a scheduler: it has no get_jobs()")
    return obj


def _schedule_findings(scheduler: Any, registry: TagRegistry) -> list[Finding]:
    """Tagged jobs whose trigger does not follow the tag's schedule (tags left manual are not compared)."""
    from ..check import Finding
    from ..schedule import Manual
    from ..scheduler import schedule_mismatches

    return [
        Finding("error", f"schedule mismatch: {mismatch}")
        for mismatch in schedule_mismatches(scheduler, registry)
        if not isinstance(mismatch.expected, Manual)
    ]


def _cmd_check(args: argparse.Namespace) -> int:
    from ..check import Finding, check, registry_from_object
    from ..tags import TagRegistry

    spec, source = _registry_spec(args)
    findings: list[Finding] = []
    try:
        registry, findings = registry_from_object(_import_object(spec), spec)
    except Exception as exc:  # importing user code can raise anything, TagError included
        registry = TagRegistry()
        problem = f"the registry {spec} cannot be loaded: {type(exc).__name__}: {exc}"
        findings.append(Finding("error", problem))
    print(f"registry {spec} (from {source}): {_plural(len(registry), 'tag')}")
    scheduled = None
    schedule_findings: list[Finding] = []
    if args.scheduler:
        try:
            scheduler = _load_scheduler(args.scheduler)
            scheduled = [str(job.id) for job in scheduler.get_jobs()]
            print(f"scheduler {args.scheduler}: {_plural(len(scheduled), 'job')}")
            schedule_findings = _schedule_findings(scheduler, registry)
        except Exception as exc:
            problem = f"the scheduler {args.scheduler} cannot be read: {type(exc).__name__}: {exc}"
            findings.append(Finding("error", problem))
    report = check(
        registry,
        args.paths,
        scheduled_ids=scheduled,
        allow_unused=args.allow_unused,
        holders=[spec.partition(":")[2].split(".")[-1]],
    )
    if report.files_scanned:
        files = _plural(report.files_scanned, ".py file")
        uses = _plural(len(report.uses), "job reference")
        print(f"sources: {files}, {uses}, the marker in {_plural(len(report.marker_files), 'file')}")
    findings += report.findings + schedule_findings
    for finding in findings:
        print(finding)
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    verdict = "failed" if errors else "passed"
    print(f"check {verdict}: {_plural(errors, 'error')}, {_plural(warnings, 'warning')}")
    return 1 if errors else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
