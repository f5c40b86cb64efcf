"""``otel-jobtags serve`` as a library: receivers, store, web view and log follower in one process."""

from __future__ import annotations

import ipaddress
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..errors import ConfigError
from ..store import Retention, Store
from ..tags import TagRegistry
from .logfile import LogFileFollower
from .otlp_grpc import OtlpGrpcReceiver
from .otlp_http import DEFAULT_MAX_REQUEST_BYTES, OtlpHttpReceiver

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_HTTP",
    "DEFAULT_OTLP_GRPC",
    "DEFAULT_OTLP_HTTP",
    "Address",
    "EmbeddedServer",
    "ServeConfig",
    "parse_address",
    "start_with_fallback",
]

DEFAULT_DB = Path("otel-jobtags.db")
MIN_TOKEN_LENGTH = 16
"""The shortest token accepted (the web view's rule too)."""


@dataclass(frozen=True)
class Address:
    """A host and port to listen on."""

    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """Whether only this machine can connect."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


DEFAULT_OTLP_GRPC = Address("127.0.0.1", 4317)
DEFAULT_OTLP_HTTP = Address("127.0.0.1", 4318)
DEFAULT_HTTP = Address("127.0.0.1", 4320)


def parse_address(text: str, default: Address, option: str) -> Address | None:
    """``HOST:PORT``, ``PORT`` or ``HOST`` (the default fills in the rest); ``off`` for none.

    Raises:
        ConfigError: the text is not an address.
    """
    value = text.strip()
    if value.lower() == "off":
        return None
    host, port_text = default.host, ""
    if value.startswith("["):  # [::1]:4317
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif value.isdigit():
        port_text = value
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    elif value:
        host = value
    if not port_text:
        return Address(host or default.host, default.port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(
            f"Invalid {option} {text!r}: give HOST:PORT, PORT or 'off', e.g. {option} {default}"
        )
    return Address(host or default.host, int(port_text))


@dataclass(frozen=True)
class ServeConfig:
    """What ``otel-jobtags serve`` runs.

    Attributes:
        db: the store's database file.
        otlp_grpc: where the OTLP/gRPC receiver listens; ``None`` for none.
        otlp_http: where the OTLP/HTTP receiver listens; ``None`` for none.
        http: where the web view and JSON API listen; ``None`` for none.
        token: the token every request must carry; required to listen beyond loopback.
        registry: the jobs the web view lists (and the log file's jobs).
        log_file: a text log to follow into the store.
        retention: what the store keeps.
        retention_interval: seconds between two retention passes.
        max_request_bytes: the largest export accepted.
    """

    db: Path = DEFAULT_DB
    otlp_grpc: Address | None = DEFAULT_OTLP_GRPC
    otlp_http: Address | None = DEFAULT_OTLP_HTTP
    http: Address | None = DEFAULT_HTTP
    token: str | None = None
    registry: TagRegistry | None = None
    log_file: Path | None = None
    retention: Retention = field(default_factory=Retention)
    retention_interval: float = 60.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES

    def __post_init__(self) -> None:
        exposed = [
            f"{option} {address}"
            for option, address in (
                ("--otlp-grpc", self.otlp_grpc),
                ("--otlp-http", self.otlp_http),
                ("--http", self.http),
            )
            if address is not None and not address.loopback
        ]
        if exposed and not self.token:
            raise ConfigError(
                f"Listening beyond this machine ({', '.join(exposed)}) needs a token: pass --token "
                "(or set OTEL_JOBTAGS_TOKEN); exporters then send 'Authorization: Bearer <token>'"
            )
        if self.token is not None and (
            len(self.token) < MIN_TOKEN_LENGTH or self.token != self.token.strip()
        ):
            raise ConfigError(
                f"Invalid token: give a secret of at least {MIN_TOKEN_LENGTH} characters without surrounding "
                "spaces, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe())'"
            )
        if self.log_file is not None and self.registry is None:
            raise ConfigError("--log-file needs the jobs' registry: pass --registry MODULE:ATTR")


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _web_app(store: Store, config: ServeConfig) -> Callable[..., Any] | None:
    try:
        from ..web import create_app
    except ImportError:
        return None
    app: Callable[..., Any] = create_app(store, config.registry, token=config.token)
    return app


class EmbeddedServer:
    """The receivers, the store and the web view of ``otel-jobtags serve``, in one process.

    ``start()`` opens the store and listens; each export is answered once its
    records are committed. ``stop()`` ends it all. Also a context manager.

    Raises:
        ConfigError: an address cannot be bound.
        StoreError: the database cannot be opened.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.store: Store | None = None
        self.grpc: OtlpGrpcReceiver | None = None
        self.http: OtlpHttpReceiver | None = None
        self.web: WSGIServer | None = None
        self._follower: LogFileFollower | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def web_url(self) -> str | None:
        """The web view's URL, once started (``None`` without one)."""
        if self.web is None:
            return None
        host, port = self.web.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
        return f"http://{f'[{shown}]' if ':' in shown else shown}:{port}/"

    def start(self) -> EmbeddedServer:
        """Open the store, start listening and following; return ``self``."""
        config = self.config
        store = self.store = Store.open(config.db, retention=config.retention)
        try:
            if config.otlp_grpc is not None:
                self.grpc = OtlpGrpcReceiver(
                    store, config.otlp_grpc.host, config.otlp_grpc.port,
                    token=config.token, max_bytes=config.max_request_bytes,
                )  # fmt: skip
            if config.otlp_http is not None:
                try:
                    self.http = OtlpHttpReceiver(
                        store, config.otlp_http.host, config.otlp_http.port,
                        token=config.token, max_bytes=config.max_request_bytes,
                    )  # fmt: skip
                except OSError as exc:
                    raise ConfigError(
                        f"Cannot listen for OTLP/HTTP on {config.otlp_http}: {exc.strerror}; "
                        "pick another --otlp-http"
                    ) from None
            if config.http is not None:
                app = _web_app(store, config)
                if app is None:
                    print(
                        "otel-jobtags serve: the web view is not available in this install", file=sys.stderr
                    )
                else:
                    try:
                        self.web = make_server(
                            config.http.host, config.http.port, app,
                            server_class=_ThreadingWSGIServer, handler_class=_QuietHandler,
                        )  # fmt: skip
                    except OSError as exc:
                        raise ConfigError(
                            f"Cannot serve the web view on {config.http}: {exc.strerror}; pick another --http"
                        ) from None
        except BaseException:
            self.stop()
            raise
        if self.grpc is not None:
            self.grpc.start()
        if self.http is not None:
            self.http.start()
        if self.web is not None:
            self._spawn(self.web.serve_forever, "web")
        if config.log_file is not None and config.registry is not None:
            self._follower = LogFileFollower(store, config.log_file, config.registry)
            self._follower.start()
        self._spawn(self._retain, "retention")
        return self

    def _spawn(self, target: Callable[[], Any], name: str) -> None:
        thread = threading.Thread(target=target, name=f"serve-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _retain(self) -> None:
        while True:
            store = self.store
            if store is None:
                return
            try:
                store.enforce_retention()
            except Exception as exc:  # retention failing must not stop ingest
                if self._stopping.is_set():
                    return
                print(f"otel-jobtags serve: retention failed: {exc}", file=sys.stderr)
            if self._stopping.wait(self.config.retention_interval):
                return

    def stop(self) -> None:
        """Stop listening, finish what is in progress and close the store."""
        self._stopping.set()
        if self.grpc is not None:
            self.grpc.stop()
        if self.http is not None:
            self.http.stop()
        if self.web is not None:
            if any(thread.name == "serve-web" for thread in self._threads):
                self.web.shutdown()
            self.web.server_close()
        if self._follower is not None:
            self._follower.stop()
        for thread in self._threads:
            thread.join(5)
        if self.store is not None:
            self.store.close()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_with_fallback(config: ServeConfig) -> EmbeddedServer:
    """Start a server on ``config``'s addresses, or on free ports of the same hosts where they are taken.

    For the demo: a collector or another ``serve`` may hold the standard ports.
    """
    try:
        return EmbeddedServer(config).start()
    except ConfigError:
        pass

    def free(address: Address | None) -> Address | None:
        return None if address is None else Address(address.host, 0)

    fallback = replace(
        config, otlp_grpc=free(config.otlp_grpc), otlp_http=free(config.otlp_http), http=free(config.http)
    )
    return EmbeddedServer(fallback).start()
