"""A minimal Flask app: tagged background jobs and the seed's admin log page.

Run it::

    pip install 'otel-jobtags[flask,scheduler]'
    flask --app examples/flask_admin/app.py run
    curl 'http://127.0.0.1:5000/admin/system/logs?job_id=auto_rebalance'
    open 'http://127.0.0.1:5000/admin/system/logs?job_id=auto_rebalance&format=html'

Three jobs run on APScheduler, connected with ``otel_jobtags.scheduler.connect`` so everything it
logs carries its tag. A ``FileHandler`` with ``JobTagFilter`` always writes the
seed's text log; when an OTLP endpoint is configured (``OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``) ``otel_jobtags.install`` exports to the
collector as well. ``GET /admin/system/logs?job_id=...`` shows a job's recent
records -- from Loki when ``LOKI_URL`` is configured, else from the log file --
and answers 400 with the known job ids for any other ``job_id``.

# @FEAT:background-log-tagging
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, render_template_string, request

from otel_jobtags import (
    ConfigError,
    Installation,
    JobTag,
    JobTagFilter,
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
from otel_jobtags.logfiles import DEFAULT_LINE_FORMAT, rotated_files

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
    """Every 5 s: the seed's quiet exit when nothing changed, a summary otherwise."""
    changed = random.randint(0, 3)
    if not changed:
        return
    log.debug("fetched %d symbols", 40)
    log.info("📊 status summary - changed prices: %d", changed)


def auto_rebalance() -> None:
    """Hourly; the first run fails, so the log has a traceback to show."""
    log.info(format_background_log(AUTO_REBAL, "🔄 job started"))  # the seed's explicit style works too
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
        self.file_handler.setFormatter(logging.Formatter(DEFAULT_LINE_FORMAT))
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


# -- the admin page -------------------------------------------------------------

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
    ``LOG_LIMIT`` (records shown by default, 200).
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
    )
    app.config.update(config or {})
    state = JobLogging(app.config)
    app.extensions["otel_jobtags"] = state

    @app.get("/admin/system/logs")
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
