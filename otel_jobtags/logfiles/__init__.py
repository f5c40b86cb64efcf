"""Reading job records back from text log files.

:func:`read_job_logs` and :func:`follow_job_logs` take a job id or tag, resolve
it through the registry and return :class:`LogEntry` records read from a log
file and its rotated generations; :class:`LogFilter` is the reusable selection
behind them and :class:`LineFormat` says how the log's lines look.
"""

from ._filter import (
    DEFAULT_LINE_FORMAT,
    LineFormat,
    LogEntry,
    LogFilter,
    follow_job_logs,
    parse_level,
    parse_time,
    read_job_logs,
    rotated_files,
)

__all__ = [
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
