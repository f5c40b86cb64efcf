"""structlog: the job fields in every event dict, in the spirit of ``merge_contextvars``.

Add :data:`add_job_fields` to the processor chain; every event logged inside a
:func:`~otel_jobtags.job_context` (or a scheduled run) gains ``job.tag``,
``job.id`` and, inside a run, ``job.run_id``. Outside any job the event dict
is left as it is.

structlog-native (structlog renders and writes the line itself)::

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        add_job_fields,
        structlog.processors.add_log_level,
        structlog.processors.JSONRenderer(),
    ])

Such a setup writes lines; it does not reach the standard library's handlers,
so nothing is exported. To export too, use structlog's standard-library
integration, where ``install()``'s handler sees every record:

    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, add_job_fields,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[ProcessorFormatter.remove_processors_meta, JSONRenderer()],
        foreign_pre_chain=[add_job_fields],   # plain logging records get the fields too
    )

In ``foreign_pre_chain`` (or the formatter's ``processors``) the fields come
from the standard library record by the same rules as the exported
attributes: ``extra={"job_tag": ...}``, then the job context, then a
registered ``[TAG] `` prefix (when prefix attribution is on). In the export,
the body is what the export handler's formatter renders; pass
``install(body_prefix=False)`` to keep a JSON body JSON.

Needs the ``structlog`` extra: ``pip install 'otel-jobtags[structlog]'``.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from ..attribution import ATTR_JOB_ID, ATTR_JOB_RUN_ID, ATTR_JOB_TAG, JobTagFilter
from ..context import current_job
from ..tags import TagRegistry
from . import require

require("structlog", "structlog")

__all__ = ["JobFields", "add_job_fields"]

_FIELDS = (ATTR_JOB_TAG, ATTR_JOB_ID, ATTR_JOB_RUN_ID)


class JobFields:
    """A structlog processor adding ``job.tag``, ``job.id`` and ``job.run_id`` to the event dict.

    Fields already in the event dict are kept (like ``merge_contextvars``, an
    explicit value wins).

    Args:
        registry: what an ``extra={"job_tag": ...}`` and ``[TAG]`` prefixes on
            standard library records resolve against; by default the active
            registry (set by ``install``).
    """

    def __init__(self, registry: TagRegistry | None = None) -> None:
        self._filter = JobTagFilter(registry, prefix=False)

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Add the job fields of the current record or job to ``event_dict``."""
        record = event_dict.get("_record")
        fields = self._from_record(record) if isinstance(record, logging.LogRecord) else self._from_context()
        for name, value in fields:
            event_dict.setdefault(name, value)
        return event_dict

    def _from_record(self, record: logging.LogRecord) -> list[tuple[str, Any]]:
        # ProcessorFormatter hands processors its own copy of the record:
        # attributing it changes nothing the handlers see.
        self._filter.filter(record)
        d = record.__dict__
        return [(name, d[name]) for name in _FIELDS if name in d]

    @staticmethod
    def _from_context() -> list[tuple[str, Any]]:
        active = current_job()
        if active is None:
            return []
        fields: list[tuple[str, Any]] = [(ATTR_JOB_TAG, active.tag.name), (ATTR_JOB_ID, active.tag.job_id)]
        if active.run_id is not None:
            fields.append((ATTR_JOB_RUN_ID, active.run_id))
        return fields


add_job_fields = JobFields()
"""The processor with the active registry: put it in structlog's chain."""
