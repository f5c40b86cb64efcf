"""The public surface: what users import, and the testing helper they use."""

from __future__ import annotations

import importlib
import logging

import pytest

import otel_jobtags
from otel_jobtags import TagRegistry, job_context
from otel_jobtags.testing import CapturedLog, capture_logs


def test_the_top_level_holds_what_application_code_uses() -> None:
    assert otel_jobtags.__all__ == [
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


@pytest.mark.parametrize(
    ("namespace", "names"),
    [
        (
            "otel_jobtags.scheduler",
            [
                "ATTR_JOB_DURATION_MS",
                "ATTR_JOB_OUTCOME",
                "ATTR_JOB_RUNS",
                "ATTR_JOB_SCHEDULED_TIME",
                "FREQUENT_PERIOD",
                "RUNS_LOGGER",
                "JobRun",
                "Outcome",
                "PeriodicSummary",
                "RunRecordPolicy",
                "ScheduleMismatch",
                "SchedulerConnection",
                "SchedulerLock",
                "SummarySnapshot",
                "arun_job",
                "compare_schedule",
                "connect",
                "default_lock_path",
                "default_run_record_policy",
                "run_job",
                "schedule_mismatches",
                "start_once_per_host",
                "trigger_for",
                "unscheduled_tags",
                "untagged_jobs",
            ],
        ),
        (
            "otel_jobtags.grafana",
            [
                "ALERT_RULES_FILE",
                "DEFAULT_JOB_TAG_AS",
                "FAILING",
                "JOB_DASHBOARD_UID",
                "LATE",
                "LOKI_DATASOURCE_UID",
                "OVERLAPPING",
                "OVERVIEW_DASHBOARD_UID",
                "RUNS_PANEL_ID",
                "AlertPolicy",
                "JobTagAs",
                "Run",
                "RunSpan",
                "alert_policies",
                "default_failure_threshold",
                "default_failure_window",
                "default_grace",
                "generate_alert_rules",
                "generate_dashboards",
                "is_failing",
                "is_late",
                "is_overlapping",
                "job_dashboard_url",
                "job_selector",
                "job_status",
                "late_window",
                "logql_duration",
                "logql_regex",
                "logql_string",
                "loki_field",
                "overlapping_instances",
                "overlapping_runs",
                "render_alert_rules",
                "render_dashboard",
                "stale_alert_rules",
                "stale_dashboards",
                "success_gap",
                "write_alert_rules",
                "write_dashboards",
            ],
        ),
        (
            "otel_jobtags.delivery",
            [
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
            ],
        ),
        (
            "otel_jobtags.testing",
            [
                "CapturedExports",
                "CapturedLog",
                "ExportedLog",
                "ExportedLogs",
                "JobRun",
                "capture_exports",
                "capture_logs",
                "export_in_memory",
                "run_job",
            ],
        ),
        (
            "otel_jobtags.logfiles",
            [
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
            ],
        ),
    ],
)
def test_each_namespace_s_names_are_pinned(namespace: str, names: list[str]) -> None:
    module = importlib.import_module(namespace)
    assert module.__all__ == names
    for name in names:
        assert getattr(module, name) is not None


def test_every_top_level_name_resolves() -> None:
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
