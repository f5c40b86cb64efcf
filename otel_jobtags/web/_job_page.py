"""A job's page: its status and why, levels over time, runs as a timeline, and its latest lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from ..grafana import FAILING, LATE, OVERLAPPING, overlapping_instances, overlapping_runs
from ..scheduler import Outcome
from ..store import LEVELS, RecordPage, Run, StoredRecord
from ._figures import JobRow, run_spans
from ._pages import badges, job_href, level_counts, page
from ._params import RecordFilter
from ._svg import levels_chart, runs_timeline
from ._text import ago_text, duration_ms_text, esc, iso, span_text, time_text

__all__ = ["job_page", "record_row"]

RUNS_LISTED = 8
"""How many of the latest runs the runs table lists."""
SINCE_CHOICES = ("15m", "1h", "6h", "24h", "7d")
_SUMMARY_CHARS = 300
SHOWN_CHARS = 20_000
"""The most of one body, traceback or attribute a page shows (the JSON API has all of it)."""
_STACKTRACE = "exception.stacktrace"
_RUN_ID = "job.run_id"
_SHOWN_ELSEWHERE = {"job.tag", "job.id", _RUN_ID, _STACKTRACE}


def _why(row: JobRow, runs: Sequence[Run], now: datetime) -> str:
    """One sentence per firing rule, with the numbers it used."""
    policy, status = row.policy, row.status or ()
    if policy is None:
        return ""
    lines = []
    if LATE in status and policy.late_window is not None:
        lines.append(
            f"<li><b>late</b>: no successful run in the last {esc(span_text(policy.late_window))} "
            f"(longest regular gap {esc(span_text(policy.success_gap or policy.late_window))} + "
            f"grace {esc(span_text(policy.grace))}); "
            + (
                f"last success {esc(ago_text(row.activity.last_success, now))}.</li>"
                if row.activity.last_success is not None
                else "no success recorded.</li>"
            )
        )
    if FAILING in status:
        lines.append(
            f"<li><b>failing</b>: at least {policy.failure_threshold} failed "
            f"run{'s' if policy.failure_threshold > 1 else ''} in the last "
            f"{esc(span_text(policy.failure_window))}, and none succeeded since the latest.</li>"
        )
    if OVERLAPPING in status:
        window = policy.overlap_window
        processes = overlapping_instances([run.as_alert_run() for run in runs], now, window=window)
        named = " and ".join(f"<code>{esc(process)}</code>" for process in processes)
        pairs = overlapping_runs(run_spans(runs), now, window=window)
        at_once = ""
        if pairs:
            a, b = pairs[-1]
            at_once = (
                f" {len(pairs)} pair{'s' if len(pairs) > 1 else ''} of runs at once, latest: processes "
                f"<code>{esc(a.instance)}</code> and <code>{esc(b.instance)}</code> both running at "
                f"{esc(time_text(b.start, window, seconds=True))}."
            )
        lines.append(
            f"<li><b>overlapping</b>: processes {named} each kept running it throughout the last "
            f"{esc(span_text(window))}: every run happens once per process.{at_once}</li>"
        )
    rules = (
        f"late after {esc(span_text(policy.late_window))} without success"
        if policy.late_window is not None
        else "never late"
    )
    lines.append(
        f'<li class="muted">Rules: {rules}; failing at {policy.failure_threshold} failure(s) within '
        f"{esc(span_text(policy.failure_window))}.</li>"
    )
    return f'<ul class="why">{"".join(lines)}</ul>'


def _stats(row: JobRow, now: datetime, window_text: str) -> str:
    a = row.activity
    cards = [
        ("Runs", f"{a.runs:,}"),
        ("Failures", f"{a.failures:,}"),
        ("Last success", ago_text(a.last_success, now)),
        ("p95 duration", duration_ms_text(a.p95_duration_ms) if a.p95_duration_ms is not None else "–"),
        ("Records", f"{a.records:,}"),
    ]
    items = "".join(f'<div class="card"><span>{esc(k)}</span><b>{esc(v)}</b></div>' for k, v in cards)
    return f'<div class="cards" title="over {esc(window_text)}">{items}</div>'


def _filters(base: str, row: JobRow, f: RecordFilter, given: Mapping[str, str], default: timedelta) -> str:
    levels = "".join(
        f'<option value="{lv}"{" selected" if f.level == lv else ""}>{lv.lower()} and above</option>'
        for lv in LEVELS
    )
    since = given.get("since", "")
    options = "".join(
        f'<option value="{s}"{" selected" if since == s else ""}>last {s}</option>' for s in SINCE_CHOICES
    )
    if since and since not in SINCE_CHOICES:
        label = f"last {since}" if since[:1].isdigit() and since[-1:].isalpha() else f"since {since}"
        options += f'<option value="{esc(since)}" selected>{esc(label)}</option>'
    return (
        f'<form class="filters" method="get" action="{esc(job_href(base, row.tag))}">'
        f'<label>Level <select name="level"><option value="">any</option>{levels}</select></label>'
        f'<label>Time <select name="since"><option value="">last {esc(span_text(default))}</option>{options}'
        "</select></label>"
        f'<label>Until <input name="until" value="{esc(given.get("until", ""))}" placeholder="now" '
        'size="12"></label>'
        f'<label>Text <input name="q" value="{esc(f.text or "")}" placeholder="contains…" size="18"></label>'
        f'<label>Run <input name="run" value="{esc(f.run_id or "")}" placeholder="run id" size="10"></label>'
        '<button type="submit">Apply</button>'
        f'<a class="clear" href="{esc(job_href(base, row.tag))}">clear</a></form>'
    )


def _runs_table(base: str, row: JobRow, runs: Sequence[Run], window_text: str) -> str:
    if not runs:
        return '<p class="muted">No run recorded in this range.</p>'
    lines = []
    for run in runs[:RUNS_LISTED]:
        run_link = ""
        if run.run_id:
            href = job_href(base, row.tag, run=run.run_id, since=window_text)
            run_link = f'<a href="{esc(href)}">{esc(run.run_id)}</a>'
        duration = duration_ms_text(run.duration_ms) if run.duration_ms is not None else "–"
        count = f" ×{run.runs}" if run.runs > 1 else ""
        lines.append(
            f'<tr><td class="ended"><time datetime="{esc(iso(run.end))}">{esc(iso(run.end))}</time></td>'
            f'<td><span class="badge run-{esc(run.outcome)}">{esc(run.outcome)}{esc(count)}</span></td>'
            f'<td class="num">{esc(duration)}</td>'
            f'<td class="mono proc" title="{esc(run.instance or "")}">{esc(run.instance or "")}</td>'
            f'<td class="mono">{run_link}</td><td class="body">{esc(run.body)}</td></tr>'
        )
    more = (
        f'<p class="muted small">Latest {RUNS_LISTED} of {len(runs)}.</p>' if len(runs) > RUNS_LISTED else ""
    )
    return (
        '<div class="scroll"><table class="runs"><thead><tr><th>Ended</th><th>Outcome</th><th>Duration</th>'
        f"<th>Process</th><th>Run</th><th>Record</th></tr></thead><tbody>{''.join(lines)}</tbody></table></div>"
        f"{more}"
    )


def _clipped(text: str) -> str:
    """``text`` escaped, cut at :data:`SHOWN_CHARS` with a note of what was left out."""
    if len(text) <= SHOWN_CHARS:
        return esc(text)
    return (
        f'{esc(text[:SHOWN_CHARS])}<span class="muted">… {len(text) - SHOWN_CHARS:,} more characters</span>'
    )


def record_row(base: str, tag: str, record: StoredRecord) -> str:
    """One line of the job's log; a multi-line body, a traceback or attributes expand."""
    body = record.body
    first, _, rest = body.partition("\n")
    stack = record.attributes.get(_STACKTRACE)
    extra = {k: v for k, v in record.attributes.items() if k not in _SHOWN_ELSEWHERE}
    summary = esc(first[:_SUMMARY_CHARS] + ("…" if len(first) > _SUMMARY_CHARS else ""))
    if rest or stack or extra or len(first) > _SUMMARY_CHARS:
        details = []
        if rest or len(first) > _SUMMARY_CHARS:
            details.append(f'<pre class="full">{_clipped(body)}</pre>')
        if isinstance(stack, str) and stack:
            details.append(f'<pre class="trace">{_clipped(stack)}</pre>')
        if extra:
            pairs = "".join(f"<dt>{esc(k)}</dt><dd>{_clipped(str(v))}</dd>" for k, v in sorted(extra.items()))
            details.append(f'<dl class="attrs">{pairs}</dl>')
        mark = ' <span class="tb">traceback</span>' if stack else ""
        message = f"<details><summary>{summary}{mark}</summary>{''.join(details)}</details>"
    else:
        message = summary
    run_id = record.run_id
    run_link = f'<a href="{esc(job_href(base, tag, run=run_id))}">{esc(run_id)}</a>' if run_id else ""
    return (
        f'<tr class="rec lvl-row-{record.level}" data-id="{record.id}">'
        f'<td class="time"><time datetime="{esc(iso(record.time))}">{esc(iso(record.time))}</time></td>'
        f'<td class="level"><span class="lv lv-{record.level}" '
        f'title="severity {record.severity_number} {esc(record.severity_text)}">{record.level}</span></td>'
        f'<td class="mono run">{run_link}</td><td class="msg">{message}</td></tr>'
    )


