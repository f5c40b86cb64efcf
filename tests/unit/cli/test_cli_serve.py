"""``otel-jobtags serve``'s options: sizes, ages, addresses and the token, refused with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_jobtags.cli import main


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--max-size", "lots"], "argument --max-size: 'lots' is not a size: write e.g. 500M, 2G, or 'off'"),
        (
            ["--max-age", "soon"],
            "argument --max-age: 'soon' is not an age: write e.g. 7d, 12h, 30m, or 'off'",
        ),
        (["--max-age=-1d"], "argument --max-age: '-1d' is not a positive age"),
    ],
)
def test_bad_retention_values_are_usage_errors(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", *option])

    assert exit_.value.code == 2
    assert capsys.readouterr().err.endswith(f"otel-jobtags serve: error: {message}\n")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--token", "short"], "Invalid token: give a secret of at least 16 characters"),
        (["--otlp-grpc", "host:port"], "Invalid --otlp-grpc 'host:port': give HOST:PORT, PORT or 'off'"),
    ],
)
def test_bad_settings_stop_serve_before_it_opens_anything(
    tmp_path: Path, option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--db", str(tmp_path / "x.db"), *option]) == 2

    assert capsys.readouterr().err.startswith(f"otel-jobtags: error: {message}")
    assert not (tmp_path / "x.db").exists()
