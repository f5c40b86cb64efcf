"""``otel-jobtags serve``: receive OTLP logs, keep them in an embedded store, show every job's view."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._options import registry_option

TOKEN_ENV = "OTEL_JOBTAGS_TOKEN"
"""Where ``serve`` reads its token when ``--token`` is not given."""


def _size(text: str) -> int | None:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    if value in ("0", "OFF", "NONE"):
        return None
    number, unit = (value[:-1], value[-1]) if value and value[-1] in units else (value, "")
    try:
        amount = float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size: write e.g. 500M, 2G, or 'off'") from None
    if amount <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive size")
    return int(amount * units[unit])


def _age(text: str) -> timedelta | None:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    value = text.strip().lower()
    if value in ("0", "off", "none"):
        return None
    try:
        amount = (
            float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value) * 86400
        )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an age: write e.g. 7d, 12h, 30m, or 'off'"
        ) from None
    if amount <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive age")
    return timedelta(seconds=amount)


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ..receiver import DEFAULT_DB, DEFAULT_HTTP, DEFAULT_OTLP_GRPC, DEFAULT_OTLP_HTTP

    serve = commands.add_parser(
        "serve",
        help="receive OTLP logs into an embedded store and serve every job's view (no Docker)",
        description=(
            "One process: OTLP receivers (gRPC and HTTP, protobuf and JSON) on the standard ports of "
            "127.0.0.1, so a default otel_jobtags.install() exports to it with no settings; a SQLite "
            "store (each export answered once committed); the jobs' web view and JSON API. Listening "
            f"beyond loopback needs --token (or ${TOKEN_ENV}), which receivers, view and API then demand. "
            "Runs until interrupted."
        ),
    )
    serve.add_argument(
        "--db", type=Path, default=DEFAULT_DB, help="the store's database file (default: %(default)s)"
    )
    serve.add_argument(
        "--otlp-grpc",
        default=str(DEFAULT_OTLP_GRPC),
        metavar="HOST:PORT",
        help="OTLP/gRPC receiver address, or 'off' (default: %(default)s)",
    )
    serve.add_argument(
        "--otlp-http",
        default=str(DEFAULT_OTLP_HTTP),
        metavar="HOST:PORT",
        help="OTLP/HTTP receiver address (POST /v1/logs), or 'off' (default: %(default)s)",
    )
    serve.add_argument(
        "--http",
        default=str(DEFAULT_HTTP),
        metavar="HOST:PORT",
        help="web view and JSON API address, or 'off' (default: %(default)s)",
    )
    registry_option(serve)
    serve.add_argument(
        "--log-file", type=Path, help="also follow this text log (rotation included) into the store"
    )
    serve.add_argument("--token", help=f"token every request must carry; default: ${TOKEN_ENV}")
    serve.add_argument(
        "--max-age", type=_age, default=timedelta(days=7), help="delete records older than this (default: 7d)"
    )
    serve.add_argument(
        "--max-size",
        type=_size,
        default=1 << 30,
        help="keep the database under this size, deleting the oldest records (default: 1G)",
    )
    serve.add_argument(
        "--max-request-size", type=_size, default=16 << 20, help="largest export accepted (default: 16M)"
    )
    serve.set_defaults(func=_cmd_serve)


def optional_registry(spec: str | None) -> Any:
    """The registry ``--registry``, the environment or pyproject.toml names; ``None`` when none does."""
    from .._loading import REGISTRY_ENV, load_registry

    try:
        return load_registry(spec)
    except ConfigError as exc:
        if spec or os.environ.get(REGISTRY_ENV) or not str(exc).startswith("No tag registry given"):
            raise
        return None


def _cmd_serve(args: argparse.Namespace) -> int:
    from ..receiver import DEFAULT_HTTP, DEFAULT_OTLP_GRPC, DEFAULT_OTLP_HTTP, ServeConfig, parse_address
    from ..store import Retention

    config = ServeConfig(
        db=args.db,
        otlp_grpc=parse_address(args.otlp_grpc, DEFAULT_OTLP_GRPC, "--otlp-grpc"),
        otlp_http=parse_address(args.otlp_http, DEFAULT_OTLP_HTTP, "--otlp-http"),
        http=parse_address(args.http, DEFAULT_HTTP, "--http"),
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        registry=optional_registry(args.registry),
        log_file=args.log_file,
        retention=Retention(max_age=args.max_age, max_bytes=args.max_size),
        max_request_bytes=args.max_request_size or 16 << 20,
    )
    return run_until_stopped(config)


def run_until_stopped(config: Any, duration: float | None = None) -> int:
    """Run an embedded server until SIGTERM/SIGINT (or ``duration`` seconds); print where it listens."""
    from ..receiver import EmbeddedServer

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with EmbeddedServer(config) as server:
            print(describe(server), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait(duration)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("otel-jobtags serve: stopped", file=sys.stderr)
    return 0


def describe(server: Any) -> str:
    """Where a started server listens, one line each."""
    lines = [f"otel-jobtags serve: store {server.config.db}"]
    if server.grpc is not None:
        lines.append(f"  OTLP/gRPC  {server.grpc.endpoint}")
    if server.http is not None:
        lines.append(f"  OTLP/HTTP  {server.http.endpoint}/v1/logs")
    if server.web_url is not None:
        lines.append(f"  jobs view  {server.web_url}")
    return "\n".join(lines)
