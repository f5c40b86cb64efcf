"""Integrations with logging libraries other than the standard library's.

Each module needs its library, installed with the matching extra:
:mod:`otel_jobtags.contrib.structlog` (``otel-jobtags[structlog]``) and
:mod:`otel_jobtags.contrib.loguru` (``otel-jobtags[loguru]``). Importing one
without its library raises :class:`~otel_jobtags.MissingExtraError` with the
command that fixes it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingExtraError

__all__ = ["require"]


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise :class:`~otel_jobtags.MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(module, extra) from None
