"""The jobs view: an overview of every job, a page per job, and a JSON API, as one WSGI app.

It reads the embedded store (:mod:`otel_jobtags.store`) that ``otel-jobtags
serve`` fills, and needs nothing but the standard library: charts are SVG
drawn on the server, the stylesheet and the one small script ship in the
package, and every answer carries a strict Content-Security-Policy. Mount it
in an application of your own behind its login::

    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from otel_jobtags.web import create_app

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/admin/jobs": create_app("jobs.db", JOBS)})

Pages: ``/`` (overview), ``/jobs/<TAG>`` (one job), ``/api/v1/jobs`` and
``/api/v1/records`` (JSON). A job's status is the one the generated Grafana
alert rules would decide (:func:`otel_jobtags.grafana.job_status`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import ConfigError
from ..store import Store
from ..tags import JobTag, TagRegistry
from ._app import CSP, JobsView
from ._figures import Judge
from ._params import MAX_WINDOW, MIN_WINDOW

__all__ = ["CSP", "JobsView", "create_app"]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def create_app(
    store: Store | str | os.PathLike[str],
    registry: TagRegistry | None = None,
    *,
    token: str | None = None,
    window: timedelta = timedelta(hours=24),
    grace: timedelta | Mapping[str, timedelta] | None = None,
    failure_threshold: int | Mapping[str, int] | None = None,
    failure_window: timedelta | Mapping[str, timedelta] | None = None,
    run_records: Mapping[str | JobTag, Any] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> JobsView:
    """The jobs view as a WSGI application.

    Args:
        store: the store, or the path of its database (opened read-only).
        registry: the application's jobs; each gets a row even before it logs,
            and its status from its alert rules' numbers. Jobs found only in
            the store are judged as manual jobs (never late).
        token: when set, every request needs ``Authorization: Bearer <token>``;
            in a browser, open any page once with ``?token=<token>``, which
            sets a cookie.
        window: the default span of the overview and a job page (``?window=``,
            ``?since=`` change it per request).
        grace, failure_threshold, failure_window, run_records: the alert
            rules' numbers, as given to ``otel-jobtags alerts``
            (:func:`otel_jobtags.grafana.alert_policies`).
        clock: what "now" is (UTC-aware); for tests.

    Raises:
        ConfigError: a setting is invalid (the message says which).
        UnknownJobError: an alert option names a job the registry does not have.
    """
    if not isinstance(window, timedelta) or not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ConfigError(
            f"Invalid window={window!r}: give a timedelta from 1 minute to {MAX_WINDOW.days} days"
        )
    if token is not None and (not isinstance(token, str) or len(token) < 16 or token != token.strip()):
        raise ConfigError("Invalid token: give a secret of at least 16 characters without surrounding spaces")
    options: dict[str, Any] = {
        "grace": grace,
        "failure_threshold": failure_threshold,
        "failure_window": failure_window,
        "run_records": run_records,
    }
    judge = Judge(registry, options)  # a bad option fails here, not at the first request
    opened = store if isinstance(store, Store) else Store.open(store, readonly=True)
    return JobsView(opened, judge, token=token, window=window, clock=clock or _utc_now)
