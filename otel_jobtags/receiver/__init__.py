"""The OTLP receivers of ``otel-jobtags serve``: gRPC and HTTP (protobuf and JSON) into the embedded store.

:class:`EmbeddedServer` runs everything ``serve`` runs; the receivers can
also be used one by one::

    from otel_jobtags.receiver import OtlpHttpReceiver
    from otel_jobtags.store import Store

    receiver = OtlpHttpReceiver(Store.open("otel-jobtags.db"), port=4318)
    receiver.start()
"""

from .decode import PayloadError, records_from_json, records_from_protobuf
from .embedded import (
    DEFAULT_DB,
    DEFAULT_HTTP,
    DEFAULT_OTLP_GRPC,
    DEFAULT_OTLP_HTTP,
    Address,
    EmbeddedServer,
    ServeConfig,
    parse_address,
    start_with_fallback,
)
from .logfile import LogFileFollower
from .otlp_grpc import OtlpGrpcReceiver
from .otlp_http import DEFAULT_MAX_REQUEST_BYTES, OtlpHttpReceiver

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_HTTP",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_OTLP_GRPC",
    "DEFAULT_OTLP_HTTP",
    "Address",
    "EmbeddedServer",
    "LogFileFollower",
    "OtlpGrpcReceiver",
    "OtlpHttpReceiver",
    "PayloadError",
    "ServeConfig",
    "parse_address",
    "records_from_json",
    "records_from_protobuf",
    "start_with_fallback",
]