def _key(css: str, text: str) -> str:
    return (
        f'<span class="key"><svg width="11" height="11" aria-hidden="true"><rect class="{css}" '
        f'width="11" height="11" rx="2"/></svg> {esc(text)}</span>'
    )


def job_page(
    base: str,
    row: JobRow,
    *,
    now: datetime,
    f: RecordFilter,
    given: Mapping[str, str],
    levels: Mapping[str, Sequence[int]],
    runs: Sequence[Run],
    lines: RecordPage,
    api_query: str,
    default_since: timedelta,
) -> str:
    """The whole job page."""
    until = f.until or now
    span = until - f.since
    window_text = given.get("since", "")
    sub = " · ".join(
        p for p in (row.job_id or "", row.description, row.schedule or "not in the registry") if p
    )
    heading = (
        f'<div class="bar"><h1>[{esc(row.tag)}] {badges(row.status)}</h1>'
        f'<div class="sub">{esc(sub)}</div></div>{_why(row, runs, now)}'
    )
    older = ""
    if lines.next_cursor:
        params = {**given, "cursor": lines.next_cursor}
        older = f'<p><a class="older" href="{esc(job_href(base, row.tag, **params))}">Older lines →</a></p>'
    follow = (
        '<label class="follow"><input type="checkbox" id="follow"> live follow</label>'
        if f.until is None
        else ""
    )
    rows = "".join(record_row(base, row.tag, r) for r in lines.records)
    empty = "" if lines.records else '<p class="muted empty">No line matches these filters.</p>'
    legend = "".join(_key(f"run-{o}", o) for o in (outcome.value for outcome in Outcome))
    level_keys = "".join(_key(f"lvl-{lv}", lv.lower()) for lv in reversed(LEVELS))
    body = (
        f"{heading}{_stats(row, now, span_text(span))}{_filters(base, row, f, given, default_since)}"
        f'<section><h2>Levels over time <span class="muted">{esc(iso(f.since))} → '
        f"{esc(iso(until))}</span></h2>"
        f'<div class="legend">{level_keys}</div>{levels_chart(levels, f.since, until)}'
        f'<div class="counts">{level_counts(row.activity.by_level)}</div></section>'
        f'<section><h2>Runs</h2><div class="legend">{legend}</div>{runs_timeline(runs, f.since, until)}'
        f"{_runs_table(base, row, runs, window_text)}</section>"
        f"<section><h2>Latest lines {follow}</h2>"
        '<div class="scroll">'
        f'<table class="lines" id="lines" data-api="{esc(base)}/api/v1/records?{esc(api_query)}" '
        f'data-job="{esc(row.tag)}" data-base="{esc(base)}" data-after="{lines.latest_id}">'
        f"<tbody>{rows}</tbody></table></div>{empty}{older}</section>"
    )
    return page(base, f"[{row.tag}] job", body, scripts=["follow.js"], now=now)
