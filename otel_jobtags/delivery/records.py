"""Records between the log call and the exporter: what the application's thread
hands over, what it is counted as, and how the export thread builds the
OpenTelemetry record from it.

The application's thread does only what must happen there (as the stdlib
``QueueHandler.prepare`` does): attribution, formatting the message and any
traceback, capturing the trace context. It hands over a :data:`Prepared`
tuple; the OpenTelemetry ``LogRecord`` is built on the export thread by
:class:`RecordBuilder`, which also replaces what UTF-8 cannot encode.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping
from time import time_ns
from typing import Any

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.instrumentation.log_utils import std_to_otel
from opentelemetry.sdk._logs import LogRecordLimits, ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

__all__ = [
    "RECORD_OVERHEAD",
    "Prepared",
    "RecordBuilder",
    "attributes_size",
    "hashed",
    "prepared_size",
    "record_size",
    "scrub",
    "text_size",
]

RECORD_OVERHEAD = 1024
"""Bytes counted per record on top of its text (body, attribute names and values).

An upper estimate of what a waiting record costs in memory besides its text
(the tuple, the attribute mapping, the trace context reference), and of what
it adds to an encoded OTLP request besides its text (field tags, timestamps,
severity), so that one figure serves the memory bound and the batch size bound.
"""

Prepared = tuple[str, int, str, float, str, "dict[str, Any] | None", "Context | None"]
"""What the application's thread hands over for one log record:
``(logger name, levelno, levelname, created, body, attributes or None, trace context or None)``.
The body is the formatted message; attributes hold ``extra=`` values, the job
attributes and the ``exception.*`` ones (traceback already formatted)."""

_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}
_SURROGATES = re.compile("[\ud800-\udfff]")
_MAX_DEPTH = 4


def text_size(text: str) -> int:
    """Bytes counted for a string: its length, or four bytes a character if not ASCII."""
    # str.isascii() is O(1) in CPython (the compact-ASCII flag); 4 bytes a
    # character bounds both its UTF-8 encoding and its in-memory form.
    return len(text) if text.isascii() else 4 * len(text)


def _value_size(value: Any, depth: int) -> int:
    kind = type(value)
    if kind is str:
        return text_size(value)
    if kind in (int, float, bool) or value is None:
        return 16
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            return sum(text_size(str(k)) + _value_size(v, depth + 1) for k, v in value.items())
        if isinstance(value, (list, tuple, set, frozenset)):
            return sum(_value_size(v, depth + 1) for v in value) + 8 * len(value)
    try:
        return sys.getsizeof(value)
    except Exception:  # an object whose __sizeof__ raises
        return 64


def attributes_size(attributes: Mapping[str, Any] | None) -> int:
    """Bytes counted for a record's attributes: names and values, nested ones too."""
    if not attributes:
        return 0
    return sum(text_size(k) + _value_size(v, 0) for k, v in attributes.items())


def prepared_size(body: str, attributes: Mapping[str, Any] | None) -> int:
    """Bytes counted for a prepared record against the memory and batch bounds."""
    return RECORD_OVERHEAD + text_size(body) + (attributes_size(attributes) if attributes else 0)


def record_size(record: ReadableLogRecord) -> int:
    """Bytes counted for an OpenTelemetry record (one emitted through the SDK)."""
    log_record = record.log_record
    body = log_record.body
    size = text_size(body) if type(body) is str else _value_size(body, 0)
    return RECORD_OVERHEAD + size + attributes_size(log_record.attributes)


def scrub(value: Any) -> tuple[Any, int]:
    """``value`` with lone surrogates replaced by U+FFFD, and how many strings changed.

    A lone surrogate is what ``os.fsdecode``, ``sys.argv`` or ``os.environ``
    give for bytes that are not UTF-8 (a latin-1 file name); protobuf and
    UTF-8 JSON cannot encode it.
    """
    kind = type(value)
    if kind is str:
        if value.isascii() or _SURROGATES.search(value) is None:
            return value, 0
        return _SURROGATES.sub("\ufffd", value), 1
    if isinstance(value, Mapping):
        changed = 0
        out: dict[Any, Any] = {}
        for k, v in value.items():
            k2, n1 = scrub(k) if type(k) is str else (k, 0)
            v2, n2 = scrub(v)
            out[k2] = v2
            changed += n1 + n2
        return (out, changed) if changed else (value, 0)
    if isinstance(value, (list, tuple)):
        items = [scrub(v) for v in value]
        changed = sum(n for _, n in items)
        if not changed:
            return value, 0
        return type(value)(v for v, _ in items) if kind is tuple else [v for v, _ in items], changed
    return value, 0


