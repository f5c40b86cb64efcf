"""Resolving ``install()``'s settings: argument, then environment variable, then default.

Every value is checked when it is read: an invalid one raises
:class:`~otel_jobtags.ConfigError` naming the argument or variable, the
value, and what to write instead.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from .delivery import DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_QUEUE_RECORDS, DEFAULT_SHUTDOWN_TIMEOUT
from .errors import ConfigError
from .spool import UntrustedSpoolError, prepare_directory

__all__ = [
    "DEFAULT_EXPORT_TIMEOUT",
    "LOGS_EXPORTER_VARIABLE",
    "DeliverySettings",
    "DiscardExporter",
    "Settings",
    "check_spool_dir",
    "logs_exporter",
    "make_exporter",
    "resolve_delivery_settings",
    "resolve_settings",
    "spool_error",
]

DEFAULT_EXPORT_TIMEOUT = 2.0
"""Seconds one export attempt may take; the processor retries failed attempts itself."""

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
    if (
        resolved_protocol == "http/protobuf"
        and not signal_specific
        and not url.rstrip("/").endswith("/v1/logs")
    ):
        # A base URL gets the logs path; a URL that already names it is kept,
        # rather than posting to .../v1/logs/v1/logs and failing for ever.
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


@dataclass(frozen=True)
class DeliverySettings:
    """How records are kept until delivered, after resolution and checks."""

    max_queue_records: int = DEFAULT_MAX_QUEUE_RECORDS
    """Records held at most (in memory and spool) before the oldest are dropped."""
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    """Estimated bytes held at most before the oldest are dropped."""
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    """Seconds the exit may spend delivering what is left."""
    spool_dir: Path | None = None
    """Where undelivered batches are kept across restarts; ``None``: memory only."""
    export_timeout: float = DEFAULT_EXPORT_TIMEOUT
    """Seconds one export attempt may take."""


def _positive_int(
    value: int | str | None, source: str, env: Mapping[str, str], default: int, unit: str
) -> int:
    if value is None:
        text = _env(source, env)
        if text is None:
            return default
        try:
            number = int(text.replace("_", ""))
        except ValueError:
            number = 0
        if number <= 0:
            raise ConfigError(
                f"Invalid {source}={text!r}: use a positive whole number of {unit}, e.g. {default}"
            )
        return number
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        name = source.removeprefix("OTEL_JOBTAGS_").lower()
        raise ConfigError(f"Invalid {name}={value!r}: use a positive whole number of {unit}, e.g. {default}")
    return value


def _positive_seconds(value: float | None, source: str, env: Mapping[str, str], default: float) -> float:
    if value is None:
        text = _env(source, env)
        if text is None:
            return default
        try:
            number = float(text)
        except ValueError:
            number = -1.0
        if not 0 < number < float("inf"):
            raise ConfigError(
                f"Invalid {source}={text!r}: use a positive number of seconds, e.g. {default:g}"
            )
        return number
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        name = source.removeprefix("OTEL_JOBTAGS_").lower()
        raise ConfigError(f"Invalid {name}={value!r}: use a positive number of seconds, e.g. {default:g}")
    return float(value)


def resolve_delivery_settings(
    *,
    max_queue_records: int | None = None,
    max_queue_bytes: int | None = None,
    shutdown_timeout: float | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    export_timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> DeliverySettings:
    """Resolve delivery settings: argument, then ``OTEL_JOBTAGS_*`` variable, then default.

    Variables read: ``OTEL_JOBTAGS_MAX_QUEUE_RECORDS``,
    ``OTEL_JOBTAGS_MAX_QUEUE_BYTES``, ``OTEL_JOBTAGS_SHUTDOWN_TIMEOUT``
    (seconds), ``OTEL_JOBTAGS_SPOOL_DIR`` and ``OTEL_JOBTAGS_EXPORT_TIMEOUT``
    (seconds per export attempt).

    Raises:
        ConfigError: a value is invalid; the message names where it came from.
    """
    env = os.environ if environ is None else environ
    spool: Path | None
    if spool_dir is not None:
        if not str(spool_dir).strip():
            raise ConfigError("Invalid spool_dir='': give a directory, e.g. '/var/spool/myapp-logs'")
        spool = Path(spool_dir)
    else:
        text = _env("OTEL_JOBTAGS_SPOOL_DIR", env)
        spool = Path(text) if text is not None else None
    if spool is not None and spool.exists() and not spool.is_dir():
        source = "spool_dir" if spool_dir is not None else "OTEL_JOBTAGS_SPOOL_DIR"
        raise ConfigError(f"Invalid {source}={str(spool)!r}: it is a file; give a directory")
    return DeliverySettings(
        max_queue_records=_positive_int(
            max_queue_records, "OTEL_JOBTAGS_MAX_QUEUE_RECORDS", env, DEFAULT_MAX_QUEUE_RECORDS, "records"
        ),
        max_queue_bytes=_positive_int(
            max_queue_bytes, "OTEL_JOBTAGS_MAX_QUEUE_BYTES", env, DEFAULT_MAX_QUEUE_BYTES, "bytes"
        ),
        shutdown_timeout=_positive_seconds(
            shutdown_timeout, "OTEL_JOBTAGS_SHUTDOWN_TIMEOUT", env, DEFAULT_SHUTDOWN_TIMEOUT
        ),
        spool_dir=spool,
        export_timeout=_positive_seconds(
            export_timeout, "OTEL_JOBTAGS_EXPORT_TIMEOUT", env, DEFAULT_EXPORT_TIMEOUT
        ),
    )


def make_exporter(settings: Settings, timeout: float) -> LogRecordExporter:
    # One attempt per export with a short timeout: the processor owns the retry
    # loop (backoff, bounded memory, interruptible by shutdown), and these
    # exporters say why an attempt failed (retryable or refused for good).
    if settings.protocol == "grpc":
        from .delivery.exporters import GrpcLogExporter

        return GrpcLogExporter(
            endpoint=settings.endpoint,
            insecure=settings.endpoint.startswith("http://"),
            headers=dict(settings.headers) or None,
            timeout=timeout,
        )
    from .delivery.exporters import HttpLogExporter

    return HttpLogExporter(settings.endpoint, headers=dict(settings.headers) or None, timeout=timeout)


def spool_error(directory: Path | str | None, exc: OSError) -> ConfigError:
    # An untrusted directory's message says what to do; other errors get the general advice.
    advice = (
        "" if isinstance(exc, UntrustedSpoolError) else "; give a directory this process can create and write"
    )
    return ConfigError(f"Cannot use the spool directory {str(directory)!r}: {exc.strerror or exc}{advice}")


def check_spool_dir(directory: Path | str) -> None:
    try:
        prepare_directory(Path(directory))  # private (0700), this user's, with its key
    except OSError as exc:
        raise spool_error(directory, exc) from None
    if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
        raise spool_error(directory, PermissionError(13, "Permission denied"))


LOGS_EXPORTER_VARIABLE = "OTEL_LOGS_EXPORTER"
_LOGS_EXPORTERS = ("otlp", "console", "none")


class DiscardExporter(LogRecordExporter):
    """``OTEL_LOGS_EXPORTER=none``: accepts every batch at once and keeps nothing."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        return None


def logs_exporter(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    value = (_env(LOGS_EXPORTER_VARIABLE, env) or "otlp").lower()
    if value not in _LOGS_EXPORTERS:
        raise ConfigError(
            f"Invalid {LOGS_EXPORTER_VARIABLE}={value!r}: use one of 'otlp', 'console' or 'none'"
        )
    return value
