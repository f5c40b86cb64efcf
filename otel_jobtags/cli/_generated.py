"""``otel-jobtags dashboard``, ``alerts`` and ``table``: files generated from the tag registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._loading import load_registry
from ..errors import ConfigError
from ._options import job_tag_as_option, registry_option

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

    registry = load_registry(args.registry)
    act = stale_dashboards if args.check else write_dashboards
    return _report(act(registry, args.out, job_tag_as=args.job_tag_as), check=args.check, command="dashboard")


def _cmd_alerts(args: argparse.Namespace) -> int:
    from ..grafana import stale_alert_rules, write_alert_rules

    registry = load_registry(args.registry)
    act = stale_alert_rules if args.check else write_alert_rules
    return _report(act(registry, args.out, job_tag_as=args.job_tag_as), check=args.check, command="alerts")


def _cmd_table(args: argparse.Namespace) -> int:
    from ..markdown import render_job_table, update_job_table

    registry = load_registry(args.registry)
    if args.update is None:
        if args.check:
            raise ConfigError("--check needs --update FILE: the file whose table is checked")
        sys.stdout.write(render_job_table(registry))
        return 0
    path = Path(args.update)
    changed = [path] if update_job_table(path, registry, check=args.check) else []
    return _report(changed, check=args.check, command=f"table --update {path}")


def add_generated_artefact_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    job_tag_as_option(dashboard)
    check_option(dashboard, "a dashboard")
    dashboard.set_defaults(func=_cmd_dashboard)

    alerts = commands.add_parser(
        "alerts",
        help="write the Grafana alert rules of the registry's jobs",
        description=(
            "Generate Grafana alert rules (a job is late: no successful run within its period plus "
            "a grace; a job is failing: repeated failed runs; a job is overlapping: two processes "
            "keep running it) from a tag registry, as a Grafana alerting provisioning file."
        ),
    )
    registry_option(alerts)
    out_option(alerts, "grafana/provisioning/alerting")
    job_tag_as_option(alerts)
    check_option(alerts, "the rules file")
    alerts.set_defaults(func=_cmd_alerts)

    table = commands.add_parser(
        "table",
        help="print the registry as a Markdown job table",
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
