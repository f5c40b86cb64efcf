"""The export pipeline's own records: on stderr, throttled, never in the application's handlers.

The OpenTelemetry SDK, the OTLP exporters and gRPC log about themselves through
the standard library (``Transient error StatusCode.UNAVAILABLE ...`` for every
failed attempt during an outage). Propagated to the root logger, those lines
land in the application's own log file, untagged, many per second.
:class:`PipelineLogs` stops their propagation while ``install()`` is in
effect and writes those at WARNING and above to stderr, one line per message
per interval, with a hint when the text shows a protocol mismatch (gRPC sent
to an OTLP/HTTP port or the other way round). ``install(pipeline_logs=
"propagate")`` or ``OTEL_JOBTAGS_PIPELINE_LOGS=propagate`` leaves them to the
application's handlers (they are still never exported).

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping

from . import _diagnostics
from .errors import ConfigError

__all__ = [
    "PIPELINE_LOGGERS",
    "PIPELINE_LOGS_VARIABLE",
    "PipelineLogHandler",
    "PipelineLogs",
    "resolve_pipeline_logs",
]

PIPELINE_LOGGERS = ("opentelemetry", "grpc")
"""Loggers (and their children) whose records describe the export pipeline itself."""
PIPELINE_LOGS_VARIABLE = "OTEL_JOBTAGS_PIPELINE_LOGS"
_CHOICES = ("stderr", "propagate")

# Text of an exporter's error -> what the operator should do about it.
_HINTS = (
    (
        ("Failed parsing HTTP/2", "http1.x server"),
        "the endpoint answers HTTP/1.1, not gRPC: it looks like an OTLP/HTTP port (4318); "
        "set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf, or point the endpoint at the gRPC port (4317)",
    ),
    (
        ("BadStatusLine('\\x00\\x00", 'BadStatusLine("\\x00\\x00'),
        "the endpoint answers HTTP/2 (gRPC), not OTLP/HTTP: it looks like an OTLP/gRPC port (4317); "
        "set OTEL_EXPORTER_OTLP_PROTOCOL=grpc, or point the endpoint at the HTTP port (4318)",
    ),
)


def resolve_pipeline_logs(value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``"stderr"`` or ``"propagate"``: the argument, else ``OTEL_JOBTAGS_PIPELINE_LOGS``, else ``"stderr"``.

    Raises:
        ConfigError: any other value.
    """
    source = "pipeline_logs"
    if value is None:
        env = os.environ if environ is None else environ
        value = env.get(PIPELINE_LOGS_VARIABLE, "").strip() or None
        source = PIPELINE_LOGS_VARIABLE
    if value is None:
        return "stderr"
    if value not in _CHOICES:
        raise ConfigError(f"Invalid {source}={value!r}: use 'stderr' or 'propagate'")
    return value


def hint_for(text: str) -> str | None:
    """What to do about an exporter error whose text shows a protocol mismatch, if it does."""
    for needles, hint in _HINTS:
        if any(needle in text for needle in needles):
            return hint
    return None


class PipelineLogHandler(logging.Handler):
    """Writes pipeline records to stderr: one line per message per interval, with hints.

    Args:
        level: the lowest level written; WARNING by default.
        throttle_interval: seconds between two lines with the same message.
    """

    def __init__(
        self, level: int = logging.WARNING, throttle_interval: float = _diagnostics.DEFAULT_INTERVAL
    ) -> None:
        super().__init__(level)
        self._throttle = _diagnostics.Throttle(throttle_interval)
        self.setFormatter(logging.Formatter("otel-jobtags: %(name)s %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` unless the same message was written within the interval."""
        with contextlib.suppress(Exception):  # never raise into the exporter's code
            held = self._throttle.allow(f"{record.name}\0{record.msg}")
            if held is None:
                return
            line = self.format(record)
            hint = hint_for(line)
            if hint is not None:
                line += f" -- hint: {hint}"
            if held:
                line += f" ({held} similar held back)"
            stream = sys.stderr
            if stream is not None:
                stream.write(line + "\n")
                stream.flush()


class PipelineLogs:
    """Keeps the pipeline loggers' records off the application's handlers; :meth:`restore` undoes it."""

    def __init__(self, handler: logging.Handler | None = None) -> None:
        self.handler = handler if handler is not None else PipelineLogHandler()
        self._saved: list[tuple[logging.Logger, bool]] = []

    def divert(self) -> None:
        """Stop propagation of the pipeline loggers and write their records to stderr."""
        for name in PIPELINE_LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.propagate))
            logger.propagate = False
            logger.addHandler(self.handler)

    def restore(self) -> None:
        """Put the pipeline loggers back as they were."""
        for logger, propagate in self._saved:
            logger.removeHandler(self.handler)
            logger.propagate = propagate
        self._saved.clear()
