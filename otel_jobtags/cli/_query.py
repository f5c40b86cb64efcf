"""``otel-jobtags query``: a job's records from Loki, or from ``otel-jobtags serve`` (``--local``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .._loading import load_registry
from ._options import job_tag_as_option, non_negative_float, non_negative_int, selection_options


def add_query_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    query = commands.add_parser(
        "query",
        help="show a job's records from Loki or from 'otel-jobtags serve', or print the LogQL for them",
        description=(
            "Query Loki for one job's records (exported by otel_jobtags.install through the collector): "
            "the same selection as 'logs', as LogQL over Loki's HTTP API. Every value is escaped into the "
            "query. With --local URL, ask 'otel-jobtags serve' (its JSON API) instead of Loki. Prints the "
            "most recent --limit records, oldest first. Exits 0 also when nothing matches; 1 when the "
            "server fails; 2 on usage errors such as an unknown job."
        ),
    )
    selection_options(query)
    query.add_argument(
        "--loki",
        metavar="URL",
        help="Loki's base URL; default: $OTEL_JOBTAGS_LOKI_URL, else $LOKI_URL (e.g. http://localhost:3100)",
    )
    query.add_argument(
        "--local",
        metavar="URL",
        help="ask 'otel-jobtags serve' at this URL instead of Loki, e.g. http://127.0.0.1:4320 "
        "(token: $OTEL_JOBTAGS_TOKEN)",
    )
    query.add_argument(
        "--service",
        default=os.environ.get("OTEL_SERVICE_NAME") or None,
        help="service.name of the application; default: $OTEL_SERVICE_NAME, else any",
    )
    query.add_argument(
        "--limit", type=non_negative_int, default=100, help="at most this many records (default: %(default)s)"
    )
    query.add_argument("--tenant", help="Loki tenant (sent as X-Scope-OrgID)")
    query.add_argument(
        "--timeout",
        type=non_negative_float,
        default=10.0,
        help="seconds to wait for Loki (default: %(default)s)",
    )
    query.add_argument(
        "--print-logql",
        action="store_true",
        help="print the LogQL query and exit, without contacting Loki (time range and limit are "
        "request parameters, not part of it)",
    )
    job_tag_as_option(query)
    query.set_defaults(func=_cmd_query, parser=query)


def _cmd_query(args: argparse.Namespace) -> int:
    import json

    from ..loki import LokiClient, build_logql

    registry = load_registry(args.registry)
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
    if args.local:
        from ..store import StoreClient

        if args.loki:
            args.parser.error("give --loki or --local, not both")
        local = StoreClient(
            args.local, timeout=args.timeout, token=os.environ.get("OTEL_JOBTAGS_TOKEN") or None
        )
        entries = local.query(
            args.job,
            registry=registry,
            level=args.level,
            contains=args.contains,
            ignore_case=args.ignore_case,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
    else:
        client = LokiClient(args.loki, timeout=args.timeout, tenant=args.tenant)
        entries = client.query(args.job, since=args.since, until=args.until, limit=args.limit, **options)
    for entry in entries:
        if args.format == "json":
            print(json.dumps(entry.to_dict(), ensure_ascii=False))
        else:
            print(entry)
    return 0
