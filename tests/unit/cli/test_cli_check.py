"""`otel-jobtags check`: registry, source and scheduler checks from the command line."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_jobtags import cli
from otel_jobtags.check import FEATURE_MARKER


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_JOBTAGS_REGISTRY", raising=False)


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """A folder on sys.path, the current directory; its modules are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("ck_"):
            del sys.modules[name]


UNUSED = "is registered but no scanned source uses it"


def write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(textwrap.dedent(text), encoding="utf-8")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


JOBS_MODULE = f"""\
    # {FEATURE_MARKER}
    from otel_jobtags import TagRegistry

    JOBS = TagRegistry()
    JOBS.define("AUTO_REBAL", "auto_rebalance")
    JOBS.define("PNL_CALC", "update_positions")
    """

TASKS_MODULE = f"""\
    # {FEATURE_MARKER}
    import logging

    from otel_jobtags import format_background_log

    from ck_jobs import JOBS


    def rebalance():
        logging.info(format_background_log(JOBS.AUTO_REBAL, "start"))


    def pnl():
        logging.info("[PNL_CALC] done")
    """


def test_a_consistent_project_passes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "ck_jobs.py", JOBS_MODULE)
    write(project, "ck_tasks.py", TASKS_MODULE)
    write(
        project,
        "ck_sched.py",
        f"""\
        # {FEATURE_MARKER}
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler()
        scheduler.add_job(print, "interval", seconds=30, id="auto_rebalance")
        scheduler.add_job(print, "interval", seconds=29, id="update_positions")
        """,
    )
    assert run(capsys, "check", "--registry", "ck_jobs:JOBS", "--scheduler", "ck_sched:scheduler", ".") == (
        0,
        "registry ck_jobs:JOBS (from --registry): 2 tags\n"
        "scheduler ck_sched:scheduler: 2 jobs\n"
        "sources: 3 .py files, 4 job references, the marker in 3 files\n"
        "check passed: 0 errors, 0 warnings\n",
        "",
    )


def test_problems_are_listed_and_exit_1(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "ck_jobs.py", JOBS_MODULE)
    write(project, "ck_tasks.py", TASKS_MODULE.replace("[PNL_CALC]", "[PNL_CALK]"))
    write(
        project,
        "ck_sched.py",
        """\
        from apscheduler.schedulers.background import BackgroundScheduler


        def make_scheduler():
            scheduler = BackgroundScheduler()
            scheduler.add_job(print, "interval", seconds=30, id="auto_rebalance")
            scheduler.add_job(print, "interval", seconds=30, id="send_report")
            return scheduler
        """,
    )
    code, out, err = run(
        capsys, "check", "--registry", "ck_jobs:JOBS", "--scheduler", "ck_sched:make_scheduler"
    )
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        "registry ck_jobs:JOBS (from --registry): 2 tags",
        "scheduler ck_sched:make_scheduler: 2 jobs",
        "sources: 3 .py files, 4 job references, the marker in 2 files",
        f"ck_sched.py: warning: uses [AUTO_REBAL] but carries no '{FEATURE_MARKER}' marker comment",
        "ck_sched.py:7: error: scheduler job id 'send_report' is not in the registry; register it",
        "ck_tasks.py:14: error: tag [PNL_CALK] is not registered (literal [PNL_CALK]); "
        "define it in the registry",
        "error: tag [PNL_CALC] (job id 'update_positions') is registered but no scanned source uses it",
        "error: the scheduler has job 'send_report', which has no tag in the registry",
        "error: tag [PNL_CALC] (job id 'update_positions') is not scheduled",
        "check failed: 5 errors, 1 warning",
    ]


