"""The on-disk spool of undelivered batches: where users import it from.

The spool lives in :mod:`otel_jobtags.delivery.spool` (the directory, its key
and locks) and :mod:`otel_jobtags.delivery.spoolformat` (the batch files);
see there.

# @FEAT:background-log-tagging
"""

from .delivery.spool import KEY_NAME, Spool, SpooledBatch, prepare_directory
from .errors import SpoolError, UntrustedSpoolError

__all__ = ["KEY_NAME", "Spool", "SpoolError", "SpooledBatch", "UntrustedSpoolError", "prepare_directory"]
