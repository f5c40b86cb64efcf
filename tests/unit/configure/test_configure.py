"""install(): settings resolution, what it changes, and its undo."""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

import otel_jobtags
from otel_jobtags import ConfigError, TagRegistry, job_context
from otel_jobtags.configure import Settings, resolve_settings
from otel_jobtags.context import active_registry
from otel_jobtags.handler import JobTagHandler


@pytest.mark.parametrize(
    ("kwargs", "environ", "expected"),
    [
        ({}, {}, Settings("grpc", "http://localhost:4317", {})),
        ({"protocol": "http/protobuf"}, {}, Settings("http/protobuf", "http://localhost:4318/v1/logs", {})),
        (
            {},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"},
            Settings("grpc", "http://collector:4317", {}),
        ),
        (
            {},
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://loki:3100/otlp",
            },
            Settings("http/protobuf", "http://loki:3100/otlp/v1/logs", {}),
        ),
        (
            {"protocol": "http/protobuf", "endpoint": "http://collector:4318/v1/logs"},
            {},
            Settings("http/protobuf", "http://collector:4318/v1/logs", {}),
        ),
        (
            {},
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://c:4318/custom/logs",
            },
            Settings("http/protobuf", "http://c:4318/custom/logs", {}),
        ),
        (
            {"endpoint": "http://arg:4317", "protocol": "grpc"},
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
            Settings("grpc", "http://arg:4317", {}),
        ),
        (
            {},
            {
                "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc,x-tenant=a",
                "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-tenant=b",
            },
            Settings("grpc", "http://localhost:4317", {"authorization": "Bearer abc", "x-tenant": "b"}),
        ),
        (
            {"headers": {"X-Key": "1"}},
            {"OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=a"},
            Settings("grpc", "http://localhost:4317", {"x-key": "1"}),
        ),
    ],
)
def test_settings_resolve_argument_then_environment_then_default(
    kwargs: dict[str, str], environ: dict[str, str], expected: Settings
) -> None:
    assert resolve_settings(environ=environ, **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "environ", "message"),
    [
        (
            {},
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "Invalid OTEL_EXPORTER_OTLP_PROTOCOL='http/json': use 'grpc' or 'http/protobuf'",
        ),
        ({"protocol": "udp"}, {}, "Invalid protocol='udp': use 'grpc' or 'http/protobuf'"),
        (
            {},
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"},
            "Invalid OTEL_EXPORTER_OTLP_ENDPOINT='collector:4317': give a URL with scheme, host and port, "
            "e.g. 'http://localhost:4317'",
        ),
        (
            {},
            {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://c:99999"},
            "Invalid OTEL_EXPORTER_OTLP_LOGS_ENDPOINT='http://c:99999': the port is not a number 0-65535",
        ),
        (
            {},
            {"OTEL_EXPORTER_OTLP_HEADERS": "novalue"},
            "Invalid OTEL_EXPORTER_OTLP_HEADERS='novalue': write comma-separated key=value pairs, "
            "e.g. 'authorization=Bearer xyz,x-tenant=a'",
        ),
        ({"service_name": " "}, {}, "Invalid service_name='': give the name of the application, e.g. 'web'"),
    ],
)
def test_invalid_settings_name_the_variable_and_the_value(
    kwargs: dict[str, str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        resolve_settings(environ=environ, **kwargs)  # type: ignore[arg-type]


def test_install_adds_one_handler_and_uninstall_restores_logging_exactly(registry: TagRegistry) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level, active_registry())
    installation = otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter(), level="DEBUG")
    assert [h for h in root.handlers if isinstance(h, JobTagHandler)] == [installation.handler]
    assert root.level == logging.DEBUG
    assert active_registry() is registry
    otel_jobtags.uninstall()
    assert (list(root.handlers), root.level, active_registry()) == before
    installation.shutdown()  # a second undo is harmless


def test_installing_twice_replaces_the_first_and_never_exports_twice(registry: TagRegistry) -> None:
    first_sink, second_sink = InMemoryLogRecordExporter(), InMemoryLogRecordExporter()
    otel_jobtags.install(registry, exporter=first_sink, level=logging.INFO)
    second = otel_jobtags.install(registry, exporter=second_sink, level=logging.INFO)
    with job_context(registry.AUTO_REBAL):
        logging.getLogger("app").info("once")
    second.force_flush()
    assert [r.log_record.body for r in second_sink.get_finished_logs()] == ["[AUTO_REBAL] once"]
    assert first_sink.get_finished_logs() == ()
    assert sum(isinstance(h, JobTagHandler) for h in logging.getLogger().handlers) == 1


