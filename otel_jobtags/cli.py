"""The ``otel-jobtags`` command line.

A thin edge over the library: each command parses its options, calls the
library, and turns library errors into one clean line on stderr with a
non-zero exit code (2 for usage errors, 1 for everything else).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, JobTagsError

if TYPE_CHECKING:
    from .tags import TagRegistry

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
    _add_generated_artefact_commands(commands)
    return parser


# ---- generated artefacts: dashboard, alerts, table ------------------------------
# Commands that write files derived from the tag registry, each with --check
# for CI: exit 1 when the committed copy is stale.

_DEFAULT_REGISTRY = "otel_jobtags.demo:JOBS"


def _registry_from_spec(spec: str) -> TagRegistry:
    """Import the ``module:attribute`` a ``--registry`` option names."""
    import importlib
    import os

    from .tags import TagRegistry

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"Invalid --registry {spec!r}: write module:attribute, e.g. {_DEFAULT_REGISTRY!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        # Like "python -m", find the application's modules in the current directory.
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"Invalid --registry {spec!r}: cannot import {module_name!r}: {exc}") from None
    if not hasattr(module, attribute):
        raise ConfigError(
            f"Invalid --registry {spec!r}: module {module_name!r} has no attribute {attribute!r}"
        )
    registry = getattr(module, attribute)
    if not isinstance(registry, TagRegistry):
        raise ConfigError(
            f"Invalid --registry {spec!r}: {module_name}.{attribute} is of type "
            f"{type(registry).__name__}, not a TagRegistry"
        )
    return registry


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
    from .dashboards import stale_dashboards, write_dashboards

    registry = _registry_from_spec(args.registry)
    act = stale_dashboards if args.check else write_dashboards
    return _report(act(registry, args.out, job_tag_as=args.job_tag_as), check=args.check, command="dashboard")


def _cmd_alerts(args: argparse.Namespace) -> int:
    from .alerts import stale_alert_rules, write_alert_rules

    registry = _registry_from_spec(args.registry)
    act = stale_alert_rules if args.check else write_alert_rules
    return _report(act(registry, args.out, job_tag_as=args.job_tag_as), check=args.check, command="alerts")


def _cmd_table(args: argparse.Namespace) -> int:
    from .markdown import render_job_table, update_job_table

    registry = _registry_from_spec(args.registry)
    if args.update is None:
        if args.check:
            raise ConfigError("--check needs --update FILE: the file whose table is checked")
        sys.stdout.write(render_job_table(registry))
        return 0
    path = Path(args.update)
    changed = [path] if update_job_table(path, registry, check=args.check) else []
    return _report(changed, check=args.check, command=f"table --update {path}")


def _add_generated_artefact_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def registry_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--registry",
            default=_DEFAULT_REGISTRY,
            metavar="MODULE:ATTR",
            help="the TagRegistry to generate from (default: %(default)s, the seed's 13 jobs)",
        )

    def job_tag_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--job-tag-as",
            choices=["index_label", "structured_metadata"],
            default="index_label",
            help="how Loki stores job_tag; must match loki-config.yaml (default: %(default)s)",
        )

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
    registry_option(dashboard)
    out_option(dashboard, "grafana/dashboards")
    job_tag_option(dashboard)
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
    registry_option(alerts)
    out_option(alerts, "grafana/provisioning/alerting")
    job_tag_option(alerts)
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
    registry_option(table)
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
    except JobTagsError as exc:
        print(f"otel-jobtags: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
