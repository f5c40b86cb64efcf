"""install() and the application's own logging configuration, in any order (from the user's side)."""

from __future__ import annotations

import io
import logging
import logging.config
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

import otel_jobtags
from otel_jobtags import TagRegistry, job_context

log = logging.getLogger("app.orders")
# What `from logging.config import dictConfig` at the top of an application module holds.
dict_config_imported_before_install = logging.config.dictConfig


@pytest.fixture(autouse=True)
def no_timed_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """install()'s timed attachment check does not fire during a test: :func:`run_check` runs it."""
    monkeypatch.setattr(otel_jobtags.attachment, "CHECK_DELAY", 3600.0)


def run_check() -> None:
    """Run, now, the attachment check that install() schedules (see the timed test below)."""
    attachment = otel_jobtags.attachment.current_attachment()
    assert attachment is not None
    attachment.check()


def wait_for_timed_checks() -> None:
    """Wait (bounded) for install()'s one-time attachment check to have run."""
    for thread in threading.enumerate():
        if thread.name == "otel-jobtags-check":
            thread.join(timeout=30)


def exported_bodies(
    installation: otel_jobtags.configure.Installation, sink: InMemoryLogRecordExporter
) -> list[Any]:
    assert installation.force_flush()
    return [r.log_record.body for r in sink.get_finished_logs()]


def readme_dict_config(log_file: Path, *, export: bool = False) -> dict[str, Any]:
    handlers: dict[str, Any] = {
        "file": {
            "class": "logging.FileHandler",
            "filename": str(log_file),
            "filters": ["jobtags"],
            "formatter": "plain",
        }
    }
    if export:
        handlers["otel"] = {"class": "otel_jobtags.ExportHandler", "formatter": "plain"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"jobtags": {"()": "otel_jobtags.JobTagFilter"}},
        "formatters": {
            "plain": {"class": "otel_jobtags.JobTagFormatter", "format": "%(levelname)s: %(message)s"}
        },
        "handlers": handlers,
        "root": {"level": "INFO", "handlers": list(handlers)},
    }


def test_basic_config_after_install_still_configures_logging_and_export_continues(
    registry: TagRegistry, tmp_path: Path
) -> None:
    logging.getLogger().handlers.clear()  # a fresh process (pytest adds its own handlers)
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, exporter=sink)
    logging.basicConfig(level="INFO", filename=tmp_path / "app.log", format="%(levelname)s %(message)s")
    with job_context(registry.AUTO_REBAL):
        log.info("rebalanced")
    logging.getLogger().handlers[0].flush()
    assert (tmp_path / "app.log").read_text() == "INFO rebalanced\n"
    assert logging.getLogger().level == logging.INFO
    assert exported_bodies(installation, sink) == ["[AUTO_REBAL] rebalanced"]


@pytest.mark.parametrize("order", ["before", "after"])
def test_basic_config_with_force_keeps_the_export_handler(registry: TagRegistry, order: str) -> None:
    stream = io.StringIO()
    sink = InMemoryLogRecordExporter()
    if order == "before":
        logging.basicConfig(level="INFO", stream=stream, force=True)
    installation = otel_jobtags.install(registry, exporter=sink)
    if order == "after":
        logging.basicConfig(level="INFO", stream=stream, force=True, format="%(message)s")
    log.info("placed 3 orders")
    assert exported_bodies(installation, sink) == ["placed 3 orders"]
    assert stream.getvalue().endswith("placed 3 orders\n")


def test_the_readme_dict_config_after_install_keeps_the_export_handler(
    registry: TagRegistry, tmp_path: Path
) -> None:
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, exporter=sink)
    logging.config.dictConfig(readme_dict_config(tmp_path / "app.log"))
    with job_context(registry.PRICE_CACHE):
        log.info("refreshed")
    assert exported_bodies(installation, sink) == ["[PRICE_CACHE] refreshed"]
    assert (tmp_path / "app.log").read_text() == "INFO: [PRICE_CACHE] refreshed\n"


@pytest.mark.parametrize("order", ["config first", "install first"])
def test_an_export_handler_entry_in_dict_config_exports_once_in_either_order(
    registry: TagRegistry, tmp_path: Path, order: str
) -> None:
    sink = InMemoryLogRecordExporter()
    if order == "config first":
        logging.config.dictConfig(readme_dict_config(tmp_path / "app.log", export=True))
    installation = otel_jobtags.install(registry, exporter=sink)
    if order == "install first":
        logging.config.dictConfig(readme_dict_config(tmp_path / "app.log", export=True))
    with job_context(registry.AUTO_REBAL):
        log.warning("late")
    # The entry's formatter renders the exported body; the record is exported once.
    assert exported_bodies(installation, sink) == ["[AUTO_REBAL] WARNING: [AUTO_REBAL] late"]


def test_a_handler_lost_to_an_unguarded_dict_config_is_said_once_on_stderr(
    registry: TagRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter(), level="INFO")
    dict_config_imported_before_install(readme_dict_config(tmp_path / "app.log"))
    run_check()
    assert capsys.readouterr().err == (
        "otel-jobtags: the export handler was removed by a logging configuration that ran after "
        "otel_jobtags.install(): nothing is exported. Call install() after configuring logging, "
        "or list {'class': 'otel_jobtags.ExportHandler'} among the configuration's handlers\n"
    )


