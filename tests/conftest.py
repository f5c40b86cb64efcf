"""Fixtures shared by the whole suite: every test leaves logging as it found it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import otel_jobtags
from otel_jobtags import context as _context
from otel_jobtags.tags import TagRegistry


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    registry = _context.active_registry()
    yield
    otel_jobtags.uninstall()
    root.handlers[:] = handlers
    root.setLevel(level)
    _context.use_registry(registry)
    assert _context.current_job() is None, "a test leaked a job context"


@pytest.fixture
def registry() -> TagRegistry:
    """A small registry in the seed's style."""
    jobs = TagRegistry()
    jobs.define("AUTO_REBAL", "auto_rebalance", "automatic portfolio rebalancing", "hourly at minute 17")
    jobs.define("PRICE_CACHE", "price_cache", "refresh the price cache", "every 5 s")
    jobs.define("DAILY_SUMMARY", "send_daily_summary", "send the daily summary", "daily 09:00")
    return jobs