def test_a_registry_that_fails_while_it_is_defined_is_reported(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        project,
        "ck_bad.py",
        """\
        from otel_jobtags import TagRegistry

        JOBS = TagRegistry()
        JOBS.define("AUTO_REBAL", "auto_rebalance")
        JOBS.define("AUTO-REBAL2", "auto_rebalance_2")
        """,
    )
    code, out, _ = run(capsys, "check", "--registry", "ck_bad:JOBS", "ck_bad.py")
    assert code == 1
    assert out.splitlines() == [
        "registry ck_bad:JOBS (from --registry): 0 tags",
        "sources: 1 .py file, 0 job references, the marker in 0 files",
        "error: the registry ck_bad:JOBS cannot be loaded: TagError: Invalid tag 'AUTO-REBAL2': use "
        "upper-case letters, digits and '_', starting with a letter (at most 15), e.g. 'AUTO_REBAL2'",
        "check failed: 1 error, 0 warnings",
    ]


def test_the_seed_s_job_tag_map_is_checked_entry_by_entry(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        project,
        "ck_seed.py",
        """\
        JOB_TAG_MAP = {
            "auto_rebalance": "[AUTO_REBAL]",
            "auto_rebalance_v2": "[AUTO_REBAL]",
        }
        """,
    )
    code, out, _ = run(capsys, "check", "--registry", "ck_seed:JOB_TAG_MAP", "--allow-unused", "ck_seed.py")
    assert (code, out.splitlines()) == (
        1,
        [
            "registry ck_seed:JOB_TAG_MAP (from --registry): 1 tag",
            "sources: 1 .py file, 0 job references, the marker in 0 files",
            "error: ck_seed:JOB_TAG_MAP['auto_rebalance_v2']: Duplicate tag 'AUTO_REBAL': it is already "
            "defined for job id 'auto_rebalance'; choose another name",
            "warning: tag [AUTO_REBAL] (job id 'auto_rebalance') is registered but no scanned source uses it",
            "check failed: 1 error, 1 warning",
        ],
    )


def test_something_that_is_not_a_scheduler_is_reported(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(project, "ck_jobs.py", JOBS_MODULE)
    write(project, "ck_notsched.py", "scheduler = 42\n")
    code, out, _ = run(
        capsys,
        "check",
        "--registry",
        "ck_jobs:JOBS",
        "--scheduler",
        "ck_notsched:scheduler",
        "--allow-unused",
        "ck_jobs.py",
    )
    assert code == 1
    assert out.splitlines() == [
        "registry ck_jobs:JOBS (from --registry): 2 tags",
        "sources: 1 .py file, 0 job references, the marker in 1 file",
        "error: the scheduler ck_notsched:scheduler cannot be read: JobTagsError: ck_notsched:scheduler "
        "is a int, not a scheduler: it has no get_jobs()",
        f"warning: tag [AUTO_REBAL] (job id 'auto_rebalance') {UNUSED}",
        f"warning: tag [PNL_CALC] (job id 'update_positions') {UNUSED}",
        "check failed: 1 error, 2 warnings",
    ]


def test_triggers_that_do_not_follow_the_tags_schedules_are_reported(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        project,
        "ck_sched_jobs.py",
        f"""\
        # {FEATURE_MARKER}
        from apscheduler.schedulers.background import BackgroundScheduler

        from otel_jobtags import TagRegistry

        JOBS = TagRegistry()
        JOBS.define("AUTO_REBAL", "auto_rebalance", "rebalance", "hourly at minute 17")
        JOBS.define("PRICE_CACHE", "price_cache", "prices", "every 5 s")
        JOBS.define("REPORT", "report", "by hand")

        scheduler = BackgroundScheduler()
        scheduler.add_job(print, "cron", minute=18, id="auto_rebalance")
        scheduler.add_job(print, "interval", seconds=5, id="price_cache")
        scheduler.add_job(print, "interval", seconds=60, id="report")
        """,
    )
    code, out, err = run(
        capsys,
        "check",
        "--registry",
        "ck_sched_jobs:JOBS",
        "--scheduler",
        "ck_sched_jobs:scheduler",
        "--allow-unused",
    )
    assert (code, err) == (1, "")
    lines = out.splitlines()
    mismatches = [line for line in lines if "schedule mismatch" in line]
    assert len(mismatches) == 1, lines
    assert mismatches[0].startswith(
        "error: schedule mismatch: [AUTO_REBAL] auto_rebalance: the tag says 'hourly at minute 17', "
        "the scheduler has cron["
    )
    assert lines[-1] == "check failed: 1 error, 0 warnings"
