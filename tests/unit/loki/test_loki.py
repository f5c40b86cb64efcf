"""Querying a job's records in Loki: otel_jobtags.loki, against a fake Loki on a real socket."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from support.fakeloki import FakeLoki, Reply, fake_loki, stream, streams

from otel_jobtags import TagRegistry, UnknownJobError
from otel_jobtags.errors import ConfigError
from otel_jobtags.logfiles import LogEntry
from otel_jobtags.loki import LokiClient, LokiError, _otel_severity, build_logql, logql_regex, logql_string

JOBS = TagRegistry()
AUTO_REBAL = JOBS.define("AUTO_REBAL", "auto_rebalance", "rebalance", "hourly at minute 17")
PRICE_CACHE = JOBS.define("PRICE_CACHE", "price_cache", "refresh prices", "every 5 s")

UNKNOWN = "Unknown job 'nope': known jobs are auto_rebalance, price_cache"

HOSTILE = [
    '"} | line_format "{{.secret}}"',
    "back\\slash\\",
    'quote" | drop',
    "new\nline\r\ttab",
    "`backtick` raw",
    "nul\x00 and del\x7f and c1\x85",
    '} or {service_name=~".+"',
    "unicode ✅ 리밸런싱 \u2028",
    "(?i).*[regex]+$",
]


# -- a strict reader of LogQL tokens, to show values cannot escape their string --


_GO_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}


def _go_unquote(text: str, i: int) -> tuple[str, int]:
    """Read a Go double-quoted string starting at text[i] == '"' (as Loki's parser does)."""
    assert text[i] == '"'
    out: list[str] = []
    i += 1
    while True:
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\n":
            raise ValueError("newline in string")
        if ch == "\\":
            esc = text[i + 1]
            if esc in _GO_ESCAPES:
                out.append(_GO_ESCAPES[esc])
                i += 2
            elif esc == "u":
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
            elif esc == "x":
                out.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
            else:
                raise ValueError(f"unknown escape \\{esc}")
        else:
            out.append(ch)
            i += 1


def tokens(query: str) -> list[tuple[str, str]]:
    """LogQL tokens: ("str", value), ("id", name), ("num", digits) or ("op", text)."""
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(query):
        ch = query[i]
        if ch == " ":
            i += 1
        elif ch == '"':
            value, i = _go_unquote(query, i)
            found.append(("str", value))
        elif ch == "`":
            end = query.index("`", i + 1)
            found.append(("str", query[i + 1 : end]))
            i = end + 1
        elif m := re.match(r"[A-Za-z_][A-Za-z0-9_]*", query[i:]):
            found.append(("id", m.group()))
            i += m.end()
        elif m := re.match(r"\d+", query[i:]):
            found.append(("num", m.group()))
            i += m.end()
        elif m := re.match(r"\|=|\|~|!=|!~|=~|>=|<=|[{}|=,<>]", query[i:]):
            found.append(("op", m.group()))
            i += m.end()
        else:
            raise ValueError(f"unexpected {ch!r} at {i} in {query!r}")
    return found


# -- building queries ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"job": "auto_rebalance"}, '{service_name=~".+", job_tag="AUTO_REBAL"}'),
        ({"job": "[AUTO_REBAL]", "service_name": "web"}, '{service_name=~"web", job_tag="AUTO_REBAL"}'),
        (
            {"job": "AUTO_REBAL", "service_name": "web", "level": "error"},
            '{service_name=~"web", job_tag="AUTO_REBAL"} | severity_number >= 17',
        ),
        (
            {"job": PRICE_CACHE, "level": "warning"},
            '{service_name=~".+", job_tag="PRICE_CACHE"} | severity_number >= 13',
        ),
        ({"job": "price_cache", "level": 5}, '{service_name=~".+", job_tag="PRICE_CACHE"}'),
        ({"job": None, "level": "critical"}, '{service_name=~".+", job_tag=~".+"} | severity_number >= 21'),
        (
            {"job": "auto_rebalance", "contains": "503"},
            '{service_name=~".+", job_tag="AUTO_REBAL"} |= "503"',
        ),
        (
            {"job": "auto_rebalance", "contains": "a.b (c)", "ignore_case": True},
            '{service_name=~".+", job_tag="AUTO_REBAL"} |~ "(?i)a\\\\.b \\\\(c\\\\)"',
        ),
    ],
)
def test_build_logql_selects_the_job_by_tag_and_the_level_by_severity_number(
    kwargs: dict[str, object], expected: str
) -> None:
    job = kwargs.pop("job")
    assert build_logql(job, registry=JOBS, **kwargs) == expected  # type: ignore[arg-type]