class RecordBuilder:
    """Builds OpenTelemetry records from :data:`Prepared` tuples, on the export thread.

    Args:
        resource: the resource every record carries.
        limits: the SDK's attribute limits.
    """

    def __init__(self, resource: Resource, limits: LogRecordLimits | None = None) -> None:
        self._resource = hashed(resource)
        self.limits = limits if limits is not None else LogRecordLimits()
        self.replaced = 0
        """Records in which text that UTF-8 cannot encode was replaced by U+FFFD."""
        self._scopes: dict[str, InstrumentationScope] = {}
        self._severity: dict[int, SeverityNumber] = {}

    @property
    def resource(self) -> Resource:
        """The resource every record carries."""
        return self._resource

    @resource.setter
    def resource(self, resource: Resource) -> None:
        self._resource = hashed(resource)

    def build(self, item: Prepared) -> ReadableLogRecord:
        """The OpenTelemetry record for one prepared record."""
        name, levelno, levelname, created, body, attributes, context = item
        event_name = None
        if attributes and ("otel.event.name" in attributes or "event.name" in attributes):
            attributes = dict(attributes)
            event_name = attributes.pop("otel.event.name", None)
            deprecated = attributes.pop("event.name", None)
            if event_name is None:
                event_name = deprecated
        changed = 0
        if type(body) is not str or not body.isascii():
            body, changed = scrub(body)
        if attributes and not _plain(attributes):
            attributes, more = scrub(attributes)
            changed += more
        if changed:
            self.replaced += 1
        severity = self._severity.get(levelno)
        if severity is None:
            severity = self._severity[levelno] = std_to_otel(levelno)
        scope = self._scopes.get(name)
        if scope is None:
            scope = self._scopes[name] = InstrumentationScope(name, None, None, None)
        log_record = LogRecord(
            timestamp=int(created * 1e9),
            observed_timestamp=time_ns(),
            context=context,
            severity_text=_SEVERITY_TEXT.get(levelname, levelname),
            severity_number=severity,
            body=body,
            attributes=attributes or {},
            event_name=event_name,
        )
        return bounded(log_record, self._resource, scope, self.limits)

    def clean(self, record: ReadableLogRecord) -> ReadableLogRecord:
        """``record`` (one emitted through the SDK) with its text made encodable."""
        log_record = record.log_record
        body, changed = scrub(log_record.body)
        attributes, more = scrub(log_record.attributes)
        if not changed + more:
            return record
        self.replaced += 1
        log_record.body = body
        log_record.attributes = attributes
        return record


_SIMPLE = (str, int, float, bool)


class _HashedResource(Resource):
    """A resource whose hash is computed once.

    The OTLP encoder groups records by resource, hashing it for every record;
    the SDK's ``Resource.__hash__`` serializes all its attributes to JSON each
    time (about a third of the encoding's cost). A resource is immutable, so
    its hash can be kept.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def hashed(resource: Resource) -> Resource:
    """``resource``, equal and exported the same, with its hash computed once."""
    return resource if isinstance(resource, _HashedResource) else _HashedResource(resource)


def _plain(attributes: Mapping[str, Any]) -> bool:
    """True if every value is an ASCII string or a number (nothing to scrub): the common case."""
    for key, value in attributes.items():
        if type(key) is not str or not key.isascii():
            return False
        kind = type(value)
        if kind is str:
            if not value.isascii():
                return False
        elif kind is not int and kind is not float and kind is not bool:
            return False
    return True


def bounded(
    log_record: LogRecord,
    resource: Resource,
    scope: InstrumentationScope | None,
    limits: LogRecordLimits | None,
) -> ReadableLogRecord:
    """A readable record whose attributes obey the SDK's limits, as ``Logger.emit`` makes them."""
    limits = limits if limits is not None else LogRecordLimits()
    attributes = log_record.attributes
    max_attributes = limits.max_log_record_attributes
    if attributes and (
        (max_attributes is not None and len(attributes) > max_attributes)
        or limits.max_log_record_attribute_length is not None
        or any(type(v) not in _SIMPLE for v in attributes.values())
    ):
        # The SDK's checks (types, limits), only where they can change something:
        # a BoundedAttributes costs a lock and a copy per record.
        log_record.attributes = BoundedAttributes(
            maxlen=limits.max_log_record_attributes,
            attributes=attributes,
            immutable=False,
            max_value_len=limits.max_log_record_attribute_length,
            extended_attributes=True,
        )
    return _make_readable(log_record, resource, scope, limits)


def _construct_readable(
    log_record: LogRecord,
    resource: Resource,
    scope: InstrumentationScope | None,
    limits: LogRecordLimits | None,
) -> ReadableLogRecord:
    return ReadableLogRecord(
        log_record=log_record, resource=resource, instrumentation_scope=scope, limits=limits
    )


def _fill_readable(
    log_record: LogRecord,
    resource: Resource,
    scope: InstrumentationScope | None,
    limits: LogRecordLimits | None,
) -> ReadableLogRecord:
    # The same object the constructor makes, without the frozen dataclass's
    # four object.__setattr__ calls: this runs once per record on the export
    # thread, whose CPU time the logging threads pay for under the GIL.
    readable = object.__new__(ReadableLogRecord)
    readable.__dict__.update(
        log_record=log_record, resource=resource, instrumentation_scope=scope, limits=limits
    )
    return readable


def _can_fill_readable() -> bool:
    # Only while ReadableLogRecord is the plain frozen dataclass of these four
    # fields, with no __post_init__ or __slots__; else the constructor is used.
    try:
        names = [f.name for f in dataclasses.fields(ReadableLogRecord)]
    except TypeError:
        return False
    return (
        names == ["log_record", "resource", "instrumentation_scope", "limits"]
        and not hasattr(ReadableLogRecord, "__post_init__")
        and not hasattr(ReadableLogRecord, "__slots__")
    )


_make_readable = _fill_readable if _can_fill_readable() else _construct_readable
