"""`otel-jobtags query`: a job's records from Loki, against a fake Loki on a real socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from support.fakeloki import FakeLoki, Reply, fake_loki, stream, streams

from otel_jobtags import cli


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_JOBTAGS_REGISTRY", "OTEL_JOBTAGS_LOKI_URL", "LOKI_URL", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLoki]:
    with fake_loki() as loki:
        yield loki


@pytest.fixture
def loki(server: FakeLoki) -> FakeLoki:
    server.reset()
    return server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


T = datetime(2025, 10, 23, 5, 30, 47, 345000, tzinfo=timezone.utc)
NS = int(T.timestamp()) * 1_000_000_000 + 345_000_000


def test_print_logql_prints_the_escaped_query_without_contacting_loki(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(
        capsys,
        "query",
        "-j",
        "auto_rebalance",
        "--service",
        "web",
        "-l",
        "error",
        "--contains",
        '"} | x',
        "--print-logql",
    ) == (0, '{service_name=~"web", job_tag="AUTO_REBAL"} | severity_number >= 17 |= "\\"} | x"\n', "")


def test_query_prints_loki_s_records_as_log_lines(
    loki: FakeLoki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOKI_URL", loki.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "web")
    monkeypatch.setenv("TZ", "UTC")
    loki.replies.append(
        Reply(
            body=streams(
                stream(
                    {
                        "job_tag": "AUTO_REBAL",
                        "severity_text": "ERROR",
                        "exception_stacktrace": "Traceback:\n  x\n",
                    },
                    (NS, "[AUTO_REBAL] ❌ failed"),
                )
            )
        )
    )
    code, out, err = run(
        capsys, "query", "--job", "AUTO_REBAL", "--since", "2025-10-23T05:00:00+00:00", "--limit", "5"
    )
    assert (code, err) == (0, "")
    assert out == f"{T.astimezone():%Y-%m-%d %H:%M:%S},345 ERROR: [AUTO_REBAL] ❌ failed\nTraceback:\n  x\n"
    [request] = loki.received
    assert request.params == {
        "query": '{service_name=~"web", job_tag="AUTO_REBAL"}',
        "limit": "5",
        "direction": "backward",
        "start": "1761195600000000000",
    }


def test_query_writes_json_lines(loki: FakeLoki, capsys: pytest.CaptureFixture[str]) -> None:
    loki.replies.append(
        Reply(
            body=streams(stream({"job_tag": "PRICE_CACHE", "severity_number": "9"}, (NS, "[PRICE_CACHE] ok")))
        )
    )
    code, out, _ = run(capsys, "query", "--loki", loki.url, "-j", "price_cache", "--format", "json")
    assert (code, [json.loads(line) for line in out.splitlines()]) == (
        0,
        [
            {
                "time": "2025-10-23T05:30:47.345000+00:00",
                "level": "INFO",
                "tag": "PRICE_CACHE",
                "job_id": "price_cache",
                "message": "ok",
                "continuation": [],
                "source": loki.url,
            }
        ],
    )


def test_an_unknown_job_is_refused_before_loki_is_asked(
    loki: FakeLoki, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "query", "--loki", loki.url, "-j", "nope")
    assert (
        code,
        out,
        err.startswith("otel-jobtags: error: Unknown job 'nope': known jobs are precision_cache,"),
    ) == (
        2,
        "",
        True,
    )
    assert loki.received == []


def test_loki_s_error_is_reported_with_exit_1(loki: FakeLoki, capsys: pytest.CaptureFixture[str]) -> None:
    loki.replies.append(
        Reply(400, "max entries limit per query exceeded, limit > max_entries_limit (9000 > 5000)")
    )
    assert run(capsys, "query", "--loki", loki.url, "-j", "auto_rebalance", "--limit", "9000") == (
        1,
        "",
        f"otel-jobtags: error: Loki at {loki.url} answered HTTP 400 Bad Request: max entries limit per query "
        "exceeded, limit > max_entries_limit (9000 > 5000)\n",
    )


def test_no_loki_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "query", "-j", "auto_rebalance") == (
        2,
        "",
        "otel-jobtags: error: No Loki URL: pass one (--loki) or set OTEL_JOBTAGS_LOKI_URL, "
        "e.g. 'http://localhost:3100'\n",
    )