def test_an_unknown_job_is_refused_before_a_query_is_built() -> None:
    with pytest.raises(UnknownJobError, match=f"^{re.escape(UNKNOWN)}$"):
        build_logql("nope", registry=JOBS, contains='"} | bad')


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_text_stays_inside_its_string(value: str) -> None:
    query = build_logql("auto_rebalance", registry=JOBS, service_name=value, level="error", contains=value)
    assert tokens(query) == [
        ("op", "{"),
        ("id", "service_name"),
        ("op", "=~"),
        ("str", logql_regex(value)),
        ("op", ","),
        ("id", "job_tag"),
        ("op", "="),
        ("str", "AUTO_REBAL"),
        ("op", "}"),
        ("op", "|"),
        ("id", "severity_number"),
        ("op", ">="),
        ("num", "17"),
        ("op", "|="),
        ("str", value),
    ]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_text_matched_ignoring_case_is_a_literal_regex(value: str) -> None:
    query = build_logql("auto_rebalance", registry=JOBS, contains=value, ignore_case=True)
    *_, op, (kind, regex) = tokens(query)
    assert (op, kind) == (("op", "|~"), "str")
    assert re.fullmatch(regex, value) is not None  # RE2 and Python agree on these escapes
    assert re.fullmatch(regex, value.swapcase()) is not None
    assert re.fullmatch(regex, value + "x") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", '"plain"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a\nb", '"a\\nb"'),
        ("\x00\x1f\x7f\x9f", '"\\u0000\\u001f\\u007f\\u009f"'),
        ("`", '"`"'),
        ("✅", '"✅"'),
    ],
)
def test_logql_string_escapes_like_go(value: str, expected: str) -> None:
    assert logql_string(value) == expected


def test_logql_string_refuses_text_that_is_not_unicode() -> None:
    with pytest.raises(ConfigError, match=r"^Invalid text '\\ud800': it is not valid Unicode$"):
        logql_string("\ud800")


def test_logql_regex_quotes_every_re2_metacharacter() -> None:
    assert logql_regex(r"\.+*?()|[]{}^$ plain") == r"\\\.\+\*\?\(\)\|\[\]\{\}\^\$ plain"


def test_the_level_threshold_is_the_severity_the_otel_handler_gives() -> None:
    from opentelemetry.instrumentation.log_utils import std_to_otel

    assert [_otel_severity(n) for n in range(0, 70)] == [std_to_otel(n).value for n in range(0, 70)]


# -- running queries -----------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLoki]:
    with fake_loki() as loki:
        yield loki


@pytest.fixture
def loki(server: FakeLoki) -> FakeLoki:
    server.reset()
    return server


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


STACK = 'Traceback (most recent call last):\n  File "x"\nValueError: 503\n'


def test_query_sends_the_logql_and_range_and_returns_records_oldest_first(loki: FakeLoki) -> None:
    t1 = datetime(2025, 10, 23, 5, 30, 45, 123000, tzinfo=timezone.utc)
    t2 = datetime(2025, 10, 23, 5, 30, 47, 345000, tzinfo=timezone.utc)
    loki.replies.append(
        Reply(
            body=streams(
                stream(
                    {
                        "service_name": "web",
                        "job_tag": "AUTO_REBAL",
                        "job_id": "auto_rebalance",
                        "severity_text": "ERROR",
                        "severity_number": "17",
                        "exception_stacktrace": STACK,
                    },
                    (ns(t2), "[AUTO_REBAL] ❌ failed: 503"),
                ),
                stream(
                    {"service_name": "web", "job_tag": "AUTO_REBAL", "severity_text": "WARN"},
                    (ns(t1), "[AUTO_REBAL] slow\nsecond line"),
                ),
            )
        )
    )
    client = LokiClient(loki.url, tenant="team-a")
    records = client.query(
        "auto_rebalance",
        registry=JOBS,
        service_name="web",
        level="warning",
        since=datetime(2025, 10, 23, 5, 0, tzinfo=timezone.utc),
        until=datetime(2025, 10, 23, 6, 0, tzinfo=timezone.utc),
        limit=50,
    )
    [request] = loki.received
    assert request.path == "/loki/api/v1/query_range"
    assert request.params == {
        "query": '{service_name=~"web", job_tag="AUTO_REBAL"} | severity_number >= 13',
        "limit": "50",
        "direction": "backward",
        "start": "1761195600000000000",
        "end": "1761199200000000000",
    }
    assert request.headers["x-scope-orgid"] == "team-a"
    assert records == [
        LogEntry(t1, "WARNING", "AUTO_REBAL", "slow", ("second line",), "auto_rebalance", loki.url),
        LogEntry(
            t2,
            "ERROR",
            "AUTO_REBAL",
            "❌ failed: 503",
            ("Traceback (most recent call last):", '  File "x"', "ValueError: 503"),
            "auto_rebalance",
            loki.url,
        ),
    ]


