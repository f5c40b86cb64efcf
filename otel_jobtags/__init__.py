"""otel-jobtags: tell background jobs' logs apart, in a log file and in OpenTelemetry.

Define the jobs' tags in a :class:`TagRegistry`, call :func:`install` once, and
run job code inside :func:`job_context` (or let the scheduler integration do
it): every record logged in a job carries the ``job.tag``/``job.id``
attributes and keeps the seed's ``[TAG]`` text prefix. :func:`read_job_logs`
and :class:`LokiClient` read a job's records back, from the text log or Loki.
"""

from .attachment import ExportHandler
from .configure import (
    DeliverySettings,
    Installation,
    Settings,
    install,
    resolve_delivery_settings,
    resolve_settings,
    uninstall,
)
from .context import ActiveJob, active_registry, bind, current_job, job_context, use_registry
from .delivery import DeliveryProcessor, DeliveryStats
from .errors import ConfigError, JobTagsError, MissingExtraError, TagError, UnknownJobError, UntaggedJobError
from .handler import (
    ATTR_JOB_ID,
    ATTR_JOB_PREFIX_TAG,
    ATTR_JOB_RUN_ID,
    ATTR_JOB_TAG,
    JobTagFilter,
    JobTagFormatter,
    JobTagHandler,
)
from .logfiles import LineFormat, LogEntry, LogFilter, follow_job_logs, read_job_logs
from .loki import LokiClient, LokiError, build_logql
from .schedule import Cron, Interval, Manual, Schedule, parse_schedule
from .scheduler import PeriodicSummary, SummarySnapshot
from .tags import JobTag, TagRegistry, format_background_log

__version__ = "0.1.0"

__all__ = [
    "ATTR_JOB_ID",
    "ATTR_JOB_PREFIX_TAG",
    "ATTR_JOB_RUN_ID",
    "ATTR_JOB_TAG",
    "ActiveJob",
    "ConfigError",
    "Cron",
    "DeliveryProcessor",
    "DeliverySettings",
    "DeliveryStats",
    "ExportHandler",
    "Installation",
    "Interval",
    "JobTag",
    "JobTagFilter",
    "JobTagFormatter",
    "JobTagHandler",
    "JobTagsError",
    "LineFormat",
    "LogEntry",
    "LogFilter",
    "LokiClient",
    "LokiError",
    "Manual",
    "MissingExtraError",
    "PeriodicSummary",
    "Schedule",
    "Settings",
    "SummarySnapshot",
    "TagError",
    "TagRegistry",
    "UnknownJobError",
    "UntaggedJobError",
    "__version__",
    "active_registry",
    "bind",
    "build_logql",
    "current_job",
    "follow_job_logs",
    "format_background_log",
    "install",
    "job_context",
    "parse_schedule",
    "read_job_logs",
    "resolve_delivery_settings",
    "resolve_settings",
    "uninstall",
    "use_registry",
]
