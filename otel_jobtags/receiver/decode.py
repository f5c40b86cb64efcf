"""OTLP log exports, protobuf or JSON, turned into :class:`~otel_jobtags.store.NewRecord` rows.

Both encodings are decoded to the same records: the JSON one follows the
OTLP/JSON rules (lowerCamelCase keys, 64-bit integers as strings or numbers,
enums as numbers, unknown fields ignored). Anything that is not a valid
export raises :class:`PayloadError`, which the receivers answer with
``400``/``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from ..errors import PayloadError
from ..store import NewRecord

__all__ = ["PayloadError", "records_from_json", "records_from_protobuf", "records_from_request"]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


# ------------------------------------------------------------------ protobuf


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)


def _body(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else _dumps(value)


def records_from_request(request: ExportLogsServiceRequest) -> list[NewRecord]:
    """The records of a decoded export request, each with its resource and scope."""
    out: list[NewRecord] = []
    append = out.append
    for resource_logs in request.resource_logs:
        resource = {kv.key: _value(kv.value) for kv in resource_logs.resource.attributes}
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope.name
            for record in scope_logs.log_records:
                body = record.body
                append(
                    NewRecord(
                        record.time_unix_nano or record.observed_time_unix_nano or time.time_ns(),
                        record.severity_number,
                        record.severity_text,
                        body.string_value
                        if body.WhichOneof("value") == "string_value"
                        else _body(_value(body)),
                        {kv.key: _value(kv.value) for kv in record.attributes},
                        resource,
                        scope,
                    )
                )
    return out


def records_from_protobuf(payload: bytes) -> list[NewRecord]:
    """The records of a binary-protobuf export (``application/x-protobuf``).

    Raises:
        PayloadError: the payload is not an ``ExportLogsServiceRequest``.
    """
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise PayloadError(f"not an OTLP ExportLogsServiceRequest in protobuf: {exc}") from None
    return records_from_request(request)


# ------------------------------------------------------------------ JSON


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind):
        raise PayloadError(f"{where} must be {_kind_name(kind)}, not {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise PayloadError(f"{where} must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise PayloadError(f"{where} must be an integer (or a string of one), not {value!r}")


def _json_value(value: Any, where: str) -> Any:
    if value is None:
        return None
    _expect(value, dict, where)
    if "stringValue" in value:
        return _expect(value["stringValue"], str, f"{where}.stringValue")
    if "boolValue" in value:
        return _expect(value["boolValue"], bool, f"{where}.boolValue")
    if "intValue" in value:
        return _int(value["intValue"], f"{where}.intValue")
    if "doubleValue" in value:
        double = value["doubleValue"]
        if isinstance(double, str) and double in ("NaN", "Infinity", "-Infinity"):
            return double
        return float(_expect(double, (int, float), f"{where}.doubleValue"))
    if "arrayValue" in value:
        items = _expect(
            _expect(value["arrayValue"], dict, f"{where}.arrayValue").get("values", []), list, where
        )
        return [_json_value(item, f"{where}.arrayValue.values[{i}]") for i, item in enumerate(items)]
    if "kvlistValue" in value:
        kvlist = _expect(value["kvlistValue"], dict, f"{where}.kvlistValue")
        return _json_attributes(kvlist.get("values", []), f"{where}.kvlistValue.values")
    if "bytesValue" in value:
        return _expect(value["bytesValue"], str, f"{where}.bytesValue")
    return None


def _json_attributes(items: Any, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, kv in enumerate(_expect(items, list, where)):
        _expect(kv, dict, f"{where}[{i}]")
        key = _expect(kv.get("key"), str, f"{where}[{i}].key")
        out[key] = _json_value(kv.get("value"), f"{where}[{i}].value")
    return out


def _json_severity(value: Any, where: str) -> int:
    if isinstance(value, str) and value.startswith("SEVERITY_NUMBER_"):  # enum names: lenient, as protobuf is
        try:
            return int(SeverityNumber.Value(value))
        except ValueError:
            raise PayloadError(f"{where} is not a severity: {value!r}") from None
    number = _int(value, where)
    if not 0 <= number <= 24:
        raise PayloadError(f"{where} must be 0-24, not {number}")
    return number


def records_from_json(payload: bytes) -> list[NewRecord]:
    """The records of an OTLP/JSON export (``application/json``).

    Raises:
        PayloadError: the payload is not JSON, or not an export request.
    """
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    _expect(document, dict, "the request")
    out: list[NewRecord] = []
    for r, resource_logs in enumerate(_expect(document.get("resourceLogs", []), list, "resourceLogs")):
        where = f"resourceLogs[{r}]"
        _expect(resource_logs, dict, where)
        resource_doc = _expect(resource_logs.get("resource", {}), dict, f"{where}.resource")
        resource = _json_attributes(resource_doc.get("attributes", []), f"{where}.resource.attributes")
        for s, scope_logs in enumerate(
            _expect(resource_logs.get("scopeLogs", []), list, f"{where}.scopeLogs")
        ):
            here = f"{where}.scopeLogs[{s}]"
            _expect(scope_logs, dict, here)
            scope = _expect(
                _expect(scope_logs.get("scope", {}), dict, f"{here}.scope").get("name", ""), str, here
            )
            for i, record in enumerate(_expect(scope_logs.get("logRecords", []), list, f"{here}.logRecords")):
                at = f"{here}.logRecords[{i}]"
                _expect(record, dict, at)
                body = _json_value(record.get("body"), f"{at}.body")
                time_ns = _int(record.get("timeUnixNano"), f"{at}.timeUnixNano")
                time_ns = time_ns or _int(record.get("observedTimeUnixNano"), f"{at}.observedTimeUnixNano")
                out.append(
                    NewRecord(
                        time_ns or time.time_ns(),
                        _json_severity(record.get("severityNumber"), f"{at}.severityNumber"),
                        _expect(record.get("severityText", ""), str, f"{at}.severityText"),
                        _body(body),
                        _json_attributes(record.get("attributes", []), f"{at}.attributes"),
                        resource,
                        scope,
                    )
                )
    return out
