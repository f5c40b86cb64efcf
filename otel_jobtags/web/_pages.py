"""The overview page and the parts every page shares: the layout, status badges, level counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from ..grafana import FAILING, LATE, OVERLAPPING
from ..store import LEVELS
from ._figures import JobRow
from ._svg import sparkline
from ._text import ago_text, duration_ms_text, esc, iso, span_text, time_text

__all__ = ["WINDOWS", "badges", "job_href", "level_counts", "overview_page", "page", "status_counts"]

WINDOWS = (
    ("1h", timedelta(hours=1)),
    ("6h", timedelta(hours=6)),
    ("24h", timedelta(days=1)),
    ("7d", timedelta(days=7)),
)
"""The windows the overview offers as links."""
_STATUS_ORDER = (FAILING, LATE, OVERLAPPING)
_STATUS_HELP = {
    FAILING: "failed runs reached the alert rule's threshold, none succeeded since",
    LATE: "no successful run within the schedule's longest gap plus grace",
    OVERLAPPING: "two processes ran the job at the same time",
    "ok": "no alert rule fires",
}


def page(base: str, title: str, body: str, *, scripts: Sequence[str] = (), now: datetime) -> str:
    """A whole HTML page; ``body`` is already escaped markup."""
    script_tags = "".join(f'<script src="{esc(base)}/static/{esc(name)}" defer></script>' for name in scripts)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="referrer" content="no-referrer"><title>{esc(title)}</title>'
        f'<link rel="icon" href="{esc(base)}/static/favicon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{esc(base)}/static/view.css">{script_tags}</head>'
        f'<body><header class="top"><a class="brand" href="{esc(base)}/">Background jobs</a>'
        f'<span class="now">{esc(iso(now))}</span></header><main>{body}</main>'
        '<footer>otel-jobtags · times in UTC · <a href="'
        f'{esc(base)}/api/v1/jobs">JSON</a></footer></body></html>'
    )


def error_page(base: str, status: str, message: str, now: datetime) -> str:
    """The page for a bad request or a missing job."""
    body = (
        f'<h1>{esc(status)}</h1><p class="error">{esc(message)}</p><p><a href="{esc(base)}/">Overview</a></p>'
    )
    return page(base, status, body, now=now)


def job_href(base: str, tag: str, **params: str) -> str:
    """The link to a job's page, with filters."""
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{base}/jobs/{quote(tag, safe='')}" + (f"?{query}" if query else "")


def badges(status: tuple[str, ...] | None) -> str:
    """The status as badges: one per firing rule, ``ok`` when none, ``–`` when not judged."""
    if status is None:
        return '<span class="badge st-none" title="not judged: no alert rules for this job">–</span>'
    if not status:
        return f'<span class="badge st-ok" title="{esc(_STATUS_HELP["ok"])}">ok</span>'
    return " ".join(
        f'<span class="badge st-{esc(s)}" title="{esc(_STATUS_HELP.get(s, s))}">{esc(s)}</span>'
        for s in status
    )


def level_counts(by_level: dict[str, int]) -> str:
    """The records by level, highest level first; levels with none are left out."""
    pills = [
        f'<span class="lv lv-{level}" title="{by_level[level]} {level} records">'
        f"<b>{by_level[level]:,}</b> {level.lower()}</span>"
        for level in reversed(LEVELS)
        if by_level.get(level)
    ]
    return " ".join(pills) or '<span class="muted">none</span>'


def status_counts(rows: Sequence[JobRow]) -> dict[str, int]:
    """How many jobs are ok, and how many each rule flags."""
    counts = {"ok": 0, **dict.fromkeys(_STATUS_ORDER, 0)}
    for row in rows:
        if row.status is None:
            continue
        if not row.status:
            counts["ok"] += 1
        for s in row.status:
            counts[s] = counts.get(s, 0) + 1
    return counts


def _row(base: str, row: JobRow, now: datetime, window: timedelta) -> str:
    a = row.activity
    sub = " · ".join(part for part in (row.job_id or "", row.description) if part)
    last = (
        f'<time datetime="{esc(iso(a.last_success))}" title="{esc(iso(a.last_success))}">'
        f"{esc(ago_text(a.last_success, now))}</time>"
        if a.last_success
        else '<span class="muted">never</span>'
    )
    p95 = duration_ms_text(a.p95_duration_ms) if a.p95_duration_ms is not None else "–"
    failures = f'<span class="bad">{a.failures:,}</span>' if a.failures else "0"
    schedule = esc(row.schedule) if row.schedule else '<span class="muted">not registered</span>'
    label = f"{a.records:,} records in the last {span_text(window)}"
    return (
        f'<tr data-job="{esc(row.tag)}"><td class="job"><a href="{esc(job_href(base, row.tag))}">'
        f'{esc(row.tag)}</a><div class="sub">{esc(sub)}</div></td>'
        f'<td class="status">{badges(row.status)}</td>'
        f'<td class="schedule">{schedule}</td>'
        f'<td class="num runs">{a.runs:,}</td><td class="num failures">{failures}</td>'
        f'<td class="last-success">{last}</td><td class="num p95">{esc(p95)}</td>'
        f'<td class="levels">{level_counts(a.by_level)}</td>'
        f'<td class="volume">{sparkline(a.volume, label=label)}</td></tr>'
    )


def overview_page(base: str, rows: Sequence[JobRow], now: datetime, window: timedelta) -> str:
    """The overview: one row per job."""
    links = " ".join(
        f'<a class="{"on" if span == window else ""}" href="{esc(base)}/?window={text}">{text}</a>'
        for text, span in WINDOWS
    )
    counts = status_counts(rows)
    summary = " ".join(
        f'<span class="count st-{esc(name)}"><b>{n}</b> {esc(name)}</span>'
        for name, n in counts.items()
        if n or name == "ok"
    )
    head = (
        "<tr><th>Job</th><th>Status</th><th>Schedule</th><th>Runs</th><th>Failures</th>"
        "<th>Last success</th><th>p95</th><th>Records by level</th>"
        f"<th>Volume, last {esc(span_text(window))}</th></tr>"
    )
    body_rows = "".join(_row(base, row, now, window) for row in rows)
    if not rows:
        body_rows = '<tr><td colspan="9" class="muted">No job has logged yet.</td></tr>'
    return page(
        base,
        "Background jobs",
        f'<div class="bar"><h1>Jobs <span class="muted">{len(rows)}</span></h1>'
        f'<div class="summary">{summary}</div>'
        f'<nav class="windows">Window: {links}</nav></div>'
        f'<div class="scroll"><table class="jobs"><thead>{head}</thead><tbody>{body_rows}</tbody>'
        "</table></div>"
        f'<p class="muted small">Runs, failures, p95 and records over the last {esc(span_text(window))} '
        f"(until {esc(time_text(now, window, seconds=True))}): {sum(r.activity.records for r in rows):,} "
        "records. Status as the "
        "generated Grafana alert rules decide it.</p>",
        now=now,
    )
