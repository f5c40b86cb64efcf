"""The public surface: what users import, and the testing helper they use."""

from __future__ import annotations

import logging

import otel_jobtags
from otel_jobtags import TagRegistry, job_context
from otel_jobtags.testing import CapturedLog, capture_logs


def test_exported_members_are_pinned() -> None:
    assert otel_jobtags.__all__ == [
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
    for name in otel_jobtags.__all__:
        assert getattr(otel_jobtags, name) is not None


def test_errors_share_one_base() -> None:
    for error in (otel_jobtags.TagError, otel_jobtags.UnknownJobError, otel_jobtags.ConfigError):
        assert issubclass(error, otel_jobtags.JobTagsError)


def test_capture_logs_records_what_the_exporter_would_send(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs, job_context(registry.AUTO_REBAL, run_id="r1"):
        logging.getLogger("app").warning("drift %d%%", 3, extra={"portfolio": "p1"})
    assert logs == [
        CapturedLog(
            level="WARNING",
            logger="app",
            message="[AUTO_REBAL] drift 3%",
            job_tag="AUTO_REBAL",
            job_id="auto_rebalance",
            run_id="r1",
            attributes={
                "portfolio": "p1",
                "job.tag": "AUTO_REBAL",
                "job.id": "auto_rebalance",
                "job.run_id": "r1",
            },
        )
    ]


def test_capture_logs_restores_the_logger_and_honours_its_level(registry: TagRegistry) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with capture_logs(registry, level=logging.INFO) as logs:
        logging.getLogger("app").debug("too detailed")
        logging.getLogger("app").info("kept")
    assert [r.message for r in logs] == ["kept"]
    assert (list(root.handlers), root.level) == (handlers, level)
