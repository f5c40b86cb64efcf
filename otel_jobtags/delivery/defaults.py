"""The delivery processor's defaults, and the check of its whole-number settings.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

from ..errors import ConfigError

__all__ = [
    "ADOPT_INTERVAL",
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_MAX_QUEUE_RECORDS",
    "DEFAULT_PROBE_AFTER_FAILURES",
    "DEFAULT_RETRY_INITIAL",
    "DEFAULT_RETRY_MAX",
    "DEFAULT_SCHEDULE_DELAY",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "require_positive",
]

DEFAULT_MAX_QUEUE_RECORDS = 250_000
"""Records held at most (in memory and in the spool) before the oldest are dropped."""
DEFAULT_MAX_QUEUE_BYTES = 256 * 1024 * 1024
"""Bytes (whole records, as counted by :func:`~otel_jobtags.delivery.records.prepared_size`)
held at most before the oldest are dropped."""
DEFAULT_MAX_BATCH_SIZE = 512
DEFAULT_MAX_BATCH_BYTES = 3 * 1024 * 1024
"""Bytes per export at most: below gRPC's default 4 MiB message limit (and the
collector's), with room for the request's framing, resource and scopes."""
DEFAULT_SCHEDULE_DELAY = 0.5
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
DEFAULT_RETRY_INITIAL = 0.5
DEFAULT_RETRY_MAX = 5.0
DEFAULT_PROBE_AFTER_FAILURES = 5
"""For exporters that do not classify failures: failures in a row of the head batch
before it is split; refusals of a single record before it is rejected."""

ADOPT_INTERVAL = 5.0
"""Seconds between two looks, with a spool, for batches left by processes that have died since.

A forking server's killed worker (gunicorn ``--preload``: SIGKILL on its
timeout or from the OOM killer) leaves its batches in the spool, and nothing
starts cold to adopt them: the master and the replacement worker are running
already. So every process with a spool looks again now and then (and a
forked child at once); the first to look takes them."""


def require_positive(**settings: int) -> None:
    """Raise :class:`~otel_jobtags.errors.ConfigError` for the first setting below 1."""
    for name, value in settings.items():
        if value < 1:
            raise ConfigError(f"Invalid {name}={value!r}: use a whole number greater than 0")
