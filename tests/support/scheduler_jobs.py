"""Job functions and a logging set-up for the process-pool tests.

A process pool's child imports the job function by reference and runs the
pool's initializer, so both live in an importable module, not in the test.
"""

from __future__ import annotations

import json
import logging
import os

from otel_jobtags import JobTagFilter, current_job
from otel_jobtags.handler import ATTR_JOB_ID, ATTR_JOB_RUN_ID, ATTR_JOB_TAG

_FIELDS = (ATTR_JOB_TAG, ATTR_JOB_ID, ATTR_JOB_RUN_ID, "job.outcome", "job.scheduled_time")


class _JsonLines(logging.Handler):
    def __init__(self, path: str) -> None:
        super().__init__(logging.DEBUG)
        self.path = path
        self.addFilter(JobTagFilter())

    def emit(self, record: logging.LogRecord) -> None:
        entry = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": os.getpid(),
            **{name: record.__dict__.get(name) for name in _FIELDS},
        }
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")


def log_to_file(path: str) -> None:
    """Process-pool initializer: the child's records go to ``path`` as JSON lines."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(_JsonLines(path))


def report_in_child(label: str) -> None:
    """A job that logs what job it sees itself in."""
    active = current_job()
    logging.getLogger("app.child").info("%s sees %s", label, active.tag.name if active else None)
