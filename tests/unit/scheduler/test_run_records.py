"""Run records' outcomes: one enum, read by the dashboards and alert rules."""

from __future__ import annotations

from otel_jobtags.grafana import _runqueries
from otel_jobtags.scheduler import Outcome


def test_run_outcomes_are_one_enum_that_dashboards_and_alerts_read() -> None:
    assert [(o.name, o.value, str(o)) for o in Outcome] == [
        ("SUCCESS", "success", "success"),
        ("ERROR", "error", "error"),
        ("CANCELLED", "cancelled", "cancelled"),
        ("MISSED", "missed", "missed"),
        ("SKIPPED", "skipped", "skipped"),
    ]
    assert (_runqueries.SUCCESS, _runqueries.ERROR, _runqueries.MISSED, _runqueries.SKIPPED) == (
        Outcome.SUCCESS,
        Outcome.ERROR,
        Outcome.MISSED,
        Outcome.SKIPPED,
    )
