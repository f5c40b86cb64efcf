"""The tag value type, the registry's rules and the seed's formatter."""

from __future__ import annotations

import pytest

from otel_jobtags import JobTag, TagError, TagRegistry, UnknownJobError, format_background_log
from otel_jobtags.demo import JOBS
from otel_jobtags.schedule import Cron, Interval

RULE = "use upper-case letters, digits and '_', starting with a letter (at most 15)"


def test_tag_renders_as_bracketed_name_and_exposes_value() -> None:
    tag = JobTag("AUTO_REBAL", "auto_rebalance")
    assert str(tag) == "[AUTO_REBAL]"
    assert tag.value == "[AUTO_REBAL]"
    assert tag.prefix == "[AUTO_REBAL] "


def test_tags_compare_by_name_and_equal_their_bracketed_text() -> None:
    a = JobTag("AUTO_REBAL", "auto_rebalance", "one")
    b = JobTag("AUTO_REBAL", "other_id", "two")
    assert a == b
    assert a == "[AUTO_REBAL]"
    assert a != "AUTO_REBAL"
    assert a != JobTag("PNL_CALC", "update_positions")
    assert {a: 1}["[AUTO_REBAL]"] == 1


def test_format_background_log_is_the_seeds_fstring() -> None:
    tag = JobTag("AUTO_REBAL", "auto_rebalance")
    assert format_background_log(tag, "🔄 job started") == "[AUTO_REBAL] 🔄 job started"
    assert format_background_log("[LEGACY]", "x") == "[LEGACY] x"
    assert format_background_log(tag, "") == "[AUTO_REBAL] "


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("auto-rebal", f"Invalid tag 'auto-rebal': {RULE}, e.g. 'AUTO_REBAL'"),
        ("auto_rebal", f"Invalid tag 'auto_rebal': {RULE}, e.g. 'AUTO_REBAL'"),
        ("1ABC", f"Invalid tag '1ABC': {RULE}, e.g. 'ABC'"),
        ("_ABC", f"Invalid tag '_ABC': {RULE}, e.g. 'ABC'"),
        ("[AUTO_REBAL]", f"Invalid tag '[AUTO_REBAL]': {RULE}, e.g. 'AUTO_REBAL'"),
        ("AUTO REBAL", f"Invalid tag 'AUTO REBAL': {RULE}, e.g. 'AUTO_REBAL'"),
        ("ÄUTO", f"Invalid tag 'ÄUTO': {RULE}, e.g. 'UTO'"),
        (
            "AUTO_REBALANCING",
            f"Invalid tag 'AUTO_REBALANCING': 16 characters is too long; {RULE}, e.g. 'AUTO_REBALANCIN'",
        ),
        ("", f"Invalid tag '': the name is empty; {RULE}, e.g. 'MY_JOB'"),
    ],
)
def test_invalid_tag_names_fail_at_definition_with_the_fix(name: str, message: str) -> None:
    jobs = TagRegistry()
    with pytest.raises(TagError, match=f"^{__import__('re').escape(message)}$"):
        jobs.define(name, "some_job")
    assert len(jobs) == 0


@pytest.mark.parametrize("name", ["A", "AUTO_REBAL", "PRECISION_CACHE", "JOB2", "A_1_B", "X" * 15])
def test_valid_tag_names_are_accepted(name: str) -> None:
    assert TagRegistry().define(name, "job").name == name


def test_non_string_name_is_rejected() -> None:
    with pytest.raises(TagError, match=r"^Invalid tag 42: a tag name is a string such as 'AUTO_REBAL'$"):
        TagRegistry().define(42, "job")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("job_id", "message"),
    [
        (
            "",
            "Invalid job id '' for tag 'JOB': give the exact id the job is registered under "
            "in the scheduler, e.g. 'auto_rebalance'",
        ),
        (
            "   ",
            "Invalid job id '   ' for tag 'JOB': give the exact id the job is registered under "
            "in the scheduler, e.g. 'auto_rebalance'",
        ),
        (
            " job",
            "Invalid job id ' job' for tag 'JOB': remove the surrounding spaces and control "
            "characters; it must equal the scheduler's job id exactly",
        ),
        (
            "job\n",
            "Invalid job id 'job\\n' for tag 'JOB': remove the surrounding spaces and control "
            "characters; it must equal the scheduler's job id exactly",
        ),
    ],
)
def test_invalid_job_ids_fail_at_definition(job_id: str, message: str) -> None:
    with pytest.raises(TagError, match=f"^{__import__('re').escape(message)}$"):
        TagRegistry().define("JOB", job_id)


