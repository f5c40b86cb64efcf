"""loguru: the job fields on loguru records, and their export through ``install()``.

Two pieces, used together or apart::

    from loguru import logger
    from otel_jobtags.contrib.loguru import export_sink, patch_job_fields

    otel_jobtags.install(JOBS, service_name="web")
    logger.configure(patcher=patch_job_fields)      # record["extra"]["job.tag"], ...
    logger.add(export_sink, format="{message}")     # exported, attributed, like stdlib records
    logger.add("app.log", format="{time} {level} [{extra[job.tag]}] {message}")  # fields in a file

:func:`patch_job_fields` adds ``job.tag``, ``job.id`` and ``job.run_id`` to
``record["extra"]`` by the same rules as standard library records
(``logger.bind(job_tag=...)``, the job context, a registered ``[TAG] ``
prefix); outside any job it adds ``"-"`` for each, so formats that name them
always work. Because it runs on the logging thread it also keeps the fields
for sinks added with ``enqueue=True``, which run on another thread.

:func:`export_sink` hands each loguru record to ``install()``'s export
handler directly -- not to the standard library's loggers, so a loguru
``InterceptHandler`` on the root logger cannot send it round in a loop. The
exported record carries the job attributes, loguru's ``extra`` values as
attributes, the exception, and the ``[TAG] ``-prefixed message as its body
(``install(body_prefix=False)`` keeps the message as logged).

Needs the ``loguru`` extra: ``pip install 'otel-jobtags[loguru]'``.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import _diagnostics
from ..attribution import ATTR_JOB_ID, ATTR_JOB_RUN_ID, ATTR_JOB_TAG, JobTagFilter
from ..configure import current_installation
from . import require

require("loguru", "loguru")

__all__ = ["export_sink", "patch_job_fields"]

_FIELDS = (ATTR_JOB_TAG, ATTR_JOB_ID, ATTR_JOB_RUN_ID)
_ABSENT = "-"
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_attribute = JobTagFilter(prefix=False)


def _stdlib_record(record: Any) -> logging.LogRecord:
    level = record["level"]
    exception = record["exception"]
    exc_info = None
    if exception is not None:
        exc_info = (exception.type, exception.value, exception.traceback)
    out = logging.LogRecord(
        name=record["name"] or "loguru",
        level=level.no,
        pathname=record["file"].path,
        lineno=record["line"],
        msg=record["message"],
        args=None,
        exc_info=exc_info,
        func=record["function"],
    )
    out.levelname = level.name
    created = record["time"].timestamp()
    out.created = created
    out.msecs = (created - int(created)) * 1000
    out.thread, out.threadName = record["thread"].id, record["thread"].name
    out.process, out.processName = record["process"].id, record["process"].name
    d = out.__dict__
    for key, value in record["extra"].items():
        if key in _FIELDS and value == _ABSENT:
            continue
        if key not in _RESERVED:
            d[key] = value
    return out


def patch_job_fields(record: Any) -> None:
    """A loguru patcher: add ``job.tag``, ``job.id`` and ``job.run_id`` to ``record["extra"]``."""
    try:
        extra = record["extra"]
        stdlib = _stdlib_record(record)
        _attribute.filter(stdlib)
        d = stdlib.__dict__
        if ATTR_JOB_TAG in d:
            extra.pop("job_tag", None)
            extra.pop("job_id", None)
        for name in _FIELDS:
            extra[name] = d.get(name, _ABSENT)
    except Exception as exc:  # a log call must never fail because of us
        _diagnostics.write(f"could not attribute a loguru record: {type(exc).__name__}: {exc}")


def export_sink(message: Any) -> None:
    """A loguru sink exporting each record through ``install()``'s handler, attributed to its job."""
    installation = current_installation()
    if installation is None:
        _diagnostics.warn(
            "loguru-not-installed",
            "a loguru record reached export_sink before otel_jobtags.install(): not exported; "
            "call install() first",
        )
        return
    try:
        installation.handler.handle(_stdlib_record(message.record))
    except Exception as exc:  # a log call must never fail because of us
        _diagnostics.write(f"could not export a loguru record: {type(exc).__name__}: {exc}")
