"""The embedded store: log records in one SQLite file, for ``otel-jobtags serve`` and its web view.

Open it with :meth:`Store.open`; the receiver appends what it gets over OTLP,
the web view and the JSON API read it::

    from otel_jobtags.store import Store

    with Store.open("otel-jobtags.db") as store:
        page = store.records(job_tag="AUTO_REBAL", min_severity=17, limit=50)
"""

from .client import StoreClient
from .database import Store
from .levels import LEVELS, level_of, severity_number_of
from .records import JobActivity, NewRecord, RecordPage, Run, StoredRecord, StoreStats
from .retention import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, Retention

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BYTES",
    "LEVELS",
    "JobActivity",
    "NewRecord",
    "RecordPage",
    "Retention",
    "Run",
    "Store",
    "StoreClient",
    "StoreStats",
    "StoredRecord",
    "level_of",
    "severity_number_of",
]
