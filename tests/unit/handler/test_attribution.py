"""JobTagFilter: which job a record belongs to, its attributes and its [TAG] prefix."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from pathlib import Path

import pytest

from otel_jobtags import JobTagFilter, TagRegistry, format_background_log, job_context
from otel_jobtags.context import use_registry
from otel_jobtags.testing import capture_logs

log = logging.getLogger("app.jobs")


def test_explicit_extra_wins_over_the_context_and_the_prefix(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs, job_context(registry.AUTO_REBAL):
        log.info(format_background_log(registry.DAILY_SUMMARY, "x"), extra={"job_tag": registry.PRICE_CACHE})
    (record,) = logs
    assert (record.job_tag, record.job_id) == ("PRICE_CACHE", "price_cache")
    assert record.message == "[PRICE_CACHE] x"
    assert record.attributes == {
        "job.tag": "PRICE_CACHE",
        "job.id": "price_cache",
        "job.prefix_tag": "DAILY_SUMMARY",
    }


@pytest.mark.parametrize(
    "extra",
    [
        {"job_tag": "PRICE_CACHE"},
        {"job_tag": "[PRICE_CACHE]"},
        {"job_tag": "price_cache"},
        {"job_id": "price_cache"},
    ],
)
def test_explicit_extra_accepts_names_and_job_ids(registry: TagRegistry, extra: dict[str, str]) -> None:
    with capture_logs(registry) as logs:
        log.info("hello", extra=extra)
    assert [(r.job_tag, r.message, dict(r.attributes)) for r in logs] == [
        ("PRICE_CACHE", "[PRICE_CACHE] hello", {"job.tag": "PRICE_CACHE", "job.id": "price_cache"})
    ]


def test_unknown_explicit_value_is_left_alone_and_the_context_applies(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs, job_context(registry.AUTO_REBAL):
        log.info("hello", extra={"job_tag": "NOT_A_JOB"})
    (record,) = logs
    assert record.job_tag == "AUTO_REBAL"
    assert record.attributes == {"job_tag": "NOT_A_JOB", "job.tag": "AUTO_REBAL", "job.id": "auto_rebalance"}


def test_context_wins_over_a_prefix_and_keeps_one_prefix_and_the_named_tag(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs, job_context(registry.AUTO_REBAL, run_id="r1"):
        log.info("[PRICE_CACHE] refreshed")
    assert [(r.job_tag, r.message, dict(r.attributes)) for r in logs] == [
        (
            "AUTO_REBAL",
            "[AUTO_REBAL] refreshed",
            {
                "job.tag": "AUTO_REBAL",
                "job.id": "auto_rebalance",
                "job.run_id": "r1",
                "job.prefix_tag": "PRICE_CACHE",
            },
        )
    ]


def test_a_registered_prefix_attributes_seed_call_sites_without_change(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs:
        log.info(format_background_log(registry.AUTO_REBAL, "🔄 job started"))
        log.debug("[PRICE_CACHE] processed: %d items", 5)
    assert [(r.job_tag, r.job_id, r.message) for r in logs] == [
        ("AUTO_REBAL", "auto_rebalance", "[AUTO_REBAL] 🔄 job started"),
        ("PRICE_CACHE", "price_cache", "[PRICE_CACHE] processed: 5 items"),
    ]


@pytest.mark.parametrize(
    "message",
    ["[UNKNOWN] something", "[lower] x", "[AUTO_REBAL]no space", " [AUTO_REBAL] leading space", "plain"],
)
def test_unregistered_or_malformed_prefixes_are_left_alone(registry: TagRegistry, message: str) -> None:
    with capture_logs(registry) as logs:
        log.info(message)
    assert [(r.job_tag, r.message, dict(r.attributes)) for r in logs] == [(None, message, {})]


@pytest.mark.parametrize(
    ("msg", "args", "expected"),
    [
        ("job started", (), "[AUTO_REBAL] job started"),
        ("[AUTO_REBAL] job started", (), "[AUTO_REBAL] job started"),
        ("processed: %d items", (5,), "[AUTO_REBAL] processed: 5 items"),
        ("%s", ("[AUTO_REBAL] preformatted",), "[AUTO_REBAL] preformatted"),
        ("%s", ("not prefixed",), "[AUTO_REBAL] not prefixed"),
        ("100% done", (), "[AUTO_REBAL] 100% done"),
        ("❌ 실패: %s", ("타임아웃",), "[AUTO_REBAL] ❌ 실패: 타임아웃"),
        ("", (), "[AUTO_REBAL] "),
    ],
)
def test_the_prefix_appears_exactly_once(
    registry: TagRegistry, msg: str, args: tuple[object, ...], expected: str
) -> None:
    with capture_logs(registry) as logs, job_context(registry.AUTO_REBAL):
        log.info(msg, *args)
    assert [r.message for r in logs] == [expected]


def test_a_message_that_is_not_a_string_is_never_rewritten(registry: TagRegistry) -> None:
    event = {"event": "orders placed", "orders": 3}  # what structlog's stdlib integration logs
    seen: list[object] = []

    class KeepsTheMessage(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.msg)

    handler = KeepsTheMessage()
    handler.addFilter(JobTagFilter(registry))
    log.addHandler(handler)
    try:
        with job_context(registry.AUTO_REBAL):
            log.warning(event)
    finally:
        log.removeHandler(handler)
    assert seen == [event]
    assert seen[0] is event


def test_two_handlers_with_the_filter_do_not_prefix_twice(registry: TagRegistry) -> None:
    first, second = io.StringIO(), io.StringIO()
    for stream in (first, second):
        handler = logging.StreamHandler(stream)
        handler.addFilter(JobTagFilter(registry))
        log.addHandler(handler)
    try:
        with job_context(registry.AUTO_REBAL):
            log.warning("careful")
    finally:
        log.handlers.clear()
    assert first.getvalue() == second.getvalue() == "[AUTO_REBAL] careful\n"


def test_a_log_call_never_raises_even_when_attribution_fails(
    registry: TagRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    class FailsInTheFilter(str):
        def __hash__(self) -> int:
            if sys._getframe(1).f_globals["__name__"] == "otel_jobtags.tags":
                raise ValueError("no hash")
            return super().__hash__()

    with capture_logs(registry) as logs:
        log.info("text", extra={"job_tag": FailsInTheFilter("AUTO_REBAL")})  # the record still arrives
    assert [(r.job_tag, r.message) for r in logs] == [(None, "text")]
    assert "otel-jobtags: could not attribute a log record: ValueError: no hash" in capsys.readouterr().err


def test_the_filter_uses_the_active_registry_by_default(registry: TagRegistry) -> None:
    use_registry(registry)
    with capture_logs() as logs:
        log.info("[PRICE_CACHE] refreshed")
    assert [r.job_tag for r in logs] == ["PRICE_CACHE"]


def test_a_plain_log_file_configured_by_dictconfig_gets_prefix_and_attributes(
    registry: TagRegistry, tmp_path: Path
) -> None:
    use_registry(registry)
    path = tmp_path / "app.log"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"jobtags": {"()": "otel_jobtags.JobTagFilter"}},
            "formatters": {
                "plain": {
                    "class": "otel_jobtags.JobTagFormatter",
                    "format": "%(levelname)s %(job.tag)s %(job.id)s: %(message)s",
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(path),
                    "formatter": "plain",
                    "filters": ["jobtags"],
                    "encoding": "utf-8",
                }
            },
            "root": {"level": "DEBUG", "handlers": ["file"]},
        }
    )
    with job_context("auto_rebalance"):
        log.info("✅ done - processed: %d items", 5)
    log.info("startup")
    logging.getLogger().handlers[0].close()
    assert path.read_text("utf-8").splitlines() == [
        "INFO AUTO_REBAL auto_rebalance: [AUTO_REBAL] ✅ done - processed: 5 items",
        "INFO - -: startup",
    ]


def test_run_id_of_the_context_becomes_an_attribute(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs, job_context(registry.AUTO_REBAL, run_id="r-42"):
        log.info("x")
    assert logs[0].run_id == "r-42"
    assert json.loads(json.dumps(dict(logs[0].attributes))) == {
        "job.tag": "AUTO_REBAL",
        "job.id": "auto_rebalance",
        "job.run_id": "r-42",
    }


def test_job_formatter_accepts_a_format_with_only_job_fields(registry: TagRegistry) -> None:
    from otel_jobtags import JobTagFormatter

    formatter = JobTagFormatter("[%(job.tag)s]")
    assert formatter.format(logging.makeLogRecord({"msg": "x"})) == "[-]"
    with pytest.raises(ValueError, match=r"^Invalid format '%\(job.tag\)q' for '%' style$"):
        JobTagFormatter("%(job.tag)q")


def test_job_formatter_refuses_job_fields_in_other_styles() -> None:
    from otel_jobtags import ConfigError, JobTagFormatter

    with pytest.raises(
        ConfigError, match=r"^Invalid format '\{job.tag\} \{message\}': the job fields work in %-style"
    ):
        JobTagFormatter("{job.tag} {message}", style="{")
