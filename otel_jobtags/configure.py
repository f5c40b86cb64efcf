"""``install()``: one call that connects an application's logging to OpenTelemetry.

Settings resolve in the order argument, then environment variable (the
standard ``OTEL_*`` ones), then default, and are checked when they are read:
an invalid value raises :class:`~otel_jobtags.ConfigError` naming the variable
and the value.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource

from . import context as _context
from .errors import ConfigError
from .handler import JobTagHandler, exporting
from .tags import TagRegistry

__all__ = ["Installation", "Settings", "install", "resolve_settings", "uninstall"]

_PROTOCOLS = {"grpc": "grpc", "http/protobuf": "http/protobuf", "http": "http/protobuf"}
_DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}


def _env(name: str, environ: Mapping[str, str]) -> str | None:
    value = environ.get(name)
    return value.strip() if value is not None and value.strip() else None


def _parse_headers(text: str, source: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"Invalid {source}={text!r}: write comma-separated key=value pairs, "
                "e.g. 'authorization=Bearer xyz,x-tenant=a'"
            )
        from urllib.parse import unquote

        headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def _check_endpoint(value: str, source: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"Invalid {source}={value!r}: give a URL with scheme, host and port, e.g. 'http://localhost:4317'"
        )
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(f"Invalid {source}={value!r}: the port is not a number 0-65535") from None
    return value


@dataclass(frozen=True)
class Settings:
    """Where and how records are exported, after resolution and checks."""

    protocol: str
    """``"grpc"`` or ``"http/protobuf"``."""
    endpoint: str
    """The URL the exporter sends to (for HTTP, the full ``.../v1/logs`` URL)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers sent with every export (e.g. authorization)."""
    service_name: str | None = None
    """``service.name``; ``None`` leaves it to ``OTEL_SERVICE_NAME``/the SDK default."""


def resolve_settings(
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    service_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve export settings: argument, then ``OTEL_*`` variable, then default.

    Variables read: ``OTEL_EXPORTER_OTLP_LOGS_PROTOCOL``/``OTEL_EXPORTER_OTLP_PROTOCOL``
    (``grpc``, ``http/protobuf``; default ``grpc``),
    ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` (used as is) /
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (HTTP appends ``/v1/logs``),
    ``OTEL_EXPORTER_OTLP_LOGS_HEADERS``/``OTEL_EXPORTER_OTLP_HEADERS`` and
    ``OTEL_SERVICE_NAME``.

    Raises:
        ConfigError: a value is invalid; the message names where it came from.
    """
    env = os.environ if environ is None else environ

    raw: str | None
    if protocol is not None:
        source, raw = "protocol", protocol
    else:
        source, raw = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", _env("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", env)
        if raw is None:
            source, raw = "OTEL_EXPORTER_OTLP_PROTOCOL", _env("OTEL_EXPORTER_OTLP_PROTOCOL", env)
    resolved_protocol = _PROTOCOLS.get((raw or "grpc").lower())
    if resolved_protocol is None:
        raise ConfigError(f"Invalid {source}={raw!r}: use 'grpc' or 'http/protobuf'")

    signal_specific = False
    url: str
    if endpoint is not None:
        source, url = "endpoint", endpoint
    elif (url_env := _env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", env)) is not None:
        source, url, signal_specific = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", url_env, True
    elif (url_env := _env("OTEL_EXPORTER_OTLP_ENDPOINT", env)) is not None:
        source, url = "OTEL_EXPORTER_OTLP_ENDPOINT", url_env
    else:
        source, url = "default endpoint", _DEFAULT_ENDPOINTS[resolved_protocol]
    url = _check_endpoint(url, source)
    if resolved_protocol == "http/protobuf" and not signal_specific:
        url = url.rstrip("/") + "/v1/logs"

    if headers is not None:
        resolved_headers = {str(k).lower(): str(v) for k, v in headers.items()}
    else:
        resolved_headers = {}
        for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS"):
            if (text := _env(name, env)) is not None:
                resolved_headers.update(_parse_headers(text, name))

    if service_name is not None and not service_name.strip():
        raise ConfigError("Invalid service_name='': give the name of the application, e.g. 'web'")
    return Settings(resolved_protocol, url, resolved_headers, service_name)


def _make_exporter(settings: Settings) -> LogRecordExporter:
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(
            endpoint=settings.endpoint,
            insecure=settings.endpoint.startswith("http://"),
            headers=dict(settings.headers) or None,
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HTTPExporter

    return HTTPExporter(endpoint=settings.endpoint, headers=dict(settings.headers) or None)


class GuardedExporter(LogRecordExporter):
    """Runs another exporter with the current thread marked as exporting.

    Whatever the exporter, gRPC or an HTTP library log while it works is then
    recognised as internal and kept out of the exported stream.
    """

    def __init__(self, exporter: LogRecordExporter) -> None:
        self.exporter = exporter

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        with exporting():
            return self.exporter.export(batch)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with exporting():
            return bool(self.exporter.force_flush(timeout_millis))

    def shutdown(self) -> None:
        with exporting():
            self.exporter.shutdown()  # type: ignore[no-untyped-call]


class Installation:
    """What :func:`install` set up, with the means to flush and undo it."""

    def __init__(
        self,
        *,
        provider: LoggerProvider,
        handler: JobTagHandler,
        processor: LogRecordProcessor,
        settings: Settings | None,
        logger: logging.Logger,
        previous_level: int | None,
        previous_registry: TagRegistry | None,
    ) -> None:
        self.provider = provider
        """The SDK ``LoggerProvider`` records are emitted to."""
        self.handler = handler
        """The handler added to the logger."""
        self.processor = processor
        """The log record processor feeding the exporter."""
        self.settings = settings
        """The resolved export settings (``None`` with a custom exporter)."""
        self._logger = logger
        self._previous_level = previous_level
        self._previous_registry = previous_registry
        self._closed = False
        self._lock = threading.Lock()

    @property
    def resource(self) -> Resource:
        """The resource attached to every exported record."""
        return self.provider.resource  # type: ignore[no-any-return]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything logged so far; ``True`` when it was delivered in time."""
        return bool(self.provider.force_flush(timeout_millis))

    def shutdown(self) -> None:
        """Flush, stop exporting and leave logging exactly as it was before ``install``."""
        global _installation
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with _install_lock:
            self._logger.removeHandler(self.handler)
            if self._previous_level is not None:
                self._logger.setLevel(self._previous_level)
            if _context._registry is self.handler.job_filter.registry:
                _context.use_registry(self._previous_registry)
            if _installation is self:
                _installation = None
        atexit.unregister(self.shutdown)
        self.provider.shutdown()

    def __enter__(self) -> Installation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


_installation: Installation | None = None
_install_lock = threading.RLock()


def install(
    registry: TagRegistry | None = None,
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    level: int | str | None = None,
    exporter: LogRecordExporter | None = None,
    logger: logging.Logger | None = None,
) -> Installation:
    """Export the application's logs over OTLP, each record attributed to its job.

    Sets up a resource (``service.name``, ``service.instance.id``,
    ``process.pid``), an OTLP exporter, a processor and a
    :class:`~otel_jobtags.JobTagHandler` on the root logger, and makes
    ``registry`` the active one. Calling it again replaces the previous
    installation (records are never exported twice).

    Args:
        registry: the application's tags.
        service_name: ``service.name``; else ``OTEL_SERVICE_NAME``, else the SDK default.
        endpoint: collector URL; else ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``/
            ``OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4317``
            (``:4318`` for HTTP).
        protocol: ``"grpc"`` or ``"http/protobuf"``; else ``OTEL_EXPORTER_OTLP_PROTOCOL``,
            else gRPC.
        headers: export headers; else ``OTEL_EXPORTER_OTLP_HEADERS``.
        resource_attributes: more resource attributes (``OTEL_RESOURCE_ATTRIBUTES``
            is read too; these win).
        level: if given, set on ``logger`` (and restored by ``shutdown``).
        exporter: use this exporter instead of OTLP (tests, custom sinks).
        logger: where to add the handler; the root logger by default.

    Returns:
        An :class:`Installation`; its ``shutdown()`` (also run at exit) undoes everything.

    Raises:
        ConfigError: a setting is invalid.
    """
    settings = None
    if exporter is None:
        settings = resolve_settings(
            endpoint=endpoint, protocol=protocol, headers=headers, service_name=service_name
        )
    elif service_name is not None and not service_name.strip():
        raise ConfigError("Invalid service_name='': give the name of the application, e.g. 'web'")
    if isinstance(level, str):
        resolved_level = logging.getLevelName(level.upper())
        if not isinstance(resolved_level, int):
            raise ConfigError(f"Invalid level={level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        level = resolved_level

    attributes: dict[str, Any] = {
        "service.instance.id": str(uuid.uuid4()),
        "process.pid": os.getpid(),
    }
    resource = Resource.create(attributes)
    extra = dict(resource_attributes or {})
    if service_name is not None:
        extra["service.name"] = service_name
    if extra:
        resource = resource.merge(Resource(extra))

    with _install_lock:
        if _installation is not None:
            _installation.shutdown()
        provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        sink = exporter if exporter is not None else _make_exporter(settings)  # type: ignore[arg-type]
        processor = BatchLogRecordProcessor(GuardedExporter(sink))
        provider.add_log_record_processor(processor)
        target = logger if logger is not None else logging.getLogger()
        handler = JobTagHandler(provider, registry=registry)
        previous_level = None
        if level is not None:
            previous_level = target.level
            target.setLevel(level)
        target.addHandler(handler)
        previous_registry = _context.use_registry(registry) if registry is not None else _context._registry
        installation = Installation(
            provider=provider,
            handler=handler,
            processor=processor,
            settings=settings,
            logger=target,
            previous_level=previous_level,
            previous_registry=previous_registry,
        )
        _set_installation(installation)
    atexit.register(installation.shutdown)
    return installation


def _set_installation(installation: Installation) -> None:
    global _installation
    _installation = installation


def uninstall() -> None:
    """Undo :func:`install` (if installed): flush, remove the handler, restore logging."""
    with _install_lock:
        current = _installation
    if current is not None:
        current.shutdown()
