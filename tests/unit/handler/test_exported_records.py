"""What install() exports, and what the application's own handlers see, from the user's side."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

import otel_jobtags
from otel_jobtags import ConfigError, TagRegistry, UnknownJobError, format_background_log, job_context

log = logging.getLogger("app.orders")


@pytest.fixture
def sink() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()


@pytest.fixture
def app_log() -> Iterator[io.StringIO]:
    """The application's own console handler on the root logger, configured before install()."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    yield stream
    logging.getLogger().removeHandler(handler)


def exported(
    installation: otel_jobtags.configure.Installation, sink: InMemoryLogRecordExporter
) -> list[tuple[Any, ...]]:
    assert installation.force_flush()
    return [(r.log_record.body, dict(r.log_record.attributes or {})) for r in sink.get_finished_logs()]


def test_install_leaves_what_the_applications_other_handlers_see_unchanged(
    registry: TagRegistry, sink: InMemoryLogRecordExporter
) -> None:
    installation = otel_jobtags.install(registry, exporter=sink, level="INFO")
    stream = io.StringIO()  # added after install(): it runs after the export handler
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    try:
        with job_context(registry.AUTO_REBAL):
            log.info("rebalanced %d accounts", 3)
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue() == "rebalanced 3 accounts\n"
    assert exported(installation, sink) == [
        ("[AUTO_REBAL] rebalanced 3 accounts", {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"})
    ]


def test_a_dict_message_is_exported_as_json_and_reaches_other_handlers_as_a_dict(
    registry: TagRegistry, sink: InMemoryLogRecordExporter
) -> None:
    seen: list[object] = []

    class Structured(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.msg)

    installation = otel_jobtags.install(registry, exporter=sink, level="INFO", body_prefix=False)
    handler = Structured()
    logging.getLogger().addHandler(handler)
    try:
        with job_context(registry.AUTO_REBAL):
            log.info({"event": "orders placed", "orders": 3})
    finally:
        logging.getLogger().removeHandler(handler)
    assert seen == [{"event": "orders placed", "orders": 3}]
    ((body, attributes),) = exported(installation, sink)
    assert json.loads(body) == {"event": "orders placed", "orders": 3}
    assert attributes == {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"}


@pytest.mark.parametrize(
    ("kwargs", "environ", "expected_body"),
    [
        ({}, {}, '[AUTO_REBAL] {"orders": 3}'),
        ({"body_prefix": False}, {}, '{"orders": 3}'),
        ({}, {"OTEL_JOBTAGS_BODY_PREFIX": "false"}, '{"orders": 3}'),
        ({"body_prefix": True}, {"OTEL_JOBTAGS_BODY_PREFIX": "false"}, '[AUTO_REBAL] {"orders": 3}'),
    ],
)
def test_the_body_prefix_is_on_by_default_and_can_be_switched_off(
    registry: TagRegistry,
    sink: InMemoryLogRecordExporter,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, Any],
    environ: dict[str, str],
    expected_body: str,
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    installation = otel_jobtags.install(registry, exporter=sink, level="INFO", **kwargs)
    with job_context(registry.AUTO_REBAL):
        log.info(json.dumps({"orders": 3}))
    assert exported(installation, sink) == [
        (expected_body, {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"})
    ]


def test_an_invalid_body_prefix_setting_is_a_config_error_and_changes_nothing(
    registry: TagRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_JOBTAGS_BODY_PREFIX", "maybe")
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ConfigError, match=r"^Invalid OTEL_JOBTAGS_BODY_PREFIX='maybe': use true or false$"):
        otel_jobtags.install(registry, exporter=InMemoryLogRecordExporter())
    assert logging.getLogger().handlers == handlers


def test_inside_a_job_another_jobs_prefix_is_replaced_and_kept_as_an_attribute(
    registry: TagRegistry, sink: InMemoryLogRecordExporter
) -> None:
    installation = otel_jobtags.install(registry, exporter=sink, level="INFO")
    with job_context(registry.AUTO_REBAL):
        log.info(format_background_log(registry.PRICE_CACHE, "prices refreshed"))
    assert exported(installation, sink) == [
        (
            "[AUTO_REBAL] prices refreshed",
            {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance", "job.prefix_tag": "PRICE_CACHE"},
        )
    ]


def test_prefix_attribution_outside_a_job_is_on_by_default_for_existing_call_sites(
    registry: TagRegistry, sink: InMemoryLogRecordExporter
) -> None:
    installation = otel_jobtags.install(registry, exporter=sink, level="INFO")
    log.info(format_background_log(registry.AUTO_REBAL, "done"))
    assert exported(installation, sink) == [
        ("[AUTO_REBAL] done", {"job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"})
    ]


@pytest.mark.parametrize(
    ("kwargs", "environ"),
    [({"prefix_attribution": False}, {}), ({}, {"OTEL_JOBTAGS_PREFIX_ATTRIBUTION": "off"})],
)
def test_prefix_attribution_switched_off_ignores_a_forged_prefix_but_not_the_job_context(
    registry: TagRegistry,
    sink: InMemoryLogRecordExporter,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, Any],
    environ: dict[str, str],
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    installation = otel_jobtags.install(registry, exporter=sink, level="INFO", **kwargs)
    user = "[AUTO_REBAL] mallory"
    log.warning(f"{user} failed login")
    with job_context(registry.PRICE_CACHE):
        log.info(f"{user} failed login")
    assert exported(installation, sink) == [
        ("[AUTO_REBAL] mallory failed login", {}),
        (
            "[PRICE_CACHE] mallory failed login",
            {"job.tag": "PRICE_CACHE", "job.id": "price_cache", "job.prefix_tag": "AUTO_REBAL"},
        ),
    ]


def test_an_unknown_job_tag_in_extra_is_said_once_on_stderr(
    registry: TagRegistry, sink: InMemoryLogRecordExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    installation = otel_jobtags.install(registry, exporter=sink, level="INFO")
    for _ in range(3):
        log.info("rebalanced", extra={"job_tag": "AUTO_REBL"})
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "otel-jobtags: Unknown job_tag='AUTO_REBL' in extra= of a record on logger 'app.orders': "
        "known jobs are AUTO_REBAL, PRICE_CACHE, DAILY_SUMMARY; did you mean 'AUTO_REBAL'? "
        "(said once; OTEL_JOBTAGS_STRICT=true raises instead)"
    ]
    assert exported(installation, sink) == [("rebalanced", {"job_tag": "AUTO_REBL"})] * 3


def test_an_unknown_job_id_in_extra_raises_under_the_strict_setting(
    registry: TagRegistry, sink: InMemoryLogRecordExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_JOBTAGS_STRICT", "1")
    otel_jobtags.install(registry, exporter=sink, level="INFO")
    message = (
        "Unknown job_id='price_cahce' in extra= of a record on logger 'app.orders': "
        "known jobs are AUTO_REBAL, PRICE_CACHE, DAILY_SUMMARY; did you mean 'price_cache'?"
    )
    with pytest.raises(UnknownJobError, match=f"^{re.escape(message)}$"):
        log.info("refreshed", extra={"job_id": "price_cahce"})


def test_attribute_values_opentelemetry_cannot_hold_are_exported_as_text(
    registry: TagRegistry, sink: InMemoryLogRecordExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    class Account:
        def __str__(self) -> str:
            return "account 42"

    installation = otel_jobtags.install(registry, exporter=sink, level="INFO")
    log.info("opened", extra={"account": Account(), "ids": [1, 2], "mixed": [1, object]})
    ((body, attributes),) = exported(installation, sink)
    assert body == "opened"
    assert attributes == {"account": "account 42", "ids": (1, 2), "mixed": str([1, object])}
    assert capsys.readouterr().err == ""
