"""The format of a spool's batch files: what is written, and how it is read back.

A batch file is a 57-byte header -- ``b"OJTSPOOL"``, format version (1 byte,
2), record count (u32), estimated size (u64), payload length (u32), all
big-endian, then an HMAC-SHA256 (32 bytes) of the header's other fields and
the payload under the directory's ``spool.key`` -- followed by the payload:
UTF-8 JSON holding the records' fields, resources and scopes.

The directory, its key and its locks are :mod:`~otel_jobtags.delivery.spool`'s.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from ..errors import SpoolError

__all__ = [
    "FIELDS",
    "HEADER_SIZE",
    "MAC_SIZE",
    "MAGIC",
    "VERSION",
    "decode_batch",
    "encode_batch",
    "mac",
    "read_header",
]

MAGIC = b"OJTSPOOL"
VERSION = 2
FIELDS = struct.Struct(">8sBIQI")
"""Magic, format version, record count, estimated size, payload length."""
MAC_SIZE = hashlib.sha256().digest_size
HEADER_SIZE = FIELDS.size + MAC_SIZE


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"m": {str(k): _encode_value(v) for k, v in value.items()}}
    if isinstance(value, Sequence):
        return [_encode_value(v) for v in value]
    return str(value)


def _decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if isinstance(value, dict):
        if "b" in value:
            return base64.b64decode(value["b"])
        return {k: _decode_value(v) for k, v in value["m"].items()}
    return value


def _encode_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: _encode_value(v) for k, v in (attributes or {}).items()}


def _decode_attributes(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _decode_value(v) for k, v in data.items()}


def encode_batch(records: Sequence[ReadableLogRecord]) -> bytes:
    """The JSON payload of a batch (resources and scopes stored once each)."""
    resources: dict[int, int] = {}
    scopes: dict[int, int] = {}
    resource_list: list[Any] = []
    scope_list: list[Any] = []
    rows: list[Any] = []
    for rec in records:
        res = rec.resource
        r = resources.get(id(res))
        if r is None:
            r = resources[id(res)] = len(resource_list)
            resource_list.append([_encode_attributes(res.attributes), res.schema_url])
        scope = rec.instrumentation_scope
        s = scopes.get(id(scope))
        if s is None:
            s = scopes[id(scope)] = len(scope_list)
            scope_list.append(
                None
                if scope is None
                else [scope.name, scope.version, scope.schema_url, _encode_attributes(scope.attributes)]
            )
        lr = rec.log_record
        rows.append(
            [
                r,
                s,
                lr.timestamp,
                lr.observed_timestamp,
                None if lr.severity_number is None else lr.severity_number.value,
                lr.severity_text,
                _encode_value(lr.body),
                _encode_attributes(lr.attributes),
                lr.event_name,
                lr.trace_id or 0,
                lr.span_id or 0,
                int(lr.trace_flags or 0),
            ]
        )
    doc = {"resources": resource_list, "scopes": scope_list, "records": rows}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_batch(payload: bytes) -> list[ReadableLogRecord]:
    """Records from a payload written by :func:`encode_batch`."""
    doc = json.loads(payload.decode("utf-8"))
    resources = [Resource(_decode_attributes(a), schema_url) for a, schema_url in doc["resources"]]
    scopes = [
        None if s is None else InstrumentationScope(s[0], s[1], s[2], _decode_attributes(s[3]))
        for s in doc["scopes"]
    ]
    out: list[ReadableLogRecord] = []
    for r, s, ts, ots, sev, sev_text, body, attrs, event_name, trace_id, span_id, flags in doc["records"]:
        context = None
        if trace_id and span_id:
            span = NonRecordingSpan(SpanContext(trace_id, span_id, False, TraceFlags(flags)))
            context = set_span_in_context(span)
        record = LogRecord(
            timestamp=ts,
            observed_timestamp=ots,
            context=context,
            severity_text=sev_text,
            severity_number=None if sev is None else SeverityNumber(sev),
            body=_decode_value(body),
            attributes=_decode_attributes(attrs),
            event_name=event_name,
        )
        out.append(
            ReadableLogRecord(log_record=record, resource=resources[r], instrumentation_scope=scopes[s])
        )
    return out


def read_header(data: bytes, path: Path) -> tuple[int, int, int]:
    """Record count, estimated size and payload length from a batch file's header.

    Raises:
        SpoolError: not a batch file of this format version, or truncated.
    """
    if len(data) >= len(MAGIC) + 1 and data.startswith(MAGIC) and data[len(MAGIC)] != VERSION:
        raise SpoolError(f"{path.name}: unknown spool format version {data[len(MAGIC)]}")
    if len(data) < HEADER_SIZE:
        raise SpoolError(f"{path.name}: truncated header ({len(data)} of {HEADER_SIZE} bytes)")
    magic, _version, count, nbytes, length = FIELDS.unpack_from(data)
    if magic != MAGIC:
        raise SpoolError(f"{path.name}: not a spool batch (bad magic)")
    return count, nbytes, length


def mac(key: bytes, fields: bytes, payload: bytes) -> bytes:
    """The HMAC-SHA256 of a batch file's header fields and payload under the spool's key."""
    return hmac.new(key, fields + payload, hashlib.sha256).digest()
