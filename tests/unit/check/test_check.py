"""Checking a registry against source code and a scheduler: otel_jobtags.check."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_jobtags import JobTag, TagRegistry
from otel_jobtags.check import FEATURE_MARKER, Finding, check, registry_from_object
from otel_jobtags.schedule import Interval

MARKER = f"# {FEATURE_MARKER}"
UNUSED = "is registered but no scanned source uses it"


def registry() -> TagRegistry:
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance")
    jobs.define("PNL_CALC", "update_positions")
    jobs.define("TOKEN_REFRESH", "securities_token_refresh")
    return jobs


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "myapp/jobs.py",
        f'''{MARKER}
"""The jobs: [GHOST] in a docstring is prose, not a use."""
from otel_jobtags import TagRegistry

JOBS = TagRegistry()
AUTO_REBAL = JOBS.define("AUTO_REBAL", "auto_rebalance")
PNL_CALC = JOBS.define("PNL_CALC", "update_positions")
TOKEN_REFRESH = JOBS.define("TOKEN_REFRESH", "securities_token_refresh")
''',
    )
    write(
        tmp_path,
        "myapp/tasks.py",
        f"""{MARKER}
import logging

from otel_jobtags import format_background_log, job_context

from myapp.jobs import JOBS

log = logging.getLogger(__name__)


def rebalance(n):
    log.info(format_background_log(JOBS.AUTO_REBAL, "start"))
    log.info("[AUTO_REBAL] done")
    log.info(format_background_log("[FOO_BAR]", "x"))
    log.info(f"[NEW_JOB] {{n}} items, not [MIDDLE] of an f-string")
    log.info("see [LATER] in the middle of a message")


@job_context("update_positions")
def pnl():
    pass


def unknown():
    with job_context("no_such_job"):
        pass
""",
    )
    write(tmp_path, "myapp/other.py", 'import logging\nlogging.warning("[PNL_CALC] from elsewhere")\n')
    write(
        tmp_path,
        "myapp/scheduling.py",
        f"""{MARKER}
def setup(scheduler, f):
    scheduler.add_job(f, "interval", seconds=30, id="auto_rebalance")
    scheduler.add_job(f, "interval", seconds=30, id="orphan_job")
""",
    )
    write(tmp_path, "myapp/broken.py", "def (:\n")
    write(tmp_path, ".venv/lib/site.py", 'print("[VENDORED] not ours")\n')
    return tmp_path


def test_the_source_check_reports_unregistered_unused_and_unmarked(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    report = check(registry(), ["myapp"])
    assert [str(f) for f in report.findings] == [
        "myapp/broken.py: warning: not checked: invalid syntax (broken.py, line 1)",
        "myapp/other.py: warning: uses [PNL_CALC] but carries no '@FEAT:background-log-tagging' "
        "marker comment",
        "myapp/scheduling.py:4: error: scheduler job id 'orphan_job' is not in the registry; register it",
        "myapp/tasks.py:14: error: tag [FOO_BAR] is not registered (format_background_log [FOO_BAR]); "
        "define it in the registry",
        "myapp/tasks.py:15: error: tag [NEW_JOB] is not registered (literal [NEW_JOB]); "
        "define it in the registry",
        "myapp/tasks.py:25: error: job 'no_such_job' is not in the registry; register it",
        f"error: tag [TOKEN_REFRESH] (job id 'securities_token_refresh') {UNUSED}",
    ]
    assert report.marker_files == ["myapp/jobs.py", "myapp/scheduling.py", "myapp/tasks.py"]
    assert (report.files_scanned, report.ok) == (4, False)  # broken.py could not be read
    assert sorted((u.path, u.line, u.kind, u.tag) for u in report.uses) == [
        ("myapp/other.py", 2, "literal", "PNL_CALC"),
        ("myapp/scheduling.py", 3, "scheduler id", "AUTO_REBAL"),
        ("myapp/scheduling.py", 4, "scheduler id", None),
        ("myapp/tasks.py", 12, "format_background_log", "AUTO_REBAL"),
        ("myapp/tasks.py", 13, "literal", "AUTO_REBAL"),
        ("myapp/tasks.py", 14, "format_background_log", "FOO_BAR"),
        ("myapp/tasks.py", 15, "literal", "NEW_JOB"),
        ("myapp/tasks.py", 19, "job_context", "PNL_CALC"),
        ("myapp/tasks.py", 25, "job_context", None),
    ]


def test_unused_tags_can_be_warnings_for_code_that_picks_tags_at_run_time(project: Path) -> None:
    report = check(registry(), [project / "myapp" / "jobs.py"], allow_unused=True)
    assert [(f.severity, f.message) for f in report.findings] == [
        ("warning", f"tag [{name}] (job id {job_id!r}) {UNUSED}")
        for name, job_id in [
            ("AUTO_REBAL", "auto_rebalance"),
            ("PNL_CALC", "update_positions"),
            ("TOKEN_REFRESH", "securities_token_refresh"),
        ]
    ]
    assert report.ok


def test_the_seed_s_constant_class_and_job_tag_map_define_and_do_not_use(tmp_path: Path) -> None:
    write(
        tmp_path,
        "seed.py",
        f"""{MARKER}
