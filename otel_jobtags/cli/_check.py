"""``otel-jobtags check``: a registry against the source code and a scheduler."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..check import Finding

from .._loading import find_registry, import_object, load_scheduler
from ._options import plural, registry_option, spec_arg


def add_check_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    registry_option(check)
    check.add_argument(
        "--scheduler",
        type=spec_arg,
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


def _cmd_check(args: argparse.Namespace) -> int:
    from ..check import Finding, check, registry_from_object, schedule_findings
    from ..tags import TagRegistry

    source = find_registry(args.registry)
    spec = source.spec
    findings: list[Finding] = []
    try:
        registry, findings = registry_from_object(import_object(spec, source.root), spec)
    except Exception as exc:  # importing user code can raise anything, TagError included
        registry = TagRegistry()
        problem = f"the registry {spec} cannot be loaded: {type(exc).__name__}: {exc}"
        findings.append(Finding("error", problem))
    print(f"registry {spec} (from {source.origin}): {plural(len(registry), 'tag')}")
    scheduled = None
    mismatches: list[Finding] = []
    if args.scheduler:
        try:
            scheduler = load_scheduler(args.scheduler)
            scheduled = [str(job.id) for job in scheduler.get_jobs()]
            print(f"scheduler {args.scheduler}: {plural(len(scheduled), 'job')}")
            mismatches = schedule_findings(scheduler, registry)
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
        files = plural(report.files_scanned, ".py file")
        uses = plural(len(report.uses), "job reference")
        print(f"sources: {files}, {uses}, the marker in {plural(len(report.marker_files), 'file')}")
    findings += report.findings + mismatches
    for finding in findings:
        print(finding)
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    verdict = "failed" if errors else "passed"
    print(f"check {verdict}: {plural(errors, 'error')}, {plural(warnings, 'warning')}")
    return 1 if errors else 0
