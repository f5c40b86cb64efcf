"""A minimal Flask app: tagged background jobs, the jobs view at /admin/jobs, and a per-job log page.

Run it, with ``otel-jobtags serve`` receiving its records into ``jobs.db``::

    pip install 'otel-jobtags[flask,scheduler]'
    otel-jobtags serve --db jobs.db &
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 JOBS_DB=jobs.db ADMIN_PASSWORD=change-me \
        flask --app examples/flask_admin/app.py run
    open 'http://127.0.0.1:5000/admin/jobs/'
    curl -u admin:change-me 'http://127.0.0.1:5000/admin/system/logs?job_id=auto_rebalance'

``/admin/jobs/`` is :func:`otel_jobtags.web.create_app` -- every job's status,
runs and lines -- mounted inside this app, behind the app's own login (HTTP
Basic with ``ADMIN_PASSWORD`` here; without one, only requests from this
machine get in).

Three jobs run on APScheduler, connected with ``otel_jobtags.scheduler.connect`` so everything it
logs carries its tag. A ``FileHandler`` with ``JobTagFilter`` always writes the
``[TAG]``-prefixed text log; when an OTLP endpoint is configured (``OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``) ``otel_jobtags.install`` exports to the
collector as well. ``/admin/jobs/`` reads the store at ``JOBS_DB``.
``GET /admin/system/logs?job_id=...`` shows a job's recent
records -- from Loki when ``LOKI_URL`` is configured, else from the log file --
and answers 400 with the known job ids for any other ``job_id``.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
import random
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, jsonify, render_template_string, request

from otel_jobtags import (
    ConfigError,
    JobTag,
    JobTagFilter,
    JobTagFormatter,
    JobTagsError,
    LogEntry,
    LokiClient,
    LokiError,
    TagRegistry,
    UnknownJobError,
    format_background_log,
    install,
    read_job_logs,
)
from otel_jobtags.configure import Installation
from otel_jobtags.logfiles import DEFAULT_LINE_FORMAT, rotated_files
from otel_jobtags.web import create_app as create_jobs_view

JOBS = TagRegistry()
PRICE_CACHE = JOBS.define("PRICE_CACHE", "price_cache", "refresh the price cache", "every 5 s")
AUTO_REBAL = JOBS.define(
    "AUTO_REBAL", "auto_rebalance", "automatic portfolio rebalancing", "hourly at minute 17"
)
TOKEN_REFRESH = JOBS.define(
    "TOKEN_REFRESH", "securities_token_refresh", "refresh the broker's OAuth token", "hourly at minute 0"
)

log = logging.getLogger("flask_admin.jobs")


class UpstreamError(RuntimeError):
    """What the broker's API answers now and then."""


# -- the jobs -----------------------------------------------------------------


def refresh_prices() -> None:
    """Every 5 s: a quiet exit when nothing changed, a summary otherwise."""
    changed = random.randint(0, 3)
    if not changed:
        return
    log.debug("fetched %d symbols", 40)
    log.info("📊 status summary - changed prices: %d", changed)


def auto_rebalance() -> None:
    """Hourly; the first run fails, so the log has a traceback to show."""
    log.info(format_background_log(AUTO_REBAL, "🔄 job started"))  # explicit prefixes work too
    log.debug("processed: %d items", 5)
    try:
        raise UpstreamError("upstream answered 503 for /api/rebalance")
    except UpstreamError:
        log.exception("❌ failed")


def refresh_token() -> None:
    log.info("🔑 token refreshed, valid for %d min", 60)


JOB_FUNCTIONS: dict[JobTag, Callable[[], None]] = {
    PRICE_CACHE: refresh_prices,
    AUTO_REBAL: auto_rebalance,
    TOKEN_REFRESH: refresh_token,
}


# -- wiring ---------------------------------------------------------------------


