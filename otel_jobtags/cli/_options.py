"""Options and argument types several commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from .._loading import PYPROJECT_TABLE, REGISTRY_ENV, SPEC_HELP, valid_spec
from ..errors import ConfigError

N = TypeVar("N", int, float)


def _non_negative(convert: Callable[[str], N], noun: str) -> Callable[[str], N]:
    """An argparse type: ``convert`` the text, refusing what is not a ``noun`` or is negative."""

    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r} is negative")
        return value

    return parse


non_negative_float = _non_negative(float, "a number")
non_negative_int = _non_negative(int, "a whole number")


def job_tag_as_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--job-tag-as",
        choices=["index_label", "structured_metadata"],
        default="index_label",
        help="how Loki stores job_tag; must match loki-config.yaml (default: %(default)s)",
    )


def spec_arg(text: str) -> str:
    if not valid_spec(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a module:attribute; {SPEC_HELP}")
    return text


def registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        type=spec_arg,
        metavar="MODULE:ATTR",
        help=f"the tag registry (a TagRegistry, or a job id -> tag mapping); default: ${REGISTRY_ENV}, "
        f"else registry under [{PYPROJECT_TABLE}] in the project's pyproject.toml",
    )


def level_arg(text: str) -> int:
    from ..logfiles import parse_level

    try:
        level = parse_level(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert level is not None
    return level


def time_arg(text: str) -> datetime:
    from ..logfiles import parse_time

    try:
        return parse_time(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def selection_options(parser: argparse.ArgumentParser) -> None:
    """The options ``logs`` and ``query`` share: which records."""
    parser.add_argument(
        "-j", "--job", help="job id or tag name (AUTO_REBAL or [AUTO_REBAL]); default: every registered job"
    )
    parser.add_argument(
        "-l",
        "--level",
        type=level_arg,
        help="minimum level: debug, info, warning, error, critical or a number",
    )
    parser.add_argument(
        "--since",
        type=time_arg,
        metavar="TIME",
        help="records at or after TIME: ISO 8601 ('2025-10-23 14:30', local time unless an offset is "
        "given) or a duration ago ('15m', '2h', '1d')",
    )
    parser.add_argument("--until", type=time_arg, metavar="TIME", help="records before TIME (same forms)")
    parser.add_argument("--contains", metavar="TEXT", help="records whose text contains TEXT")
    parser.add_argument("-i", "--ignore-case", action="store_true", help="match --contains ignoring case")
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text: the records as logged; json: one JSON object per line (default: text)",
    )
    registry_option(parser)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
