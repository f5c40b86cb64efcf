"""``otel-jobtags serve`` receives real exports: install() over gRPC and HTTP, the SDK, OTLP/JSON.

Bad requests get clear answers (400, 413, 415, 401) and never stop the receiver.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from support.serve import export_request, post, running_server, wait_until

from otel_jobtags import TagRegistry, install, job_context
from otel_jobtags.receiver import EmbeddedServer
from otel_jobtags.store import StoredRecord

JOBS = TagRegistry()
AUTO_REBAL = JOBS.define(
    "AUTO_REBAL", "auto_rebalance", "automatic portfolio rebalancing", "hourly at minute 17"
)


def bodies(server: EmbeddedServer) -> list[str]:
    assert server.store is not None
    return [r.body for r in server.store.records(limit=1000).records]


def only_record(server: EmbeddedServer) -> StoredRecord:
    assert server.store is not None
    (record,) = server.store.records().records
    return record


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_install_exports_reach_the_store(tmp_path: Path, protocol: str) -> None:
    with running_server(tmp_path / "s.db") as server:
        assert server.grpc is not None and server.http is not None
        endpoint = server.grpc.endpoint if protocol == "grpc" else server.http.endpoint
        installation = install(JOBS, endpoint=endpoint, protocol=protocol, service_name="shop", level="INFO")
        with job_context(AUTO_REBAL, run_id="r-1"):
            logging.getLogger("shop.jobs").warning("upstream answered %d", 503)
        installation.force_flush()
        installation.shutdown()

        record = only_record(server)

    assert (record.body, record.severity_number, record.severity_text, record.scope) == (
        "[AUTO_REBAL] upstream answered 503",
        13,
        "WARN",  # the SDK's name for Python's WARNING
        "shop.jobs",
    )
    assert {k: v for k, v in record.attributes.items() if not k.startswith("code.")} == {
        "job.tag": "AUTO_REBAL",
        "job.id": "auto_rebalance",
        "job.run_id": "r-1",
    }
    assert record.resource["service.name"] == "shop"
    assert record.run_id == "r-1"


def test_a_plain_sdk_export_over_http_reaches_the_store(tmp_path: Path) -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    with running_server(tmp_path / "s.db") as server:
        assert server.http is not None
        provider = LoggerProvider(resource=Resource.create({"service.name": "other-app"}))
        provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{server.http.endpoint}/v1/logs"))
        )
        provider.get_logger("billing").emit(
            body="invoice sent",
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            attributes={"job.tag": "INVOICES", "invoice.count": 3},
        )
        provider.shutdown()

        record = only_record(server)

    assert (record.body, record.scope, record.attributes) == (
        "invoice sent",
        "billing",
        {"job.tag": "INVOICES", "invoice.count": 3},
    )
    assert record.resource["service.name"] == "other-app"


def test_an_otlp_json_export_is_stored_like_protobuf(tmp_path: Path) -> None:
    document = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-app"}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "worker"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1780000000123456000",
                                "severityNumber": 17,
                                "severityText": "ERROR",
                                "body": {"stringValue": "sync failed"},
                                "attributes": [
                                    {"key": "job.tag", "value": {"stringValue": "SYNC"}},
                                    {"key": "attempt", "value": {"intValue": "2"}},
                                    {"key": "ratio", "value": {"doubleValue": 0.5}},
                                    {
                                        "key": "tags",
                                        "value": {"arrayValue": {"values": [{"stringValue": "a"}]}},
                                    },
                                ],
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "someFutureField": True,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    with running_server(tmp_path / "s.db") as server:
        assert server.http is not None
        status, answer = post(server.http.port, json.dumps(document).encode(), "application/json")
        record = only_record(server)

    assert (status, answer) == (200, b"{}")
    assert record.to_json() == {
        "id": 1,
        "time": "2026-05-28T20:26:40.123456+00:00",
        "time_unix_nano": 1780000000123456000,
        "severity_number": 17,
        "severity_text": "ERROR",
        "body": "sync failed",
        "attributes": {"job.tag": "SYNC", "attempt": 2, "ratio": 0.5, "tags": ["a"]},
        "resource": {"service.name": "js-app"},
        "scope": "worker",
    }


def test_a_gzipped_export_is_accepted(tmp_path: Path) -> None:
    with running_server(tmp_path / "s.db") as server:
        assert server.http is not None
        status, _ = post(server.http.port, gzip.compress(export_request(["zipped"])), Content_Encoding="gzip")

        assert status == 200
        assert bodies(server) == ["zipped"]


@pytest.mark.parametrize(
    ("payload", "content_type", "status", "message"),
    [
        (
            b"\xff\xff\xff\xff",
            "application/x-protobuf",
            400,
            "not an OTLP ExportLogsServiceRequest in protobuf",
        ),
        (b"{not json", "application/json", 400, "not JSON: "),
        (b'{"resourceLogs": {}}', "application/json", 400, "resourceLogs must be an array, not dict"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityNumber": 99}]}]}]}',
            "application/json",
            400,
            "resourceLogs[0].scopeLogs[0].logRecords[0].severityNumber must be 0-24, not 99",
        ),
        (b"x", "text/plain", 415, "Content-Type 'text/plain' is not supported"),
    ],
)
def test_a_bad_payload_is_refused_and_the_receiver_goes_on(
    tmp_path: Path, payload: bytes, content_type: str, status: int, message: str
) -> None:
    with running_server(tmp_path / "s.db") as server:
        assert server.http is not None
        answer_status, answer = post(server.http.port, payload, content_type)
        after = post(server.http.port, export_request(["still here"]))

        assert answer_status == status
        assert json.loads(answer)["message"].startswith(message)
        assert after[0] == 200
        assert bodies(server) == ["still here"]


def test_an_oversized_export_gets_413_and_nothing_is_stored(tmp_path: Path) -> None:
    with running_server(tmp_path / "s.db", max_request_bytes=10_000) as server:
        assert server.http is not None
        big = export_request(["x" * 20_000])
        status, answer = post(server.http.port, big)
        bomb_status, _ = post(
            server.http.port, gzip.compress(big), Content_Encoding="gzip"
        )  # small when zipped

        assert (status, bomb_status) == (413, 413)
        assert json.loads(answer)["message"] == f"the export is {len(big)} bytes; the limit is 10000"
        assert bodies(server) == []
        assert post(server.http.port, export_request(["small"]))[0] == 200


def test_an_oversized_grpc_export_is_refused_with_resource_exhausted(tmp_path: Path) -> None:
    with running_server(tmp_path / "s.db", max_request_bytes=10_000) as server:
        assert server.grpc is not None
        request = logs_service_pb2.ExportLogsServiceRequest.FromString(export_request(["x" * 20_000]))
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}") as channel:
            stub = logs_service_pb2_grpc.LogsServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Export(request, timeout=10)
            stub.Export(
                logs_service_pb2.ExportLogsServiceRequest.FromString(export_request(["ok"])), timeout=10
            )

        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert bodies(server) == ["ok"]


def test_an_undecodable_grpc_export_is_refused_and_the_receiver_goes_on(tmp_path: Path) -> None:
    with running_server(tmp_path / "s.db") as server:
        assert server.grpc is not None
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}") as channel:
            raw = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
            with pytest.raises(grpc.RpcError) as refused:
                raw(b"\xff\xff\xff\xff", timeout=10)
            raw(export_request(["after garbage"]), timeout=10)

        assert refused.value.code() == grpc.StatusCode.INTERNAL
        assert bodies(server) == ["after garbage"]


def test_with_a_token_exports_without_it_are_refused(tmp_path: Path) -> None:
    with running_server(tmp_path / "s.db", token="s3cret-s3cret-s3cret") as server:
        assert server.grpc is not None and server.http is not None
        denied, _ = post(server.http.port, export_request(["no token"]))
        wrong, _ = post(server.http.port, export_request(["bad token"]), Authorization="Bearer nope")
        allowed, _ = post(
            server.http.port, export_request(["http"]), Authorization="Bearer s3cret-s3cret-s3cret"
        )
        request = logs_service_pb2.ExportLogsServiceRequest.FromString(export_request(["grpc"]))
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc.port}") as channel:
            stub = logs_service_pb2_grpc.LogsServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Export(request, timeout=10)
            stub.Export(request, timeout=10, metadata=[("authorization", "Bearer s3cret-s3cret-s3cret")])

        assert (denied, wrong, allowed) == (401, 401, 200)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert sorted(bodies(server)) == ["grpc", "http"]


def test_install_with_headers_exports_to_a_server_with_a_token(tmp_path: Path) -> None:
    with running_server(tmp_path / "s.db", token="s3cret-s3cret-s3cret") as server:
        assert server.http is not None
        installation = install(
            JOBS,
            endpoint=server.http.endpoint,
            protocol="http/protobuf",
            headers={"Authorization": "Bearer s3cret-s3cret-s3cret"},
            level="INFO",
        )
        with job_context(AUTO_REBAL):
            logging.getLogger("shop").info("authorised")
        installation.shutdown()

        assert wait_until(lambda: bodies(server)) == ["[AUTO_REBAL] authorised"]
