"""The export pipeline's own records stay out of the application's handlers (from the user's side)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

import otel_jobtags
from otel_jobtags import ConfigError, TagRegistry, job_context

EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"
TRANSIENT = "Transient error StatusCode.UNAVAILABLE encountered while exporting logs to localhost:4317, retrying in 1.0s."


@pytest.fixture(autouse=True)
def _pipeline_loggers_enabled() -> None:
    # A dictConfig elsewhere in the session (disable_existing_loggers) may have disabled them.
    for name in (EXPORTER_LOGGER, "grpc._channel"):
        logging.getLogger(name).disabled = False


def app_file_handler(path: Path) -> logging.FileHandler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def test_exporter_warnings_go_to_stderr_once_not_to_the_application_log(
    registry: TagRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = app_file_handler(tmp_path / "app.log")
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, exporter=sink, level="INFO")
    try:
        with job_context(registry.AUTO_REBAL):
            for _ in range(13):
                logging.getLogger(EXPORTER_LOGGER).warning(TRANSIENT)
            logging.getLogger("grpc._channel").warning("channel trouble")
            logging.getLogger("app").info("rebalanced")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert (tmp_path / "app.log").read_text().splitlines() == [
        "otel_jobtags INFO exporting logs with InMemoryLogRecordExporter; 3 jobs (AUTO_REBAL, PRICE_CACHE, DAILY_SUMMARY)",
        "app INFO rebalanced",
    ]
    assert capsys.readouterr().err.splitlines() == [
        f"otel-jobtags: {EXPORTER_LOGGER} WARNING: {TRANSIENT}",
        "otel-jobtags: grpc._channel WARNING: channel trouble",
    ]
    assert installation.force_flush()
    assert [r.log_record.body for r in sink.get_finished_logs()] == ["[AUTO_REBAL] rebalanced"]


@pytest.mark.parametrize(
    ("kwargs", "environ"),
    [({"pipeline_logs": "propagate"}, {}), ({}, {"OTEL_JOBTAGS_PIPELINE_LOGS": "propagate"})],
)
def test_asked_for_the_pipeline_records_reach_the_application_but_are_never_exported(
    registry: TagRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, str],
    environ: dict[str, str],
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    handler = app_file_handler(tmp_path / "app.log")
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, exporter=sink, **kwargs)
    # (The exporter's logger drops a message repeated within a while: one of its own per case.)
    message = f"Failed to export logs to localhost:4317 ({sorted(environ) or sorted(kwargs)})"
    try:
        logging.getLogger(EXPORTER_LOGGER).warning(message)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert (tmp_path / "app.log").read_text().splitlines()[-1] == f"{EXPORTER_LOGGER} WARNING {message}"
    assert installation.force_flush()
    assert sink.get_finished_logs() == ()


def test_an_invalid_pipeline_logs_setting_is_a_config_error(
    registry: TagRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_JOBTAGS_PIPELINE_LOGS", "file")
    with pytest.raises(
        ConfigError, match=r"^Invalid OTEL_JOBTAGS_PIPELINE_LOGS='file': use 'stderr' or 'propagate'$"
    ):
        otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter())


def test_uninstall_lets_the_pipeline_loggers_propagate_again(registry: TagRegistry) -> None:
    loggers = [logging.getLogger(name) for name in ("opentelemetry", "grpc")]
    before = [(logger.propagate, list(logger.handlers)) for logger in loggers]
    otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter())
    assert [logger.propagate for logger in loggers] == [False, False]
    otel_jobtags.uninstall()
    assert [(logger.propagate, list(logger.handlers)) for logger in loggers] == before
