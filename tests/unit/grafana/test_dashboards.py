"""Loki field names, the job selector, and the generated Grafana dashboards."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from support.grafana import REPO, grafana_custom_options, panel_queries, small_registry

from otel_jobtags import ConfigError, TagRegistry
from otel_jobtags.demo import JOBS
from otel_jobtags.grafana import (
    JOB_DASHBOARD_UID,
    LOKI_DATASOURCE_UID,
    OVERVIEW_DASHBOARD_UID,
    RUNS_PANEL_ID,
    _runqueries,
    generate_dashboards,
    job_dashboard_url,
    job_selector,
    loki_field,
    render_dashboard,
    stale_dashboards,
    write_dashboards,
)

# ---------------------------------------------------------------- loki_field


@pytest.mark.parametrize(
    ("attribute", "field"),
    [
        ("job.tag", "job_tag"),
        ("job.id", "job_id"),
        ("job.run_id", "job_run_id"),
        ("job.duration_ms", "job_duration_ms"),
        ("service.name", "service_name"),
        ("exception.stacktrace", "exception_stacktrace"),
        ("http.request.method", "http_request_method"),
        ("k8s-pod/name:x", "k8s_pod_name_x"),
        ("Capitals.Kept", "Capitals_Kept"),
        ("label_with_foreign_characters_字符", "label_with_foreign_characters___"),
        ("2fa.code", "key_2fa_code"),
        ("_private", "key_private"),
        (".hidden", "key_hidden"),
        ("__reserved", "__reserved"),
        ("job_tag", "job_tag"),
    ],
)
def test_loki_field_applies_lokis_otlp_name_rule(attribute: str, field: str) -> None:
    assert loki_field(attribute) == field


def test_loki_field_rejects_an_empty_name() -> None:
    with pytest.raises(
        ConfigError, match=r"^Invalid attribute name '': give an OpenTelemetry attribute name"
    ):
        loki_field("")


def test_run_record_fields_are_loki_names_of_those_the_scheduler_integration_writes() -> None:
    assert (_runqueries.OUTCOME, _runqueries.DURATION_MS, _runqueries.RUNS) == (
        "job_outcome",
        "job_duration_ms",
        "job_runs",
    )


# ---------------------------------------------------------------- job_selector


@pytest.mark.parametrize(
    ("kwargs", "selector"),
    [
        ({}, '{service_name=~"$service", job_tag="AUTO_REBAL"}'),
        ({"regex": True}, '{service_name=~"$service", job_tag=~"AUTO_REBAL"}'),
        ({"service": ".+"}, '{service_name=~".+", job_tag="AUTO_REBAL"}'),
        ({"job_tag_as": "index_label"}, '{service_name=~"$service", job_tag="AUTO_REBAL"}'),
        ({"job_tag_as": "structured_metadata"}, '{service_name=~"$service"} | job_tag="AUTO_REBAL"'),
        (
            {"job_tag_as": "structured_metadata", "regex": True, "service": "web"},
            '{service_name=~"web"} | job_tag=~"AUTO_REBAL"',
        ),
    ],
)
def test_job_selector_puts_the_job_in_the_stream_selector_or_a_metadata_filter(
    kwargs: dict[str, Any], selector: str
) -> None:
    assert job_selector("AUTO_REBAL", **kwargs) == selector


def test_job_selector_escapes_quotes_and_backslashes() -> None:
    assert job_selector('a"b\\c', service='x"y') == '{service_name=~"x\\"y", job_tag="a\\"b\\\\c"}'


def test_job_selector_rejects_an_unknown_storage() -> None:
    with pytest.raises(
        ConfigError, match=r"^Invalid job_tag_as='label': use 'index_label' or 'structured_metadata'$"
    ):
        job_selector("X", job_tag_as="label")  # type: ignore[arg-type]


# ---------------------------------------------------------------- queries, exactly

OVERVIEW_QUERIES = [
    (
        "Log volume per job and level",
        'sum by (job_tag, detected_level) (count_over_time({service_name=~"$service", job_tag=~"$job"} '
        "[$__auto]))",
    ),
    (
        "Errors per job",
        'sum by (job_tag) (count_over_time({service_name=~"$service", job_tag=~"$job"} '
        '| detected_level=~"error|critical|fatal" [$__auto]))',
    ),
    (
        "Failed runs per job",
        'sum by (job_tag) (count_over_time({service_name=~"$service", job_tag=~"$job"} '
        '| job_outcome="error" [$__auto]))',
    ),
    (
        "Job runs",
        'sum by (job_tag) (sum_over_time({service_name=~"$service", job_tag=~"$job"} | job_outcome!="" '
        '| label_format run_count=`{{ .job_runs | default "1" }}` | unwrap run_count [$__range]))',
    ),
    (
        "Job runs",
        'sum by (job_tag) (count_over_time({service_name=~"$service", job_tag=~"$job"} '
        '| job_outcome="error" [$__range]))',
    ),
    (
        "Job runs",
        'avg_over_time({service_name=~"$service", job_tag=~"$job"} | job_outcome=~"success|error" '
        '| unwrap job_duration_ms | __error__="" [$__range]) by (job_tag)',
    ),
    (
        "Job runs",
        'quantile_over_time(0.95, {service_name=~"$service", job_tag=~"$job"} | job_outcome=~"success|error" '
        '| unwrap job_duration_ms | __error__="" [$__range]) by (job_tag)',
    ),
    (
        "Job runs",
        'max by (job_tag) (max_over_time({service_name=~"$service", job_tag=~"$job"} | job_outcome="success" '
        "| label_format run_time_ms=`{{ __timestamp__ | unixEpochMillis }}` "
        "| unwrap run_time_ms [$__range]))",
    ),
    (
        "Run duration per job (p95)",
        'quantile_over_time(0.95, {service_name=~"$service", job_tag=~"$job"} | job_outcome=~"success|error" '
        '| unwrap job_duration_ms | __error__="" [$__auto]) by (job_tag)',
    ),
    ("Latest lines", '{service_name=~"$service", job_tag=~"$job"}'),
]

JOB_QUERIES = [
    (
        "Runs",
        'sum(sum_over_time({service_name=~"$service", job_tag="$job"} | job_outcome!="" '
        '| label_format run_count=`{{ .job_runs | default "1" }}` | unwrap run_count [$__range]))',
    ),
    (
        "Failed runs",
        'sum(count_over_time({service_name=~"$service", job_tag="$job"} | job_outcome="error" [$__range]))',
    ),
    (
        "Last success",
        'max(max_over_time({service_name=~"$service", job_tag="$job"} | job_outcome="success" '
        "| label_format run_time_ms=`{{ __timestamp__ | unixEpochMillis }}` "
        "| unwrap run_time_ms [$__range]))",
    ),
    (
        "Run duration (p95)",
        'quantile_over_time(0.95, {service_name=~"$service", job_tag="$job"} | job_outcome=~"success|error" '
        '| unwrap job_duration_ms | __error__="" [$__range]) by (job_tag)',
    ),
    (
        "Levels over time",
        'sum by (detected_level) (count_over_time({service_name=~"$service", job_tag="$job"} [$__auto]))',
    ),
    (
        "Runs by outcome",
        'sum by (job_outcome) (sum_over_time({service_name=~"$service", job_tag="$job"} | job_outcome!="" '
        '| label_format run_count=`{{ .job_runs | default "1" }}` | unwrap run_count [$__auto]))',
    ),
    (
        "Errors with tracebacks",
        '{service_name=~"$service", job_tag="$job"} | detected_level=~"error|critical|fatal" '
        '| line_format "{{ __line__ }}{{ with .exception_stacktrace }}\\n{{ . }}{{ end }}"',
    ),
    ("Logs", '{service_name=~"$service", job_tag="$job"}'),
    (
        "Run duration",
        'avg_over_time({service_name=~"$service", job_tag="$job"} | job_outcome=~"success|error" '
        '| unwrap job_duration_ms | __error__="" [$__auto]) by (job_tag)',
    ),
    (
        "Run duration",
        'quantile_over_time(0.95, {service_name=~"$service", job_tag="$job"} | job_outcome=~"success|error" '
        '| unwrap job_duration_ms | __error__="" [$__auto]) by (job_tag)',
    ),
    ("Run records", '{service_name=~"$service", job_tag="$job"} | job_outcome!=""'),
    (
        "Runs by process",
        'sum by (service_instance_id) (count_over_time({service_name=~"$service", job_tag="$job"} '
        '| job_outcome!="" [$__auto]))',
    ),
]


def test_generated_queries_with_job_tag_as_index_label() -> None:
    dashboards = generate_dashboards(small_registry())
    assert panel_queries(dashboards[OVERVIEW_DASHBOARD_UID]) == OVERVIEW_QUERIES
    assert panel_queries(dashboards[JOB_DASHBOARD_UID]) == JOB_QUERIES


def test_generated_queries_with_job_tag_as_structured_metadata_filter_right_after_the_selector() -> None:
    def as_metadata(queries: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [
            (
                title,
                expr.replace(', job_tag=~"$job"}', '} | job_tag=~"$job"').replace(
                    ', job_tag="$job"}', '} | job_tag="$job"'
                ),
            )
            for title, expr in queries
        ]

    dashboards = generate_dashboards(small_registry(), job_tag_as="structured_metadata")
    assert panel_queries(dashboards[OVERVIEW_DASHBOARD_UID]) == as_metadata(OVERVIEW_QUERIES)
    assert panel_queries(dashboards[JOB_DASHBOARD_UID]) == as_metadata(JOB_QUERIES)


@pytest.mark.parametrize("job_tag_as", ["index_label", "structured_metadata"])
def test_every_query_selects_by_the_job_tag_field_and_the_service(job_tag_as: Any) -> None:
    for dashboard in generate_dashboards(JOBS, job_tag_as=job_tag_as).values():
        for title, expr in panel_queries(dashboard):
            assert re.search(r'job_tag=~?"\$job"', expr), title
            assert 'service_name=~"$service"' in expr, title


# ---------------------------------------------------------------- variables and links


def test_job_variable_of_the_per_job_view_offers_each_tag_with_its_description() -> None:
    variable = generate_dashboards(small_registry())[JOB_DASHBOARD_UID]["templating"]["list"][1]
    assert grafana_custom_options(variable["query"]) == [
        ("AUTO_REBAL — automatic portfolio rebalancing", "AUTO_REBAL"),
        ("PRICE_CACHE — refresh the price cache, fast", "PRICE_CACHE"),
        ("REPORT", "REPORT"),
    ]
    assert variable["options"] == [
        {"selected": True, "text": "AUTO_REBAL — automatic portfolio rebalancing", "value": "AUTO_REBAL"},
        {"selected": False, "text": "PRICE_CACHE — refresh the price cache, fast", "value": "PRICE_CACHE"},
        {"selected": False, "text": "REPORT", "value": "REPORT"},
    ]
    assert (variable["type"], variable["name"], variable["multi"], variable["includeAll"]) == (
        "custom",
        "job",
        False,
        False,
    )
    assert variable["current"] == {
        "selected": True,
        "text": "AUTO_REBAL — automatic portfolio rebalancing",
        "value": "AUTO_REBAL",
    }


def test_job_variable_of_the_overview_means_every_registered_job_by_default() -> None:
    variable = generate_dashboards(small_registry())[OVERVIEW_DASHBOARD_UID]["templating"]["list"][1]
    assert (variable["multi"], variable["includeAll"]) == (True, True)
    assert variable["allValue"] == "AUTO_REBAL|PRICE_CACHE|REPORT"
    assert variable["current"] == {"selected": True, "text": ["All"], "value": ["$__all"]}
    assert [value for _, value in grafana_custom_options(variable["query"])] == [
        "AUTO_REBAL",
        "PRICE_CACHE",
        "REPORT",
    ]


def test_service_variable_lists_service_name_and_defaults_to_every_service() -> None:
    for dashboard in generate_dashboards(small_registry()).values():
        variable = dashboard["templating"]["list"][0]
        assert variable == {
            "allValue": ".+",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "datasource": {"type": "loki", "uid": "loki"},
            "definition": "label_values(service_name)",
            "description": "The application(s), by the service.name resource attribute.",
            "hide": 0,
            "includeAll": True,
            "label": "Service",
            "multi": True,
            "name": "service",
            "options": [],
            "query": {
                "label": "service_name",
                "refId": "LokiVariableQueryEditor-VariableQuery",
                "stream": "",
                "type": 1,
            },
            "refresh": 2,
            "regex": "",
            "skipUrlSync": False,
            "sort": 1,
            "type": "query",
        }


def _links(value: Any) -> list[str]:
    """Every data-link URL anywhere inside a panel."""
    if isinstance(value, dict):
        found = [value["url"]] if "url" in value and "title" in value else []
        return found + [url for item in value.values() for url in _links(item)]
    if isinstance(value, list):
        return [url for item in value for url in _links(item)]
    return []


def test_overview_links_every_job_to_its_per_job_view() -> None:
    overview = generate_dashboards(small_registry())[OVERVIEW_DASHBOARD_UID]
    by_title = {panel["title"]: _links(panel) for panel in overview["panels"]}
    carry = "&${service:queryparam}&${__url_time_range}"
    series = f"/d/{JOB_DASHBOARD_UID}?var-job=${{__field.labels.job_tag}}{carry}"
    assert by_title["Log volume per job and level"] == [series]
    assert by_title["Errors per job"] == [series]
    assert by_title["Failed runs per job"] == [series]
    assert by_title["Run duration per job (p95)"] == [series]
    assert by_title["Job runs"] == [f"/d/{JOB_DASHBOARD_UID}?var-job=${{__value.raw}}{carry}"]
    jobs_text = next(p for p in overview["panels"] if p["title"] == "Jobs")["options"]["content"]
    assert (
        f"| AUTO_REBAL | [\\[AUTO_REBAL\\]](/d/{JOB_DASHBOARD_UID}?var-job=AUTO_REBAL"
        "&${service:queryparam}&from=${__from}&to=${__to}) | auto_rebalance | automatic portfolio "
        "rebalancing | hourly at minute 17 |"
    ) in jobs_text.splitlines()


def test_dashboards_link_to_each_other() -> None:
    dashboards = generate_dashboards(small_registry())
    assert [link["url"] for link in dashboards[OVERVIEW_DASHBOARD_UID]["links"]] == [
        f"/d/{JOB_DASHBOARD_UID}"
    ]
    assert [link["url"] for link in dashboards[JOB_DASHBOARD_UID]["links"]] == [
        f"/d/{OVERVIEW_DASHBOARD_UID}"
    ]
    assert job_dashboard_url("AUTO_REBAL") == "/d/otel-jobtags-job?var-job=AUTO_REBAL"


def test_alert_rules_link_to_the_runs_panel_of_the_per_job_view() -> None:
    panels = generate_dashboards(small_registry())[JOB_DASHBOARD_UID]["panels"]
    assert [panel["title"] for panel in panels if panel["id"] == RUNS_PANEL_ID] == ["Runs by outcome"]


# ---------------------------------------------------------------- provisioning structure


def _check_dashboard(dashboard: dict[str, Any]) -> None:
    assert isinstance(dashboard["uid"], str) and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert dashboard["id"] is None  # provisioning assigns the database id
    assert isinstance(dashboard["schemaVersion"], int) and 39 <= dashboard["schemaVersion"] <= 42
    assert isinstance(dashboard["templating"]["list"], list)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert isinstance(panel["type"], str) and isinstance(panel["title"], str)
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] >= 1 and pos["x"] + pos["w"] <= 24 and pos["h"] >= 1
        mine = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] == "text":
            continue
        assert panel["datasource"] == {"type": "loki", "uid": LOKI_DATASOURCE_UID}
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs)
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "loki", "uid": LOKI_DATASOURCE_UID}
            assert isinstance(target["expr"], str) and target["expr"]
            assert target["queryType"] in ("range", "instant")


def test_dashboards_have_the_structure_grafana_provisions() -> None:
    dashboards = generate_dashboards(JOBS)
    assert sorted(dashboards) == [JOB_DASHBOARD_UID, OVERVIEW_DASHBOARD_UID]
    for uid, dashboard in dashboards.items():
        assert dashboard["uid"] == uid
        _check_dashboard(dashboard)


def test_rendering_is_deterministic_with_sorted_keys() -> None:
    first = render_dashboard(generate_dashboards(JOBS)[JOB_DASHBOARD_UID])
    second = render_dashboard(generate_dashboards(JOBS)[JOB_DASHBOARD_UID])
    assert first == second
    assert first.endswith("}\n")
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_empty_registry_has_no_dashboards() -> None:
    with pytest.raises(ConfigError, match=r"^The registry has no tags: define the jobs before generating"):
        generate_dashboards(TagRegistry())


# ---------------------------------------------------------------- files


def test_write_dashboards_writes_uid_json_files_then_nothing(tmp_path: Any) -> None:
    written = write_dashboards(small_registry(), tmp_path / "dashboards")
    assert [path.name for path in written] == [f"{OVERVIEW_DASHBOARD_UID}.json", f"{JOB_DASHBOARD_UID}.json"]
    assert write_dashboards(small_registry(), tmp_path / "dashboards") == []
    assert stale_dashboards(small_registry(), tmp_path / "dashboards") == []


def test_stale_dashboards_names_changed_and_missing_files(tmp_path: Any) -> None:
    write_dashboards(small_registry(), tmp_path)
    (tmp_path / f"{JOB_DASHBOARD_UID}.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / f"{OVERVIEW_DASHBOARD_UID}.json").unlink()
    assert stale_dashboards(small_registry(), tmp_path) == [
        tmp_path / f"{OVERVIEW_DASHBOARD_UID}.json",
        tmp_path / f"{JOB_DASHBOARD_UID}.json",
    ]


def test_committed_dashboards_match_the_demo_registry() -> None:
    stale = stale_dashboards(JOBS, REPO / "grafana" / "dashboards")
    assert stale == [], "regenerate with: otel-jobtags dashboard"