def test_duplicate_names_are_rejected_and_the_registry_is_unchanged() -> None:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance")
    with pytest.raises(
        TagError,
        match=r"^Duplicate tag 'AUTO_REBAL': it is already defined for job id 'auto_rebalance'; "
        r"choose another name$",
    ):
        jobs.define("AUTO_REBAL", "other")
    assert jobs.job_ids == ("auto_rebalance",)


def test_duplicate_job_ids_are_rejected() -> None:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance")
    with pytest.raises(
        TagError,
        match=r"^Duplicate job id 'auto_rebalance': it already has tag 'AUTO_REBAL'; "
        r"each job id maps to one tag$",
    ):
        jobs.define("REBAL2", "auto_rebalance")
    assert jobs.names == ("AUTO_REBAL",)


def test_invalid_schedule_fails_at_definition() -> None:
    with pytest.raises(TagError, match=r"^Invalid schedule 'sometimes': write 'every 30 s'"):
        TagRegistry().define("JOB", "job", schedule="sometimes")


def test_lookups_by_job_id_name_and_bracketed_name(registry: TagRegistry) -> None:
    tag = registry.AUTO_REBAL
    assert registry.by_job_id("auto_rebalance") is tag
    assert registry.by_name("AUTO_REBAL") is tag
    assert registry.by_name("[AUTO_REBAL]") is tag
    assert registry.resolve("auto_rebalance") is tag
    assert registry.resolve("[AUTO_REBAL]") is tag
    assert registry.resolve(tag) is tag
    assert registry.get("nope") is None
    assert "price_cache" in registry and "PRICE_CACHE" in registry and "nope" not in registry


def test_unknown_lookups_raise_listing_the_known_jobs(registry: TagRegistry) -> None:
    expected = r"^Unknown job 'nope': known jobs are auto_rebalance, price_cache, send_daily_summary$"
    with pytest.raises(UnknownJobError, match=expected):
        registry.by_job_id("nope")
    with pytest.raises(UnknownJobError, match=expected):
        registry.resolve("nope")
    with pytest.raises(UnknownJobError, match=r"^Unknown job 'NOPE': known jobs are AUTO_REBAL, "):
        registry.by_name("NOPE")
    with pytest.raises(AttributeError, match=r"^TagRegistry has no tag or attribute 'NOPE'$"):
        registry.NOPE  # noqa: B018


def test_job_tag_map_is_derived_and_read_only(registry: TagRegistry) -> None:
    mapping = registry.job_tag_map
    assert dict(mapping) == {
        "auto_rebalance": registry.AUTO_REBAL,
        "price_cache": registry.PRICE_CACHE,
        "send_daily_summary": registry.DAILY_SUMMARY,
    }
    with pytest.raises(TypeError):
        mapping["x"] = registry.AUTO_REBAL  # type: ignore[index]
    new = registry.define("PNL_CALC", "update_positions")
    assert mapping["update_positions"] is new  # a live view, never maintained by hand


def test_demo_registry_has_the_seeds_13_jobs() -> None:
    rows = [(t.name, t.job_id, str(t.schedule)) for t in JOBS]
    assert rows == [
        ("PRECISION_CACHE", "precision_cache", "every 30 s"),
        ("SYMBOL_VALID", "symbol_validator", "every 30 s"),
        ("MARKET_INFO", "market_info", "every 30 s"),
        ("PRICE_CACHE", "price_cache", "every 5 s"),
        ("ORDER_UPDATE", "update_open_orders", "every 29 s"),
        ("PNL_CALC", "update_positions", "every 29 s"),
        ("DAILY_SUMMARY", "send_daily_summary", "daily 09:00"),
        ("PERF_CALC", "calculate_daily_performance", "daily 09:05"),
        ("AUTO_REBAL", "auto_rebalance", "hourly at minute 17"),
        ("TOKEN_REFRESH", "securities_token_refresh", "hourly at minute 0"),
        ("QUEUE_REBAL", "queue_rebalancer", "every 1 s"),
        ("LOCK_RELEASE", "release_stale_processing", "every 5 min"),
        ("WS_HEALTH", "websocket_health_monitor", "every 30 s"),
    ]
    assert JOBS.AUTO_REBAL.description == "automatic portfolio rebalancing"
    assert JOBS.AUTO_REBAL.schedule == Cron("17 * * * *")
    assert JOBS.QUEUE_REBAL.schedule == Interval(1)
    assert all(t.description for t in JOBS)
