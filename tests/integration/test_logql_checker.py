"""Behaviour of the LogQL syntax checker (tools/logql-check and support.logql).

Tests that need Node.js skip when it is missing on a developer machine, and
fail when it is missing in CI (``CI=true``), so CI can never pass without
actually checking LogQL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import logql
from support.logql import (
    CHECKER_DIR,
    LogqlCheckerError,
    LogqlCheckerUnavailableError,
    UndefinedGrafanaVariableError,
    assert_logql_parses,
    check_logql,
    ensure_checker_installed,
    substitute_grafana_variables,
)
from support.prerequisites import unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECK_SCRIPT = CHECKER_DIR / "check.mjs"


@pytest.fixture(scope="session")
def node() -> str:
    """Path of Node.js with the grammar installed; skip locally, fail in CI."""
    path = shutil.which("node")
    reason = None
    if path is None:
        reason = "node (Node.js) is not on PATH"
    else:
        try:
            ensure_checker_installed()
        except LogqlCheckerUnavailableError as exc:
            reason = str(exc)
    if reason is not None:
        unavailable(f"the LogQL checker cannot run: {reason}")
    assert path is not None
    return path


VALID_QUERIES = [
    '{service_name="web"} | job_tag="AUTO_REBAL"',
    'sum by (job_tag) (count_over_time({service_name="web"} | job_tag=~".+" [5m]))',
    '{service_name="web"}',
    '{service_name="web", job_tag!="", level=~"error|warn"}',
    '{service_name="web"} |= "rebalance" != "debug" |~ "(?i)timeout"',
    ('{service_name="web"} | json | job_tag="AUTO_REBAL" | line_format "{{.job_tag}} {{.msg}}"'),
    '{service_name="web"} | logfmt | duration > 10s',
    'sum by (job_tag) (rate({service_name="web"} | job_tag!="" [5m])) > 0',
    'topk(5, sum by (job_tag) (count_over_time({service_name="web"}[1h])))',
    ('quantile_over_time(0.95, {service_name="web"} | json | unwrap duration_seconds [5m]) by (job_tag)'),
    '{service_name="web"} | label_format tag=job_tag | drop level',
    '{service_name="web"} | json | keep job_tag, level',
    (
        'sum(count_over_time({service_name="web"} |= "error" [5m]))'
        ' / sum(count_over_time({service_name="web"} [5m]))'
    ),
    '{service_name="web"} # trailing comment',
    ('sum by (job_tag) (\n  count_over_time(\n    {service_name="web"} | job_tag=~".+" [5m]\n  )\n)'),
    'count_over_time({service_name="web"} | job_tag=~".+" [5m] offset 1h)',
    '{service_name="web"} | pattern "<ip> - <_>" | ip="10.0.0.1"',
    '{service_name="web"} |= "caf\u00e9 \U0001f600"',
]


@pytest.mark.parametrize("query", VALID_QUERIES)
def test_valid_query_passes(node: str, query: str) -> None:
    [result] = check_logql([query])
    assert result.ok, result.explain()
    assert result.errors == ()
    assert result.query == query


# query, the (start, end) spans of its error nodes, and text the first
# error message must contain.
BROKEN_QUERIES = [
    pytest.param(
        '{service_name="web" | job_tag=',
        [(20, 20), (30, 30)],
        "missing input before",
        id="unclosed-selector",
    ),
    pytest.param("{service_name=web}", [(14, 17)], 'unexpected "web"', id="unquoted-value"),
    pytest.param('rate({a="b"}[5m]', [(16, 16)], "query ends unexpectedly", id="unclosed-call"),
    pytest.param('rate({a="b"})', [(12, 12)], "missing input before", id="rate-without-range"),
    pytest.param("{}", [(1, 2)], 'unexpected "}"', id="empty-selector"),
    pytest.param('{a="b"} |= ', [(11, 11)], "query ends unexpectedly", id="filter-without-text"),
    pytest.param(
        'sum(rate({a="b"}[5m]) by (job)',
        [(30, 30)],
        "ends unexpectedly",
        id="unbalanced",
    ),
]


@pytest.mark.parametrize(("query", "spans", "first_message"), BROKEN_QUERIES)
def test_broken_query_fails_with_positions(
    node: str, query: str, spans: list[tuple[int, int]], first_message: str
) -> None:
    [result] = check_logql([query])
    assert not result.ok
    assert [(e.start, e.end) for e in result.errors] == spans
    assert first_message in result.errors[0].message
    for error in result.errors:
        assert 0 <= error.start <= error.end <= len(query)


def test_error_span_is_the_offending_text(node: str) -> None:
    query = "{service_name=web}"
    [error] = check_logql([query])[0].errors
    assert query[error.start : error.end] == "web"
    assert error.message.splitlines() == [
        'unexpected "web" in Matcher at line 1, column 15',
        "  {service_name=web}",
        "                ^^^",
    ]


def test_positions_count_code_points_not_utf16_units(node: str) -> None:
    query = '{a="b"} |= "\U0001f600" | x=web'  # the emoji is two UTF-16 units
    [error] = check_logql([query])[0].errors
    assert query[error.start : error.end] == "web"
    assert "column 20" in error.message


def test_multiline_query_reports_line_and_column(node: str) -> None:
    query = '{a="b"}\n  | foo=bar'
    [error] = check_logql([query])[0].errors
    assert query[error.start : error.end] == "bar"
    assert error.message.splitlines() == [
        'unexpected "bar" in Matcher at line 2, column 9',
        "    | foo=bar",
        "          ^^^",
    ]


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_fails(node: str, query: str) -> None:
    [result] = check_logql([query])
    assert not result.ok
    assert [(e.start, e.end, e.message) for e in result.errors] == [(0, len(query), "empty query")]


def test_comment_only_query_fails(node: str) -> None:
    [result] = check_logql(["# nothing but a comment"])
    assert not result.ok


@pytest.mark.parametrize(
    ("query", "bad_text"),
    [
        ('rate({a="b"}[$__interval])', "$"),
        ('rate({a="b"}[$__auto])', "$"),
        ("{job=$job}", "$"),
        ('rate({a="b"}[${__interval}])', "${"),
        ('sum by ($label) (rate({a="b"}[1m]))', "$"),
        ('rate({a="b"}[5m]) > $threshold', "$"),
    ],
)
def test_unsubstituted_variable_outside_a_string_fails_with_a_hint(
    node: str, query: str, bad_text: str
) -> None:
    [result] = check_logql([query])
    assert not result.ok
    first = result.errors[0]
    assert query[first.start : first.end] == bad_text
    assert "Grafana template variables must be replaced" in first.message


def test_variable_inside_a_string_is_just_string_content(node: str) -> None:
    # Why substitute_grafana_variables() is strict: these parse unsubstituted.
    queries = ['{job="$job"}', '{job=~"${job:regex}"}']
    assert all(result.ok for result in check_logql(queries))


def test_batch_keeps_order_and_uses_one_process(node: str, monkeypatch: pytest.MonkeyPatch) -> None:
    queries = [VALID_QUERIES[i % len(VALID_QUERIES)] for i in range(49)] + ["{a=b}"]
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(list(args))
        return real_run(args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "run", counting_run)
    started = time.perf_counter()
    results = check_logql(queries)
    elapsed = time.perf_counter() - started
    assert [result.query for result in results] == queries
    assert [result.ok for result in results] == [True] * 49 + [False]
    assert len(calls) == 1, calls
    assert elapsed < 30, f"checking 50 queries took {elapsed:.1f}s"


def test_assert_logql_parses_lists_every_failure(node: str) -> None:
    assert_logql_parses(VALID_QUERIES[:2])
    with pytest.raises(AssertionError) as excinfo:
        assert_logql_parses(['{a="b"}', "{a=b}", 'rate({a="b"}[5m]'])
    text = str(excinfo.value)
    assert text.startswith("2 of 3 LogQL queries do not parse")
    assert "'{a=b}'" in text
    assert 'rate({a="b"}[5m]' in text


def test_check_logql_rejects_empty_and_non_string_input() -> None:
    with pytest.raises(ValueError, match="no LogQL queries"):
        check_logql([])
    with pytest.raises(TypeError, match="query 1 must be str"):
        check_logql(['{a="b"}', 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a single string"):
        check_logql('{a="b"}')


def test_missing_node_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(LogqlCheckerUnavailableError, match=r"node .*not on PATH"):
        check_logql(['{a="b"}'])


def test_missing_npm_raises_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _copy_checker_sources(tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(LogqlCheckerUnavailableError, match="npm is not on PATH"):
        ensure_checker_installed(tmp_path)


def _copy_checker_sources(target: Path) -> None:
    for name in ("package.json", "package-lock.json", ".npmrc", "check.mjs"):
        shutil.copy2(CHECKER_DIR / name, target / name)


def test_install_is_detected_as_stale_when_versions_differ(tmp_path: Path) -> None:
    _copy_checker_sources(tmp_path)
    assert not logql._installed(tmp_path)
    lock = json.loads((tmp_path / "package-lock.json").read_text())
    for path, entry in lock["packages"].items():
        if path:
            (tmp_path / path).mkdir(parents=True)
            manifest = {"version": entry["version"]}
            (tmp_path / path / "package.json").write_text(json.dumps(manifest))
    assert logql._installed(tmp_path)
    (tmp_path / "node_modules/@lezer/lr/package.json").write_text('{"version": "0.0.1"}')
    assert not logql._installed(tmp_path)


def test_fresh_checkout_installs_the_grammar_itself(node: str, tmp_path: Path) -> None:
    _copy_checker_sources(tmp_path)
    assert not (tmp_path / "node_modules").exists()
    [result] = check_logql(['{service_name="web"}'], checker_dir=tmp_path)
    assert result.ok
    installed = tmp_path / "node_modules/@grafana/lezer-logql/package.json"
    assert json.loads(installed.read_text())["version"] == "0.4.2"


def test_checker_failure_is_reported_not_parsed(
    node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_checker_sources(tmp_path)
    (tmp_path / "check.mjs").write_text("process.stderr.write('boom'); process.exitCode = 3;\n")
    monkeypatch.setattr(logql, "ensure_checker_installed", lambda checker_dir: None)
    with pytest.raises(LogqlCheckerError, match="exited 3: boom"):
        check_logql(['{a="b"}'], checker_dir=tmp_path)


# --- the command-line interface of check.mjs ------------------------------


def _run_cli(node: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(CHECK_SCRIPT), *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def test_cli_exit_0_when_all_parse(node: str) -> None:
    completed = _run_cli(node, stdin=json.dumps(VALID_QUERIES[:2]))
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report == [{"query": q, "ok": True, "errors": []} for q in VALID_QUERIES[:2]]


def test_cli_exit_1_when_any_fails(node: str) -> None:
    completed = _run_cli(node, stdin=json.dumps(['{a="b"}', "{a=b}"]))
    assert completed.returncode == 1
    report = json.loads(completed.stdout)
    assert [item["ok"] for item in report] == [True, False]
    assert set(report[1]["errors"][0]) == {"from", "to", "message"}


def test_cli_reads_file_arguments_in_order(node: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(['{a="b"}']))
    second.write_text(json.dumps(["{a=b}", '{c="d"}']))
    completed = _run_cli(node, str(first), str(second))
    assert completed.returncode == 1
    assert [item["query"] for item in json.loads(completed.stdout)] == [
        '{a="b"}',
        "{a=b}",
        '{c="d"}',
    ]


@pytest.mark.parametrize(
    ("stdin", "args", "stderr"),
    [
        ("", (), "stdin is empty"),
        ("[]", (), "no queries to check"),
        ('{"q": "{a=\\"b\\"}"}', (), "must hold a JSON array"),
        ('["{a=\\"b\\"}", 1]', (), "item 1 is number, not a string"),
        ("not json", (), "not valid JSON"),
        ("", ("/nonexistent/queries.json",), "cannot read /nonexistent/queries.json"),
        ("", ("--frobnicate",), "unknown option --frobnicate"),
    ],
)
def test_cli_exit_2_on_usage_errors(node: str, stdin: str, args: tuple[str, ...], stderr: str) -> None:
    completed = _run_cli(node, *args, stdin=stdin)
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert stderr in completed.stderr


def test_cli_help(node: str) -> None:
    completed = _run_cli(node, "--help")
    assert completed.returncode == 0
    assert completed.stdout.startswith("usage: check.mjs")


def test_cli_exit_2_when_grammar_not_installed(node: str, tmp_path: Path) -> None:
    _copy_checker_sources(tmp_path)
    completed = subprocess.run(
        [node, str(tmp_path / "check.mjs")],
        input='["{a=\\"b\\"}"]',
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "npm ci" in completed.stderr


# --- Grafana template variable substitution --------------------------------

SAMPLE_VALUES = {"job": "AUTO_REBAL", "service": "web", "label": "job_tag"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('{job_tag="$job"}', '{job_tag="AUTO_REBAL"}'),
        ('{job_tag="${job}"}', '{job_tag="AUTO_REBAL"}'),
        ('{job_tag=~"${job:regex}"}', '{job_tag=~"AUTO_REBAL"}'),
        ('{job_tag=~"${job:pipe}"}', '{job_tag=~"AUTO_REBAL"}'),
        ('{job_tag="${job.text}"}', '{job_tag="AUTO_REBAL"}'),
        ('{job_tag="[[job]]"}', '{job_tag="AUTO_REBAL"}'),
        ('{job_tag=~"[[job:regex]]"}', '{job_tag=~"AUTO_REBAL"}'),
        ('{job_tag="${job}_2"}', '{job_tag="AUTO_REBAL_2"}'),
        ('{a="$service"} | job_tag="$job"', '{a="web"} | job_tag="AUTO_REBAL"'),
        ("sum by ($label) (x)", "sum by (job_tag) (x)"),
        ('rate({a="b"}[$__interval])', 'rate({a="b"}[1m])'),
        ('rate({a="b"}[$__auto])', 'rate({a="b"}[1m])'),
        ('rate({a="b"}[$__range])', 'rate({a="b"}[1m])'),
        ('rate({a="b"}[$__rate_interval])', 'rate({a="b"}[1m])'),
        ('rate({a="b"}[${__interval}])', 'rate({a="b"}[1m])'),
        ("$__interval_ms $__range_ms $__range_s", "60000 60000 60"),
        ("$__from $__to", "1700000000000 1700003600000"),
        # A "$" that starts no variable stays as it is.
        ('{a="b"} |~ "done$"', '{a="b"} |~ "done$"'),
        ('{a="b"} |~ "^x$|^y$"', '{a="b"} |~ "^x$|^y$"'),
        ('{a="b"} |~ "[[:alpha:]]+"', '{a="b"} |~ "[[:alpha:]]+"'),
        ('{a="b"}', '{a="b"}'),
    ],
)
def test_substitute_grafana_variables(query: str, expected: str) -> None:
    assert substitute_grafana_variables(query, SAMPLE_VALUES) == expected


def test_given_values_override_builtin_ones() -> None:
    query = 'rate({a="b"}[$__interval])'
    assert substitute_grafana_variables(query, {"__interval": "5m"}) == 'rate({a="b"}[5m])'


def test_undefined_variables_are_an_error() -> None:
    query = '{a="$service", b="$nope"} | c="${other:regex}" | d="$nope"'
    with pytest.raises(UndefinedGrafanaVariableError) as excinfo:
        substitute_grafana_variables(query, SAMPLE_VALUES)
    assert excinfo.value.names == ("nope", "other")
    assert "$nope, $other" in str(excinfo.value)


def test_longest_variable_name_is_used() -> None:
    with pytest.raises(UndefinedGrafanaVariableError) as excinfo:
        substitute_grafana_variables('{a="$job_tag"}', {"job": "x"})
    assert excinfo.value.names == ("job_tag",)


def test_non_strict_substitution_leaves_unknown_variables() -> None:
    query = '{a="$service"} | line_format "{{ $x := .a }}{{ $x }}"'
    assert substitute_grafana_variables(query, SAMPLE_VALUES, strict=False) == (
        '{a="web"} | line_format "{{ $x := .a }}{{ $x }}"'
    )


def test_values_must_be_strings() -> None:
    with pytest.raises(TypeError, match="value for 'job' must be str"):
        substitute_grafana_variables("$job", {"job": 5})  # type: ignore[dict-item]


def test_substituted_dashboard_queries_parse(node: str) -> None:
    templates = [
        ('sum by (job_tag) (count_over_time({service_name="$service"} | job_tag=~"${job:regex}" [$__auto]))'),
        'sum by ($label) (rate({service_name="$service"}[$__rate_interval]))',
        '{service_name="$service"} | job_tag="$job"',
        'count_over_time({service_name="$service"} |= "error" [$__interval]) > 0',
    ]
    queries = [substitute_grafana_variables(t, SAMPLE_VALUES) for t in templates]
    assert_logql_parses(queries)


# --- CI must not pass without the checker ----------------------------------


# Runs one node-dependent test in a child pytest, free of the suite's addopts.
PYTEST_ONE_NODE_TEST = [
    sys.executable,
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    "-o",
    "pythonpath=tests",
    "-o",
    "addopts=",
    f"--rootdir={REPO_ROOT}",
    f"{Path(__file__).relative_to(REPO_ROOT)}::test_cli_help",
]


@pytest.mark.parametrize(("ci", "expected_exit"), [("true", 1), ("", 0)])
def test_missing_node_fails_in_ci_and_skips_elsewhere(tmp_path: Path, ci: str, expected_exit: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PATH"] = str(tmp_path)  # an empty directory: no node, no npm
    env["CI"] = ci
    completed = subprocess.run(
        PYTEST_ONE_NODE_TEST,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == expected_exit, output
    assert ("1 error" if ci else "1 skipped") in output