def test_query_keeps_the_most_recent_records_up_to_the_limit(loki: FakeLoki) -> None:
    values = [(1_000_000_000 * i, f"[PRICE_CACHE] {i}") for i in range(5)]
    loki.replies.append(Reply(body=streams(stream({"job_tag": "PRICE_CACHE"}, *values))))
    records = LokiClient(loki.url).query("PRICE_CACHE", registry=JOBS, limit=2)
    assert [r.message for r in records] == ["3", "4"]


def test_an_unknown_job_sends_no_request(loki: FakeLoki) -> None:
    with pytest.raises(UnknownJobError, match=f"^{re.escape(UNKNOWN)}$"):
        LokiClient(loki.url).query("nope", registry=JOBS)
    assert loki.received == []


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_text_reaches_loki_as_one_escaped_string(loki: FakeLoki, value: str) -> None:
    LokiClient(loki.url).query("auto_rebalance", registry=JOBS, contains=value)
    [request] = loki.received
    assert tokens(request.params["query"])[-2:] == [("op", "|="), ("str", value)]


def test_loki_s_error_message_is_part_of_the_error(loki: FakeLoki) -> None:
    loki.replies.append(Reply(400, b"parse error at line 1, col 22: syntax error: unexpected IDENTIFIER\n"))
    with pytest.raises(LokiError) as caught:
        LokiClient(loki.url).query("auto_rebalance", registry=JOBS)
    assert str(caught.value) == (
        f"Loki at {loki.url} answered HTTP 400 Bad Request: "
        "parse error at line 1, col 22: syntax error: unexpected IDENTIFIER"
    )
    assert (caught.value.status, caught.value.body) == (
        400,
        "parse error at line 1, col 22: syntax error: unexpected IDENTIFIER",
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, b"<html>proxy</html>"), "answered something that is not JSON: '<html>proxy</html>'"),
        (
            Reply(200, {"status": "error", "error": "too many outstanding requests"}),
            "reported an error: too many outstanding requests",
        ),
        (
            Reply(200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
            "answered 'matrix' results; a log query gives 'streams'",
        ),
        (
            Reply(200, streams({"stream": {}, "values": [["not a number", "line"]]})),
            'answered streams in an unexpected shape: ValueError("invalid literal for int() with base 10: '
            "'not a number'\")",
        ),
    ],
)
def test_answers_that_are_not_log_streams_are_errors(loki: FakeLoki, reply: Reply, message: str) -> None:
    loki.replies.append(reply)
    with pytest.raises(LokiError, match=f"^Loki at {re.escape(loki.url)} {re.escape(message)}$"):
        LokiClient(loki.url).query("auto_rebalance", registry=JOBS)


def test_a_slow_loki_times_out(loki: FakeLoki) -> None:
    loki.replies.append(Reply(delay=1.0))
    with pytest.raises(LokiError, match=f"^Loki at {re.escape(loki.url)} did not answer within 0.2 s$"):
        LokiClient(loki.url, timeout=0.2).query("auto_rebalance", registry=JOBS)


def test_an_unreachable_loki_is_a_clear_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(LokiError, match=rf"^Cannot reach Loki at {re.escape(url)}: .*Connection refused"):
        LokiClient(url).query("auto_rebalance", registry=JOBS)


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({"OTEL_JOBTAGS_LOKI_URL": "http://a:3100/", "LOKI_URL": "http://b:3100"}, "http://a:3100"),
        ({"LOKI_URL": "http://b:3100"}, "http://b:3100"),
    ],
)
def test_the_url_comes_from_the_environment_when_not_given(environ: dict[str, str], url: str) -> None:
    assert LokiClient(environ=environ).url == url


@pytest.mark.parametrize(
    ("url", "environ", "message"),
    [
        (
            None,
            {},
            "No Loki URL: pass one (--loki) or set OTEL_JOBTAGS_LOKI_URL, e.g. 'http://localhost:3100'",
        ),
        (
            None,
            {"LOKI_URL": "localhost:3100"},
            "Invalid LOKI_URL='localhost:3100': give an http(s) URL, e.g. 'http://localhost:3100'",
        ),
        ("ftp://x", {}, "Invalid url='ftp://x': give an http(s) URL, e.g. 'http://localhost:3100'"),
    ],
)
def test_a_missing_or_bad_url_names_where_it_came_from(
    url: str | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        LokiClient(url, environ=environ)
