"""What ``serve`` accepts as addresses and settings, and the messages when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_jobtags.errors import ConfigError
from otel_jobtags.receiver import DEFAULT_OTLP_GRPC, Address, ServeConfig, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4317", Address("127.0.0.1", 4317)),
        ("0.0.0.0:4317", Address("0.0.0.0", 4317)),
        ("0.0.0.0", Address("0.0.0.0", 4317)),
        ("[::1]:5000", Address("::1", 5000)),
        ("localhost:0", Address("localhost", 0)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_addresses_take_host_port_port_host_or_off(text: str, expected: Address | None) -> None:
    assert parse_address(text, DEFAULT_OTLP_GRPC, "--otlp-grpc") == expected


def test_an_invalid_port_says_what_to_write() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^Invalid --otlp-grpc 'x:99999': give HOST:PORT, PORT or 'off', e\.g\. --otlp-grpc 127\.0\.0\.1:4317$",
    ):
        parse_address("x:99999", DEFAULT_OTLP_GRPC, "--otlp-grpc")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.2", False),
        ("myhost", False),
    ],
)
def test_only_loopback_hosts_count_as_local(host: str, loopback: bool) -> None:
    assert Address(host, 1).loopback is loopback


def test_listening_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^Listening beyond this machine \(--http 0\.0\.0\.0:4320\) needs a token"
    ):
        ServeConfig(db=tmp_path / "x.db", http=Address("0.0.0.0", 4320))

    assert ServeConfig(db=tmp_path / "x.db", http=Address("0.0.0.0", 4320), token="a" * 16).token == "a" * 16


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Invalid token: give a secret of at least 16 characters"):
        ServeConfig(db=tmp_path / "x.db", token="short")


def test_following_a_log_file_needs_the_registry(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^--log-file needs the jobs' registry: pass --registry MODULE:ATTR$"
    ):
        ServeConfig(db=tmp_path / "x.db", log_file=tmp_path / "app.log")