def test_a_root_level_that_lets_nothing_at_info_through_is_said_once_on_stderr(
    registry: TagRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger().setLevel(logging.WARNING)  # Python's default
    otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter())
    run_check()
    logging.basicConfig(level="ERROR", force=True, stream=io.StringIO())
    assert capsys.readouterr().err == (
        "otel-jobtags: the root logger's level is WARNING: records at INFO and below are not exported. "
        "Pass otel_jobtags.install(level='INFO') or set the level in your logging configuration\n"
    )


def test_the_check_runs_by_itself_shortly_after_install(
    registry: TagRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(otel_jobtags.attachment, "CHECK_DELAY", 0.0)
    logging.getLogger().setLevel(logging.WARNING)  # Python's default
    otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter())
    wait_for_timed_checks()
    assert capsys.readouterr().err == (
        "otel-jobtags: the root logger's level is WARNING: records at INFO and below are not exported. "
        "Pass otel_jobtags.install(level='INFO') or set the level in your logging configuration\n"
    )


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_no_level_warning_when_info_gets_through_or_the_level_was_chosen(
    registry: TagRegistry, capsys: pytest.CaptureFixture[str], level: str
) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter(), level=level)
    run_check()
    assert capsys.readouterr().err == ""


def test_install_says_at_info_where_the_logs_go(registry: TagRegistry) -> None:
    stream = io.StringIO()
    logging.basicConfig(level="INFO", stream=stream, format="%(name)s %(levelname)s %(message)s", force=True)
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, endpoint="http://collector:4317")
    installation.shutdown()
    otel_jobtags.install(registry, exporter=sink)
    assert stream.getvalue().splitlines() == [
        "otel_jobtags INFO exporting logs to http://collector:4317 over grpc; "
        "3 jobs (AUTO_REBAL, PRICE_CACHE, DAILY_SUMMARY)",
        "otel_jobtags INFO exporting logs with InMemoryLogRecordExporter; "
        "3 jobs (AUTO_REBAL, PRICE_CACHE, DAILY_SUMMARY)",
    ]
    assert sink.get_finished_logs() == ()


def test_uninstall_puts_the_logging_configuration_functions_back(registry: TagRegistry) -> None:
    original_basic, original_dict = logging.basicConfig, logging.config.dictConfig
    otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter())
    assert logging.basicConfig is not original_basic
    otel_jobtags.uninstall()
    assert (logging.basicConfig, logging.config.dictConfig) == (original_basic, original_dict)


def test_a_dict_config_that_disables_existing_loggers_leaves_the_librarys_own_loggers_on(
    registry: TagRegistry, tmp_path: Path
) -> None:
    runs = logging.getLogger("otel_jobtags.runs")  # exists before the application's configuration
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, exporter=sink)
    config = readme_dict_config(tmp_path / "app.log")
    del config["disable_existing_loggers"]  # dictConfig's default: True
    enabled = [
        x
        for x in logging.Logger.manager.loggerDict.values()
        if isinstance(x, logging.Logger) and not x.disabled
    ]
    try:
        logging.config.dictConfig(config)
    finally:
        disabled_by_config = [x for x in enabled if x.disabled]
        for logger in disabled_by_config:  # leave the other tests' loggers as they were
            logger.disabled = False
    assert logging.getLogger("app.orders") in disabled_by_config
    assert runs not in disabled_by_config
    with job_context(registry.AUTO_REBAL, run_id="r1"):
        runs.info("run finished")
    assert exported_bodies(installation, sink) == ["[AUTO_REBAL] run finished"]


@pytest.mark.parametrize("configure", ["dictConfig", "basicConfig(force=True)"])
def test_a_logging_configuration_starts_no_flush_while_it_holds_the_logging_lock(
    registry: TagRegistry, configure: str
) -> None:
    # dictConfig and basicConfig(force=True) flush and close the handlers they
    # clear while holding logging's module lock; a flush of the export started
    # there waits for the delivery thread, which may itself be waiting for
    # that lock (a log call, a logger looked up): no flush may start there.
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, exporter=sink)
    flushes: list[str] = []
    provider_flush = installation.provider.force_flush

    def spy(timeout_millis: int = 30_000) -> bool:
        flushes.append(threading.current_thread().name)
        return bool(provider_flush(timeout_millis))

    installation.provider.force_flush = spy  # type: ignore[method-assign]
    before = set(threading.enumerate())
    if configure == "dictConfig":
        logging.config.dictConfig(
            {"version": 1, "disable_existing_loggers": False, "root": {"level": "INFO"}}
        )
    else:
        logging.basicConfig(level="INFO", stream=io.StringIO(), force=True)
    for thread in set(threading.enumerate()) - before:
        if thread.name != "otel-jobtags-check":
            thread.join(timeout=30)
    assert flushes == []
    with job_context(registry.AUTO_REBAL):
        log.info("still exported")
    assert exported_bodies(installation, sink) == ["[AUTO_REBAL] still exported"]
