"""``otel-jobtags query --local URL`` reads a running serve's JSON API like the Loki client reads Loki."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.serve import LOOPBACK_ANY_PORT, running_server

from otel_jobtags.cli import main
from otel_jobtags.demo import JOBS
from otel_jobtags.errors import StoreError
from otel_jobtags.store import NewRecord, StoreClient

RESOURCE = {"service.name": "shop"}


def record(body: str, ns: int, tag: str, severity: int = 9, **attributes: object) -> NewRecord:
    return NewRecord(ns, severity, "", body, {"job.tag": tag, **attributes}, RESOURCE, "shop")


def local_line(ns: int, level: str, text: str) -> str:
    from datetime import datetime

    moment = datetime.fromtimestamp(ns // 1000 / 1e6)
    return f"{moment:%Y-%m-%d %H:%M:%S},{moment.microsecond // 1000:03d} {level}: {text}"


def test_query_local_prints_a_jobs_records_oldest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time_ns() - 60 * 10**9
    with running_server(tmp_path / "q.db", http=LOOPBACK_ANY_PORT, registry=JOBS) as server:
        assert server.store is not None and server.web_url is not None
        server.store.append(
            [
                record("[AUTO_REBAL] started", now, "AUTO_REBAL"),
                record("[PRICE_CACHE] other job", now + 1000, "PRICE_CACHE"),
                record(
                    "[AUTO_REBAL] Upstream failed",
                    now + 2000,
                    "AUTO_REBAL",
                    17,
                    **{
                        "job.id": "auto_rebalance",
                        "exception.stacktrace": "Traceback (most recent call last):\nE\n",
                    },
                ),
                record("[AUTO_REBAL] upstream fine", now + 3000, "AUTO_REBAL"),
            ]
        )
        argv = [
            "query",
            "--local",
            server.web_url,
            "--registry",
            "otel_jobtags.demo:JOBS",
            "--job",
            "AUTO_REBAL",
        ]
        assert main(argv) == 0
        every = capsys.readouterr().out
        assert main([*argv, "--level", "ERROR"]) == 0
        errors = capsys.readouterr().out
        assert main([*argv, "--contains", "upstream"]) == 0
        exact_case = capsys.readouterr().out
        assert main([*argv, "--contains", "upstream", "--ignore-case", "--limit", "1"]) == 0
        any_case_last = capsys.readouterr().out

    failed = [
        local_line(now + 2000, "ERROR", "[AUTO_REBAL] Upstream failed"),
        "Traceback (most recent call last):",
        "E",
    ]
    assert every.splitlines() == [
        local_line(now, "INFO", "[AUTO_REBAL] started"),
        *failed,
        local_line(now + 3000, "INFO", "[AUTO_REBAL] upstream fine"),
    ]
    assert errors.splitlines() == failed
    assert exact_case.splitlines() == [local_line(now + 3000, "INFO", "[AUTO_REBAL] upstream fine")]
    assert any_case_last.splitlines() == [local_line(now + 3000, "INFO", "[AUTO_REBAL] upstream fine")]


def test_query_local_names_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "query",
        "--local",
        "http://127.0.0.1:9",
        "--registry",
        "otel_jobtags.demo:JOBS",
        "--job",
        "AUTO_REBAL",
    ]

    assert main(argv) == 1
    assert capsys.readouterr().err.startswith(
        "otel-jobtags: error: Cannot reach otel-jobtags serve at http://127.0.0.1:9: "
    )


def test_store_client_sends_the_token(tmp_path: Path) -> None:
    with running_server(
        tmp_path / "t.db", http=LOOPBACK_ANY_PORT, registry=JOBS, token="s3cret-s3cret-s3cret"
    ) as server:
        assert server.store is not None and server.web_url is not None
        server.store.append([record("[AUTO_REBAL] hi", time.time_ns(), "AUTO_REBAL")])

        with pytest.raises(StoreError, match=r"answered HTTP 401"):
            StoreClient(server.web_url).query("AUTO_REBAL", registry=JOBS)
        entries = StoreClient(server.web_url, token="s3cret-s3cret-s3cret").query("AUTO_REBAL", registry=JOBS)

    assert [(e.tag, e.message, e.job_id) for e in entries] == [("AUTO_REBAL", "hi", "auto_rebalance")]
