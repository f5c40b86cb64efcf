"""Read one job's records back from the text log file.

This is what an admin page calls (an ``/admin/system`` log view): it
takes a job id or tag from a request, resolves it through the registry -- an
unknown value raises :class:`~otel_jobtags.UnknownJobError` listing the known
jobs before any file is opened or any query is built -- and returns
:class:`LogEntry` records.

The file side (:func:`read_job_logs`, :func:`follow_job_logs`,
:class:`LogFilter`) reads the text log the default format writes::

    2025-10-23 14:30:47,345 ERROR: [AUTO_REBAL] ❌ failed: upstream answered 503
    Traceback (most recent call last):
      ...

A record's continuation lines (tracebacks, multi-line messages) stay with it;
rotated files are read oldest first (``app.log.3``, ``app.log.2.gz``, ...,
``app.log``); memory stays flat whatever the file size. Lines are scanned as
bytes: the ``[TAG] `` prefix is searched for in large chunks and only the
lines around a hit are parsed, which keeps the filter within a small factor of
``grep -F`` (see ``docs/queries.md``).

The same selection against Loki is in :mod:`otel_jobtags.loki`.

# @FEAT:background-log-tagging

Modules: ``_records`` (the record, levels and times), ``_formats`` (line
formats), ``_reading`` (rotation, decompression, chunks), ``_filter`` (the
selection), ``_follow`` (tailing a growing file), ``_jobs`` (the one-call
functions).
"""

from ._filter import LogFilter
from ._formats import CONTINUATION_MARK, DEFAULT_LINE_FORMAT, LineFormat
from ._jobs import follow_job_logs, read_job_logs
from ._reading import rotated_files
from ._records import LogEntry, parse_level, parse_time

__all__ = [
    "CONTINUATION_MARK",
    "DEFAULT_LINE_FORMAT",
    "LineFormat",
    "LogEntry",
    "LogFilter",
    "follow_job_logs",
    "parse_level",
    "parse_time",
    "read_job_logs",
    "rotated_files",
]