class JobLogging:
    """The log handlers, the optional OTLP export and the scheduler of one app, and their undo."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.log_file = Path(config["LOG_FILE"])
        self.root = logging.getLogger()
        self.previous_levels = (self.root.level, log.level)
        self.root.setLevel(logging.INFO)
        log.setLevel(logging.DEBUG)
        self.file_handler = logging.FileHandler(self.log_file, encoding="utf-8")
        # JobTagFormatter marks a record's continuation lines, so that a message
        # holding a newline and a header cannot show up as another job's record.
        self.file_handler.setFormatter(JobTagFormatter(DEFAULT_LINE_FORMAT))
        self.file_handler.addFilter(JobTagFilter(JOBS))
        self.root.addHandler(self.file_handler)
        self.installation: Installation | None = None
        if config.get("OTLP_ENDPOINT"):
            self.installation = install(
                JOBS,
                service_name=config["SERVICE_NAME"],
                endpoint=config["OTLP_ENDPOINT"],
                protocol=config.get("OTLP_PROTOCOL"),
            )
        self.scheduler: Any = None
        if config.get("SCHEDULER", True):
            self.scheduler = _start_scheduler()
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        """Stop the jobs, flush the export, and leave logging as it was."""
        with self._lock:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=True)
                self.scheduler = None
            if self.installation is not None:
                self.installation.shutdown()
                self.installation = None
            self.root.removeHandler(self.file_handler)
            self.file_handler.close()
            self.root.setLevel(self.previous_levels[0])
            log.setLevel(self.previous_levels[1])


def _start_scheduler() -> Any:
    from apscheduler.schedulers.background import BackgroundScheduler

    from otel_jobtags.scheduler import connect, trigger_for

    scheduler = BackgroundScheduler()
    # Every job runs inside its job context, with run records; untagged job ids are refused.
    connect(scheduler, JOBS)
    now = datetime.now().astimezone()
    for tag, func in JOB_FUNCTIONS.items():
        # Run each job once now, then on its registered schedule.
        scheduler.add_job(func, trigger_for(tag), id=tag.job_id, next_run_time=now)
    scheduler.start()
    return scheduler


# -- the admin pages ------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def admin_required(view: F) -> F:
    """The app's own login for its admin pages: HTTP Basic against ``ADMIN_PASSWORD``.

    Without a password configured only requests from this machine get in.
    """

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        password = current_app.config["ADMIN_PASSWORD"]
        if password is None:
            if not ipaddress.ip_address(request.remote_addr or "0.0.0.0").is_loopback:
                abort(403, "Set ADMIN_PASSWORD to open the admin pages to other machines")
            return view(*args, **kwargs)
        auth = request.authorization
        if (
            auth is None
            or auth.type != "basic"
            or not hmac.compare_digest(auth.username or "", current_app.config["ADMIN_USER"])
            or not hmac.compare_digest(auth.password or "", password)
        ):
            return Response("Log in to see the admin pages", 401, {"WWW-Authenticate": 'Basic realm="admin"'})
        return view(*args, **kwargs)

    return checked  # type: ignore[return-value]


PAGE = """<!doctype html>
<title>{{ tag }} - job logs</title>
<h1>[{{ tag }}] {{ job_id }}</h1>
<p>Jobs: {% for known in known_job_ids %}
<a href="?job_id={{ known }}&format=html">{{ known }}</a>{% endfor %}
<p>{{ records|length }} records from {{ origin }}
<table>
{% for r in records %}<tr class="{{ r.level|lower }}"><td>{{ r.time }}</td><td>{{ r.level }}</td>
<td>{{ r.message }}{% if r.continuation %}<pre>{{ r.continuation|join("\n") }}</pre>{% endif %}</td></tr>
{% endfor %}</table>
"""

ERROR_PAGE = """<!doctype html>
<title>Bad request</title>
<p>{{ error }}
<p>Known jobs: {% for known in known_job_ids %}
<a href="?job_id={{ known }}&format=html">{{ known }}</a>{% endfor %}
"""


def _error(message: str, status: int, as_html: bool) -> tuple[Response | str, int]:
    if as_html:
        return render_template_string(ERROR_PAGE, error=message, known_job_ids=JOBS.job_ids), status
    return jsonify(error=message, known_job_ids=list(JOBS.job_ids)), status


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The app. ``config`` overrides the defaults, which come from the environment:

    ``LOG_FILE`` (``flask-admin.log``), ``LOKI_URL`` (``$OTEL_JOBTAGS_LOKI_URL``, else ``$LOKI_URL``),
    ``OTLP_ENDPOINT`` (``$OTEL_EXPORTER_OTLP_ENDPOINT``), ``OTLP_PROTOCOL``, ``SERVICE_NAME``
    (``$OTEL_SERVICE_NAME``, else ``flask-admin-example``), ``SCHEDULER`` (run the jobs), and
    ``LOG_LIMIT`` (records shown by default, 200), ``JOBS_DB`` (``$JOBS_DB``: the store
    ``otel-jobtags serve --db`` writes, shown at ``/admin/jobs/``), ``ADMIN_USER`` (``admin``) and
    ``ADMIN_PASSWORD`` (``$ADMIN_PASSWORD``).
    """
    app = Flask(__name__)
    app.config.from_mapping(
        LOG_FILE=os.environ.get("LOG_FILE", "flask-admin.log"),
        LOKI_URL=os.environ.get("OTEL_JOBTAGS_LOKI_URL") or os.environ.get("LOKI_URL"),
        OTLP_ENDPOINT=os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        OTLP_PROTOCOL=os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL"),
        SERVICE_NAME=os.environ.get("OTEL_SERVICE_NAME", "flask-admin-example"),
        SCHEDULER=True,
        LOG_LIMIT=200,
        JOBS_DB=os.environ.get("JOBS_DB"),
        ADMIN_USER="admin",
        ADMIN_PASSWORD=os.environ.get("ADMIN_PASSWORD") or None,
    )
    app.config.update(config or {})
    state = JobLogging(app.config)
    app.extensions["otel_jobtags"] = state

    # The jobs view, mounted behind the app's login: the request goes to the view
    # with /admin/jobs as its SCRIPT_NAME, so every link it writes stays under it.
    jobs_view = create_jobs_view(app.config["JOBS_DB"], JOBS) if app.config["JOBS_DB"] else None

    @app.route("/admin/jobs/", defaults={"path": ""})
    @app.route("/admin/jobs/<path:path>")
    @admin_required
    def jobs(path: str) -> Any:
        if jobs_view is None:
            abort(404, "Set JOBS_DB to the database `otel-jobtags serve --db` writes to see the jobs here")
        environ = dict(request.environ)
        environ["SCRIPT_NAME"] = f"{request.script_root}/admin/jobs"
        environ["PATH_INFO"] = f"/{path}"
        return Response.from_app(jobs_view, environ)

    @app.get("/admin/system/logs")
    @admin_required
    def system_logs() -> Any:
        as_html = request.args.get("format") == "html"
        job_id = request.args.get("job_id", "")
        try:
            tag = JOBS.by_job_id(job_id)  # only a registered job id reaches a filter or a query
        except UnknownJobError as exc:
            return _error(str(exc), 400, as_html)
        try:
            limit = int(request.args.get("limit", app.config["LOG_LIMIT"]))
            if not 1 <= limit <= 5000:
                raise ValueError
        except ValueError:
            return _error("Invalid limit: give a whole number from 1 to 5000", 400, as_html)
        level = request.args.get("level") or None
        try:
            records: list[LogEntry]
            if app.config["LOKI_URL"]:
                source = "loki"
                client = LokiClient(app.config["LOKI_URL"], timeout=5)
                records = client.query(
                    tag, registry=JOBS, service_name=app.config["SERVICE_NAME"], level=level, limit=limit
                )
            else:
                source = "file"
                records = (
                    read_job_logs(state.log_file, tag, registry=JOBS, level=level, limit=limit)
                    if rotated_files(state.log_file)
                    else []
                )
        except ConfigError as exc:  # e.g. an invalid level
            return _error(str(exc), 400, as_html)
        except LokiError as exc:
            return _error(str(exc), 502, as_html)
        except JobTagsError as exc:
            return _error(str(exc), 500, as_html)
        if as_html:
            return render_template_string(
                PAGE,
                tag=tag.name,
                job_id=tag.job_id,
                records=records,
                origin=source,
                known_job_ids=JOBS.job_ids,
            )
        return jsonify(job_id=tag.job_id, tag=tag.name, source=source, records=[r.to_dict() for r in records])

    return app
