"""On/off settings: argument, then ``OTEL_JOBTAGS_*`` variable, then default.

Read once, when the object that uses them is built, so that no log call
branches on the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import ConfigError

__all__ = ["resolve_flag"]

_TRUE = frozenset(("1", "true", "yes", "on"))
_FALSE = frozenset(("0", "false", "no", "off"))


def resolve_flag(
    value: bool | None,
    variable: str,
    default: bool,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """``value`` if given, else the variable's value (true/false, 1/0, yes/no, on/off), else ``default``.

    Raises:
        ConfigError: the argument is not a bool, or the variable holds another word.
    """
    if value is not None:
        if not isinstance(value, bool):
            name = variable.removeprefix("OTEL_JOBTAGS_").lower()
            raise ConfigError(f"Invalid {name}={value!r}: use True or False")
        return value
    env = os.environ if environ is None else environ
    text = env.get(variable, "").strip()
    if not text:
        return default
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ConfigError(f"Invalid {variable}={text!r}: use true or false")
