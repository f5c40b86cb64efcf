"""The OTLP/gRPC logs receiver: ``LogsService/Export``, answered once the batch is committed."""

from __future__ import annotations

import sys
from concurrent import futures
from typing import Any

import grpc  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from ..errors import ConfigError, StoreError
from ..store import Store
from .decode import records_from_request
from .otlp_http import DEFAULT_MAX_REQUEST_BYTES, authorized

__all__ = ["OtlpGrpcReceiver"]


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, store: Store, token: str | None) -> None:
        self._store = store
        self._token = token

    def Export(  # noqa: N802 - the gRPC method's name
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: Any
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        if self._token is not None:
            metadata = dict(context.invocation_metadata())
            if not authorized(metadata.get("authorization"), self._token):
                context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "send the serve token as 'authorization: Bearer <token>'"
                )
        try:
            self._store.append(records_from_request(request))
        except StoreError as exc:
            print(f"otel-jobtags serve: {exc}", file=sys.stderr)
            context.abort(grpc.StatusCode.UNAVAILABLE, "the store cannot write now; retry")
        return logs_service_pb2.ExportLogsServiceResponse()


class OtlpGrpcReceiver:
    """An OTLP/gRPC logs receiver writing to a :class:`~otel_jobtags.store.Store`.

    Args:
        store: where records go.
        host: the address to bind (``127.0.0.1`` by default).
        port: the port (4317 by default; 0 picks a free one).
        token: when set, every call needs the metadata ``authorization: Bearer <token>``.
        max_bytes: the largest export accepted (``RESOURCE_EXHAUSTED`` beyond).

    Raises:
        ConfigError: the address cannot be bound.
    """

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 4317,
        *,
        token: str | None = None,
        max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-grpc"),
            options=[("grpc.max_receive_message_length", max_bytes), ("grpc.so_reuseport", 0)],
        )
        add_servicer = logs_service_pb2_grpc.add_LogsServiceServicer_to_server
        add_servicer(_LogsService(store, token), self._server)  # type: ignore[no-untyped-call]
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = self._server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            raise ConfigError(
                f"Cannot listen for OTLP/gRPC on {address}: the port is taken; pick another --otlp-grpc"
            )
        self._host = host
        self._port = int(bound)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._port

    @property
    def endpoint(self) -> str:
        """The URL an OTLP/gRPC exporter is given."""
        return f"http://{f'[{self._host}]' if ':' in self._host else self._host}:{self._port}"

    def start(self) -> None:
        """Serve (gRPC runs its own threads)."""
        self._server.start()

    def stop(self, grace: float = 2.0) -> None:
        """Stop serving, letting calls in progress finish for up to ``grace`` seconds."""
        self._server.stop(grace).wait()
