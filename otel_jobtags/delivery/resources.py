"""The records and resources exported: the process that wrote them, also after a fork.

The SDK gives a forked child the parent's resource, but records must name the
process that wrote them: after a fork each resource is exported with the
child's ``process.pid`` (and, if asked, a new ``service.instance.id``). Each
exported resource keeps its hash (see :func:`~otel_jobtags.delivery.records.hashed`).

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource

from .records import RecordBuilder, bounded, hashed

__all__ = ["ProcessResources"]


class ProcessResources:
    """Maps a record's resource to the one it is exported with, for this process."""

    def __init__(self, new_instance_id_after_fork: bool = True) -> None:
        self.new_instance_id_after_fork = new_instance_id_after_fork
        self._map: dict[int, tuple[Resource, Resource]] = {}
        self._child_attributes: dict[str, str | int] = {}

    def after_fork_in_child(self) -> None:
        """From now on, resources name this (child) process."""
        self._map = {}
        self._child_attributes = {"process.pid": os.getpid()}
        if self.new_instance_id_after_fork:
            self._child_attributes["service.instance.id"] = str(uuid.uuid4())

    def exported(self, resource: Resource) -> Resource:
        """The resource to export a record of ``resource`` with."""
        entry = self._map.get(id(resource))
        if entry is None or entry[0] is not resource:
            exported = resource
            if self._child_attributes:
                exported = resource.merge(Resource(self._child_attributes))
            entry = (resource, hashed(exported))
            self._map[id(resource)] = entry
        return entry[1]

    def readable(self, items: list[Any], builder: RecordBuilder) -> list[ReadableLogRecord]:
        """The records to export from what was queued: prepared tuples, SDK records, adopted records."""
        out: list[ReadableLogRecord] = []
        for item in items:
            if type(item) is tuple:
                out.append(builder.build(item))
                continue
            if isinstance(item, ReadableLogRecord):
                out.append(item)
                continue
            rec: ReadWriteLogRecord = item
            resource = self.exported(rec.resource if rec.resource is not None else Resource.get_empty())
            readable = bounded(rec.log_record, resource, rec.instrumentation_scope, rec.limits)
            out.append(builder.clean(readable))
        return out
