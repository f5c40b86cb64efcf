"""otel-jobtags: tell background jobs' logs apart, in a log file and in OpenTelemetry.

Define the jobs' tags in a :class:`TagRegistry`, call :func:`install` once, and
run job code inside :func:`job_context` (or let the scheduler integration do
it): every record logged in a job carries the ``job.tag``/``job.id``
attributes and keeps the ``[TAG]`` text prefix. :func:`read_job_logs` and
:class:`LokiClient` read a job's records back, from the text log or Loki.

The top level holds what application code uses. The rest is in namespaces:
``otel_jobtags.scheduler`` (APScheduler), ``otel_jobtags.grafana`` (LogQL,
dashboards, alert rules), ``otel_jobtags.delivery`` (the export pipeline),
``otel_jobtags.testing`` (assertions on tagged records in tests),
``otel_jobtags.logfiles`` (the file reader's parts), and the modules
``configure``, ``context``, ``handler``, ``schedule``, ``loki`` and ``errors``
for their less common names.
"""

from .attachment import ExportHandler
from .configure import install, uninstall
from .context import bind, current_job, job_context
from .errors import (
    ConfigError,
    JobTagsError,
    LokiError,
    MissingExtraError,
    TagError,
    UnknownJobError,
    UntaggedJobError,
)
from .handler import JobTagFilter, JobTagFormatter
from .logfiles import LogEntry, follow_job_logs, read_job_logs
from .loki import LokiClient
from .scheduler import PeriodicSummary
from .tags import JobTag, TagRegistry, format_background_log

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ExportHandler",
    "JobTag",
    "JobTagFilter",
    "JobTagFormatter",
    "JobTagsError",
    "LogEntry",
    "LokiClient",
    "LokiError",
    "MissingExtraError",
    "PeriodicSummary",
    "TagError",
    "TagRegistry",
    "UnknownJobError",
    "UntaggedJobError",
    "__version__",
    "bind",
    "current_job",
    "follow_job_logs",
    "format_background_log",
    "install",
    "job_context",
    "read_job_logs",
    "uninstall",
]
