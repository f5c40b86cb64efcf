"""A small, deterministic YAML writer for the provisioning files this package generates.

The package has no YAML dependency at run time, and the files it writes hold
only mappings, lists, strings, numbers, booleans and ``null``. Strings are
always double-quoted (JSON escapes are valid YAML escapes), so no value is
ever read back as another type (``"1m"``, ``"no"``, ``"0"`` stay strings).
Mappings keep their insertion order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

__all__ = ["dump"]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Plain words that YAML 1.1 readers turn into booleans or null.
_RESERVED = re.compile(r"(?i)y|n|yes|no|on|off|true|false|null")
# Characters YAML does not allow unescaped in a double-quoted scalar, or reads
# as line breaks; json.dumps(ensure_ascii=False) leaves them as they are.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def _string(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as YAML")


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"YAML mapping keys must be strings, not {key!r}")
    return key if _PLAIN_KEY.fullmatch(key) and not _RESERVED.fullmatch(key) else _string(key)


def _is_block(value: object) -> bool:
    return (isinstance(value, Mapping) and bool(value)) or (
        isinstance(value, Sequence) and not isinstance(value, str) and bool(value)
    )


def _lines(value: object, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        out = []
        for key, item in value.items():
            if _is_block(item):
                out.append(f"{pad}{_key(key)}:")
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{pad}{_key(key)}: {_inline(item)}")
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        out = []
        for item in value:
            if _is_block(item):
                nested = _lines(item, indent + 2)
                out.append(f"{pad}- {nested[0].lstrip()}")
                out.extend(nested[1:])
            else:
                out.append(f"{pad}- {_inline(item)}")
        return out
    return [pad + _scalar(value)]


def _inline(value: object) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[]"
    return _scalar(value)


def dump(value: Mapping[str, object], *, header: str = "") -> str:
    """``value`` as a YAML document in block style, preceded by ``header`` as comment lines."""
    comments = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join([*comments, *_lines(value, 0)]) + "\n"
