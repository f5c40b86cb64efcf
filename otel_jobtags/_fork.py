"""``os.register_at_fork`` for methods, without keeping their objects alive.

Hooks cannot be unregistered: a strong reference would keep every processor
(and its queue) ever created alive for the life of the process.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any


def _weak(method: Callable[[], Any] | None) -> Callable[[], None]:
    if method is None:
        return lambda: None
    ref = weakref.WeakMethod(method)

    def call() -> None:
        target = ref()
        if target is not None:
            target()

    return call


def register_at_fork(
    *,
    before: Callable[[], Any] | None = None,
    after_in_parent: Callable[[], Any] | None = None,
    after_in_child: Callable[[], Any] | None = None,
) -> None:
    """Register bound methods as fork hooks through weak references."""
    if not hasattr(os, "register_at_fork"):  # pragma: no cover - not on Windows
        return
    os.register_at_fork(
        before=_weak(before),
        after_in_parent=_weak(after_in_parent),
        after_in_child=_weak(after_in_child),
    )
