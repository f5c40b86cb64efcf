"""LogQL over run records: their fields as Loki names them, outcomes, and shared queries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from ..errors import ConfigError
from ..handler import ATTR_JOB_TAG
from ..scheduler import ATTR_JOB_DURATION_MS, ATTR_JOB_OUTCOME, ATTR_JOB_RUNS, Outcome

__all__ = [
    "DURATION_MS",
    "ERROR",
    "ERROR_LEVELS",
    "FINISHED",
    "INSTANCE",
    "JOB_TAG",
    "LEVEL",
    "MISSED",
    "OUTCOME",
    "RUNS",
    "RUN_COUNT",
    "RUN_TIME_MS",
    "SERVICE",
    "SKIPPED",
    "STACKTRACE",
    "SUCCESS",
    "count_processes",
    "count_records",
    "count_runs",
    "last_run_ms",
    "logql_duration",
    "run_duration",
    "run_records",
]
from ._logql import logql_string, loki_field

_ATTR_STACKTRACE = "exception.stacktrace"  # OpenTelemetry semantic conventions

JOB_TAG = loki_field(ATTR_JOB_TAG)
SERVICE = loki_field("service.name")
INSTANCE = loki_field("service.instance.id")  # the process that wrote a record (install() sets one)
OUTCOME = loki_field(ATTR_JOB_OUTCOME)
DURATION_MS = loki_field(ATTR_JOB_DURATION_MS)
RUNS = loki_field(ATTR_JOB_RUNS)
STACKTRACE = loki_field(_ATTR_STACKTRACE)
LEVEL = "detected_level"  # derived by Loki from the severity
RUN_TIME_MS = "run_time_ms"  # made by the queries themselves, see last_run_ms
RUN_COUNT = "run_count"  # made by the queries themselves, see count_runs

SUCCESS = Outcome.SUCCESS.value
ERROR = Outcome.ERROR.value
MISSED = Outcome.MISSED.value
SKIPPED = Outcome.SKIPPED.value
FINISHED = (SUCCESS, ERROR)
"""Outcomes of runs that actually ran, and so have a duration."""
ERROR_LEVELS = ("error", "critical", "fatal")
"""``detected_level`` values of records at ERROR and above."""


def logql_duration(duration: timedelta) -> str:
    """A LogQL/Prometheus duration such as ``26h24m`` or ``1m29s`` (whole seconds, rounded up)."""
    seconds = -(-duration // timedelta(seconds=1))
    if seconds <= 0:
        raise ConfigError(f"Invalid duration {duration}: it must be longer than 0 s")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def run_records(selector: str, outcomes: Iterable[str] = ()) -> str:
    """Narrow a job selector to run records, of the given outcomes (or of any)."""
    wanted = tuple(outcomes)
    if not wanted:
        return f'{selector} | {OUTCOME}!=""'
    if len(wanted) == 1:
        return f"{selector} | {OUTCOME}={logql_string(wanted[0])}"
    return f"{selector} | {OUTCOME}=~{logql_string('|'.join(wanted))}"


def count_records(selector: str, outcomes: Iterable[str], window: str) -> str:
    """How many run records with these outcomes the window holds (one per record)."""
    return f"sum(count_over_time({run_records(selector, outcomes)} [{window}]))"


def count_runs(selector: str, outcomes: Iterable[str], window: str, by: str = "") -> str:
    """How many runs with these outcomes (any, when none given) the window holds.

    The scheduler integration may summarise a frequent job's successes: one
    record standing for ``job_runs`` runs. Every other record is one run.
    """
    wanted = tuple(outcomes)
    if wanted and SUCCESS not in wanted:
        inner = f"count_over_time({run_records(selector, wanted)} [{window}])"
    else:
        one_each = f'label_format {RUN_COUNT}=`{{{{ .{RUNS} | default "1" }}}}`'
        inner = f"sum_over_time({run_records(selector, wanted)} | {one_each} | unwrap {RUN_COUNT} [{window}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def count_processes(selector: str, window: str) -> str:
    """How many processes (``service.instance.id``) wrote a run record of the job in the window."""
    return f"count(sum by ({INSTANCE}) (count_over_time({run_records(selector)} [{window}])))"


def last_run_ms(selector: str, outcome: str, window: str, by: str = "") -> str:
    """The time (ms since the epoch) of the latest run record with ``outcome`` in the window."""
    # The record's own timestamp, made a number with label_format so that
    # max_over_time can take it: LogQL has no "timestamp of the last line".
    stamp = f"label_format {RUN_TIME_MS}=`{{{{ __timestamp__ | unixEpochMillis }}}}`"
    inner = f"max_over_time({run_records(selector, [outcome])} | {stamp} | unwrap {RUN_TIME_MS} [{window}])"
    return f"max by ({by}) ({inner})" if by else f"max({inner})"


def run_duration(selector: str, function: str, window: str, by: str) -> str:
    argument = "0.95, " if function == "quantile_over_time" else ""
    unwrapped = f'{run_records(selector, FINISHED)} | unwrap {DURATION_MS} | __error__=""'
    return f"{function}({argument}{unwrapped} [{window}]) by ({by})"