def test_resource_carries_service_name_instance_and_process(
    registry: TagRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,service.name=from-env")
    installation = otel_jobtags.install(
        registry,
        exporter=InMemoryLogRecordExporter(),
        service_name="web",
        resource_attributes={"team": "ops"},
    )
    attributes = dict(installation.resource.attributes)
    assert attributes["service.name"] == "web"
    assert attributes["deployment.environment"] == "test"
    assert attributes["team"] == "ops"
    assert isinstance(attributes["process.pid"], int)
    assert attributes["host.name"] == socket.gethostname()
    assert re.fullmatch(r"[0-9a-f-]{36}", str(attributes["service.instance.id"]))


def test_service_name_falls_back_to_the_environment(
    registry: TagRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "worker")
    installation = otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter())
    assert installation.resource.attributes["service.name"] == "worker"


@pytest.mark.parametrize(("level", "expected"), [("warn", 30), ("25", 25), (" error ", 40)])
def test_install_reads_a_level_as_the_log_readers_do(
    registry: TagRegistry, level: str, expected: int
) -> None:
    otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter(), level=level)
    assert logging.getLogger().level == expected
    otel_jobtags.uninstall()


def test_invalid_level_is_a_config_error(registry: TagRegistry) -> None:
    with pytest.raises(
        ConfigError, match=r"^Invalid level 'LOUD': use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number$"
    ):
        otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter(), level="LOUD")
    assert not any(isinstance(h, JobTagHandler) for h in logging.getLogger().handlers)


def test_records_of_the_sdk_exporter_and_grpc_are_never_exported(
    registry: TagRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = InMemoryLogRecordExporter()
    installation = otel_jobtags.install(registry, exporter=sink, level=logging.INFO)
    logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter").warning("Transient error, retrying")
    logging.getLogger("grpc._channel").warning("channel trouble")
    logging.getLogger("opentelemetry.sdk").info("quiet detail")
    logging.getLogger("opentelemetryish").warning("an app logger with a similar name")
    installation.force_flush()
    assert [r.log_record.body for r in sink.get_finished_logs()] == ["an app logger with a similar name"]
    err = capsys.readouterr().err
    assert (
        "otel-jobtags: opentelemetry.exporter.otlp.proto.grpc.exporter WARNING: Transient error, retrying"
        in err
    )
    assert "otel-jobtags: grpc._channel WARNING: channel trouble" in err
    assert "quiet detail" not in err


def test_records_logged_while_exporting_are_internal(registry: TagRegistry) -> None:
    class ChattyExporter(InMemoryLogRecordExporter):
        def export(self, batch):  # type: ignore[no-untyped-def]
            logging.getLogger("urllib3.connectionpool").warning("retrying POST")
            return super().export(batch)

    sink = ChattyExporter()
    installation = otel_jobtags.install(registry, exporter=sink, level=logging.INFO)
    logging.getLogger("app").info("real record")
    installation.force_flush()
    installation.force_flush()
    assert [r.log_record.body for r in sink.get_finished_logs()] == ["real record"]


def test_a_bad_spool_directory_leaves_the_running_installation_in_place(
    registry: TagRegistry, tmp_path: Path
) -> None:
    sink = InMemoryLogRecordExporter()
    running = otel_jobtags.install(registry, exporter=sink, level=logging.INFO)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"^Cannot use the spool directory '.*a-file/spool': "):
        otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter(), spool_dir=blocker / "spool")
    logging.getLogger("app").info("still exported")
    running.force_flush()
    assert [r.log_record.body for r in sink.get_finished_logs()] == ["still exported"]


def test_a_service_instance_id_from_the_environment_is_kept(
    registry: TagRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=web-1")
    installation = otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter())
    assert installation.resource.attributes["service.instance.id"] == "web-1"
    installation.shutdown()
    installation = otel_jobtags.install(
        registry, exporter=InMemoryLogRecordExporter(), resource_attributes={"service.instance.id": "web-2"}
    )
    assert installation.resource.attributes["service.instance.id"] == "web-2"
