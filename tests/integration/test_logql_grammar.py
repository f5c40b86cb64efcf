"""Every generated LogQL expression parses with Grafana's own LogQL grammar.

The dashboards' queries are checked after Grafana's variable substitution,
with the values the variables have when a dashboard opens; the alert rules'
queries contain no variables at all (a variable would make the substitution
fail).
"""

from __future__ import annotations

from typing import Any

import pytest
from support.grafana import panel_queries, rule_queries, variable_values
from support.logql import assert_logql_parses, check_logql, substitute_grafana_variables

from otel_jobtags.demo import JOBS
from otel_jobtags.grafana import generate_alert_rules, generate_dashboards


@pytest.mark.parametrize("job_tag_as", ["index_label", "structured_metadata"])
def test_every_dashboard_query_parses_after_variable_substitution(job_tag_as: Any) -> None:
    queries = []
    for dashboard in generate_dashboards(JOBS, job_tag_as=job_tag_as).values():
        values = variable_values(dashboard)
        queries += [substitute_grafana_variables(expr, values) for _, expr in panel_queries(dashboard)]
    assert len(queries) == 22
    assert_logql_parses(queries)


@pytest.mark.parametrize("job_tag_as", ["index_label", "structured_metadata"])
def test_every_alert_rule_query_parses(job_tag_as: Any) -> None:
    queries = [
        substitute_grafana_variables(expr, {})
        for _, expr in rule_queries(generate_alert_rules(JOBS, job_tag_as=job_tag_as))
    ]
    assert len(queries) == 13 * (1 + 3 + 1)  # per job: late; failing (3 queries); overlapping
    assert_logql_parses(queries)


def test_a_broken_query_is_caught() -> None:
    # The check above would pass vacuously if the checker accepted anything.
    results = check_logql(['sum(count_over_time({job_tag="X"} [1m])'])
    assert not results[0].ok


@pytest.mark.parametrize("job_tag_as", ["index_label", "structured_metadata"])
def test_every_query_the_loki_client_builds_parses_even_with_hostile_values(job_tag_as: Any) -> None:
    from otel_jobtags.loki import build_logql

    hostile = [
        '"} | line_format "{{.x}}"',
        "back\\slash",
        "new\nline\ttab",
        "`tick`",
        "(?i).*[x]+$",
        "✅ 리밸런싱",
    ]
    queries = [build_logql(None, registry=JOBS, job_tag_as=job_tag_as)]
    for job in ("auto_rebalance", "QUEUE_REBAL"):
        for value in hostile:
            for ignore_case in (False, True):
                queries.append(
                    build_logql(
                        job,
                        registry=JOBS,
                        service_name=value,
                        level="warning",
                        contains=value,
                        ignore_case=ignore_case,
                        job_tag_as=job_tag_as,
                    )
                )
    assert_logql_parses(queries)
