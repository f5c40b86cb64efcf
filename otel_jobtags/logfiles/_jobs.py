"""One call to read or follow a job's records: what an admin page uses."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import datetime

from ..tags import JobTag, TagRegistry
from ._filter import LogFilter, LogPaths
from ._formats import LineFormat
from ._records import LogEntry

__all__ = ["follow_job_logs", "read_job_logs"]


def read_job_logs(
    paths: LogPaths,
    job: JobTag | str | None,
    *,
    registry: TagRegistry | None = None,
    level: int | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    contains: str | None = None,
    ignore_case: bool = False,
    limit: int | None = None,
    line_format: LineFormat | str | re.Pattern[str] | re.Pattern[bytes] | None = None,
    rotated: bool = True,
) -> list[LogEntry]:
    """A job's records from a text log and its rotated generations, oldest first.

    What an admin page calls with a request's ``job_id``::

        entries = read_job_logs("app.log", request.args["job_id"], registry=JOBS,
                                level="WARNING", limit=200)

    Args:
        paths: the log file(s).
        job: job id, tag name or tag; ``None`` for every registered job.
        registry: where ``job`` is looked up; by default the active registry.
        level: minimum level.
        since: records at or after this time (naive: local time).
        until: records before this time.
        contains: text the record must contain.
        ignore_case: match ``contains`` ignoring case.
        limit: keep only the last ``limit`` records (the most recent).
        line_format: see :class:`LogFilter`.
        rotated: read the rotated generations too.

    Raises:
        UnknownJobError: ``job`` is not in the registry; nothing has been read.
        JobTagsError: a file does not exist.
    """
    selection = LogFilter(
        job,
        registry=registry,
        level=level,
        since=since,
        until=until,
        contains=contains,
        ignore_case=ignore_case,
        line_format=line_format,
    )
    if limit is None:
        return list(selection.scan(paths, rotated=rotated))
    return selection.last(paths, limit, rotated=rotated)


def follow_job_logs(
    path: str | os.PathLike[str],
    job: JobTag | str | None,
    *,
    registry: TagRegistry | None = None,
    level: int | str | None = None,
    contains: str | None = None,
    ignore_case: bool = False,
    history: int | None = 10,
    stop: Callable[[], bool] | None = None,
    poll_interval: float = 0.25,
    line_format: LineFormat | str | re.Pattern[str] | re.Pattern[bytes] | None = None,
) -> Iterator[LogEntry]:
    """Follow a job's records as the log grows (``tail -f`` for one job).

    Yields the last ``history`` records already written (``None``: all), then
    new ones as they come, across rotation. See :meth:`LogFilter.follow`.

    Raises:
        UnknownJobError: ``job`` is not in the registry; nothing has been read.
    """
    selection = LogFilter(
        job,
        registry=registry,
        level=level,
        contains=contains,
        ignore_case=ignore_case,
        line_format=line_format,
    )
    return selection.follow(path, history=history, stop=stop, poll_interval=poll_interval)