class BackgroundJobTag:
    AUTO_REBAL = "[AUTO_REBAL]"
    PNL_CALC = "[PNL_CALC]"
    TOKEN_REFRESH = "[TOKEN_REFRESH]"

JOB_TAG_MAP = {{
    "auto_rebalance": BackgroundJobTag.AUTO_REBAL,
    "update_positions": BackgroundJobTag.PNL_CALC,
    "securities_token_refresh": BackgroundJobTag.TOKEN_REFRESH,
}}

def job(log):
    log.info(format_background_log(BackgroundJobTag.PNL_CALC, "ok"))
    log.info(BackgroundJobTag.SPELLED_WRONG)
""",
    )
    report = check(registry(), [tmp_path], allow_unused=True)
    assert [str(f) for f in report.findings] == [
        f"{tmp_path / 'seed.py'}:15: error: tag [SPELLED_WRONG] is not registered "
        "(attribute BackgroundJobTag.SPELLED_WRONG); define it in the registry",
        f"warning: tag [AUTO_REBAL] (job id 'auto_rebalance') {UNUSED}",
        f"warning: tag [TOKEN_REFRESH] (job id 'securities_token_refresh') {UNUSED}",
    ]


def test_the_scheduler_and_the_registry_must_have_the_same_job_ids() -> None:
    report = check(registry(), scheduled_ids=["auto_rebalance", "update_positions", "rebalance_v2"])
    assert [str(f) for f in report.findings] == [
        "error: the scheduler has job 'rebalance_v2', which has no tag in the registry",
        "error: tag [TOKEN_REFRESH] (job id 'securities_token_refresh') is not scheduled",
    ]
    assert report.scheduled_ids == ["auto_rebalance", "update_positions", "rebalance_v2"]


def test_a_tag_name_is_not_a_scheduler_job_id() -> None:
    report = check(registry(), scheduled_ids=["AUTO_REBAL", "update_positions", "securities_token_refresh"])
    assert [str(f) for f in report.findings] == [
        "error: the scheduler has job 'AUTO_REBAL', which has no tag in the registry",
        "error: tag [AUTO_REBAL] (job id 'auto_rebalance') is not scheduled",
    ]


def test_a_job_id_to_tag_mapping_is_checked_entry_by_entry() -> None:
    mapping = {
        "auto_rebalance": "[AUTO_REBAL]",
        "update_positions": "PNL_CALC",
        "rebalance_again": "[AUTO_REBAL]",
        "bad": "[auto-rebal]",
        "long": "[A_NAME_FAR_TOO_LONG]",
        "tagged": JobTag("TOKEN_REFRESH", "tagged", "refresh", Interval(300)),
    }
    jobs, findings = registry_from_object(mapping, "myapp:JOB_TAG_MAP")
    assert [str(f) for f in findings] == [
        "error: myapp:JOB_TAG_MAP['rebalance_again']: Duplicate tag 'AUTO_REBAL': it is already defined for "
        "job id 'auto_rebalance'; choose another name",
        "error: myapp:JOB_TAG_MAP['bad']: Invalid tag '[auto-rebal]': use upper-case letters, digits and "
        "'_', starting with a letter (at most 15), e.g. 'AUTO_REBAL'",
        "error: myapp:JOB_TAG_MAP['long']: Invalid tag 'A_NAME_FAR_TOO_LONG': 19 characters is too long; use "
        "upper-case letters, digits and '_', starting with a letter (at most 15), e.g. 'A_NAME_FAR_TOO'",
    ]
    assert [(t.name, t.job_id, str(t.schedule)) for t in jobs] == [
        ("AUTO_REBAL", "auto_rebalance", "manual"),
        ("PNL_CALC", "update_positions", "manual"),
        ("TOKEN_REFRESH", "tagged", "every 5 min"),
    ]


def test_something_that_is_no_registry_is_reported() -> None:
    jobs, findings = registry_from_object(42, "myapp:JOBS")
    assert (len(jobs), findings) == (
        0,
        [
            Finding(
                "error",
                "myapp:JOBS is of type int: point it at a TagRegistry or at a mapping of job id to tag such as "
                "{'auto_rebalance': '[AUTO_REBAL]'}",
            )
        ],
    )
