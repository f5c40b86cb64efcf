"""Fixtures of the integration tests: real OTLP receivers on 127.0.0.1, started and stopped per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.otlp import GrpcReceiver, HttpReceiver


@pytest.fixture
def receiver() -> Iterator[GrpcReceiver]:
    """An OTLP/gRPC receiver, running."""
    rx = GrpcReceiver()
    rx.start()
    yield rx
    rx.stop()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """An OTLP/HTTP receiver, running.

    Fork tests export over OTLP/HTTP: gRPC's C core is not fork-safe unless
    GRPC_ENABLE_FORK_SUPPORT is set before grpc loads, and a child using it
    crashed now and then in a process full of other tests' gRPC state.
    """
    rx = HttpReceiver()
    rx.start()
    yield rx
    rx.stop()
