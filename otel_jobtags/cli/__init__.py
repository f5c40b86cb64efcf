"""The ``otel-jobtags`` command line: ``main`` and one module per command."""

from ._main import main

__all__ = ["main"]
