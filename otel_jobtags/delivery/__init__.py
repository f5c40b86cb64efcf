"""The export pipeline: keeps every record until the receiver has it.

- :mod:`.queue` -- the hot path: a bounded queue the log call appends to.
- :mod:`.records` -- what the log call hands over, how it is sized, and how
  the export thread builds the OpenTelemetry record from it.
- :mod:`.machine` -- batching, retry and refusal as a pure state machine.
- :mod:`.outcome` and :mod:`.exporters` -- export results classified by the
  OTLP specification's retry rules, and exporters that report them.
- :mod:`.processor` -- the thread, fork, flush and shutdown shell
  (:mod:`.defaults` its settings' defaults; :mod:`.resources` the resource
  records are exported with, also after a fork).
- :mod:`.spool`, :mod:`.spoolformat` and :mod:`.spooling` -- the on-disk
  spool (directory, key, locks), its batch files, and the write-ahead of the
  machine's batches to it (users import :mod:`otel_jobtags.spool`).

# @FEAT:background-log-tagging
"""

from .processor import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_RECORDS,
    DEFAULT_PROBE_AFTER_FAILURES,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DeliveryProcessor,
    DeliveryStats,
)
from .records import RECORD_OVERHEAD, record_size

__all__ = [
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_QUEUE_BYTES",
    "DEFAULT_MAX_QUEUE_RECORDS",
    "DEFAULT_PROBE_AFTER_FAILURES",
    "DEFAULT_SHUTDOWN_TIMEOUT",
    "RECORD_OVERHEAD",
    "DeliveryProcessor",
    "DeliveryStats",
    "record_size",
]
