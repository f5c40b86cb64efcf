"""Charts drawn as SVG on the server: a volume sparkline, levels over time, and a runs timeline.

Every chart is a string of SVG markup with no style attribute and no script:
colours come from classes the packaged stylesheet defines, so the page's
Content-Security-Policy needs no ``unsafe-inline``. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

from ..store import LEVELS, Run
from ._text import duration_ms_text, esc, time_text

__all__ = ["levels_chart", "runs_timeline", "sparkline"]

WIDTH = 960
"""The width of the job page's charts, in SVG user units (they scale to the page)."""
_LEFT = 90  # room for the y labels and the timeline's lane names
_RIGHT = 10
_MAX_LANES = 8


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline(values: Sequence[int], *, width: int = 120, height: int = 28, label: str = "") -> str:
    """Bars for a volume series, oldest first, scaled to its largest value."""
    top = max(values, default=0)
    step = width / max(len(values), 1)
    bars = []
    for i, value in enumerate(values):
        if value <= 0:
            continue
        h = max(1.0, value / top * (height - 2))
        bars.append(
            f'<rect x="{_num(i * step)}" y="{_num(height - h)}" width="{_num(max(step - 1, 1))}" '
            f'height="{_num(h)}"/>'
        )
    title = f"<title>{esc(label)}</title>" if label else ""
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{esc(label)}">{title}'
        f'<line class="base" x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}"/>'
        f"{''.join(bars)}</svg>"
    )


_TICK_STEPS = [
    timedelta(seconds=n)
    for n in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
] + [timedelta(hours=12), timedelta(days=1), timedelta(days=2), timedelta(days=7)]


def _ticks(since: datetime, until: datetime, plot: float, most: int = 7) -> list[str]:
    """Grid lines and time labels at round times (every 5 min, every 2 h...): at most ``most``."""
    span = until - since
    if span <= timedelta(0):
        return []
    step = next((s for s in _TICK_STEPS if span / s <= most), _TICK_STEPS[-1])
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    first = (
        epoch + -((epoch - since.astimezone(timezone.utc)) // step) * step
    )  # the first round time >= since
    marks = []
    moment = first
    while moment <= until:
        x = _LEFT + (moment - since) / span * plot
        anchor = "end" if x > _LEFT + plot - 30 else "middle"
        marks.append(
            f'<line class="grid" x1="{_num(x)}" y1="0" x2="{_num(x)}" y2="100%"/>'
            f'<text class="tick" x="{_num(x)}" y="100%" dy="-4" text-anchor="{anchor}">'
            f"{esc(time_text(moment, span, seconds=step < timedelta(minutes=1)))}</text>"
        )
        moment += step
    return marks


def levels_chart(
    counts: Mapping[str, Sequence[int]], since: datetime, until: datetime, *, height: int = 190
) -> str:
    """Stacked bars of records per level in equal slices of ``[since, until)``: errors at the bottom."""
    buckets = max((len(series) for series in counts.values()), default=0)
    plot = WIDTH - _LEFT - _RIGHT
    base = height - 22
    totals = [sum(counts.get(level, [0] * buckets)[i] for level in LEVELS) for i in range(buckets)]
    top = max(totals, default=0)
    step = plot / max(buckets, 1)
    slice_ = (until - since) / max(buckets, 1)
    parts = _ticks(since, until, plot)
    parts.append(f'<text class="tick" x="{_LEFT - 6}" y="12" text-anchor="end">{top}</text>')
    parts.append(f'<text class="tick" x="{_LEFT - 6}" y="{base}" text-anchor="end">0</text>')
    for i in range(buckets):
        if not totals[i]:
            continue
        y = float(base)
        start = since + slice_ * i
        for level in reversed(LEVELS):  # CRITICAL and ERROR nearest the axis, where they are seen
            value = counts.get(level, [0] * buckets)[i]
            if not value:
                continue
            h = max(1.0, value / top * (base - 14))
            y -= h
            parts.append(
                f'<rect class="lvl-{level}" x="{_num(_LEFT + i * step)}" y="{_num(y)}" '
                f'width="{_num(max(step - 1, 1))}" height="{_num(h)}"><title>'
                f"{esc(time_text(start, slice_, seconds=True))}: {value} {level}</title></rect>"
            )
    if not top:
        parts.append(
            f'<text class="empty" x="{_num(_LEFT + plot / 2)}" y="{base // 2}" text-anchor="middle">'
            "No records in this range</text>"
        )
    parts.append(f'<line class="axis" x1="{_LEFT}" y1="{base}" x2="{WIDTH - _RIGHT}" y2="{base}"/>')
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="records per level over time">{"".join(parts)}</svg>'
    )


def _lanes(runs: Sequence[Run]) -> list[str]:
    """One lane per process that ran the job, most recent first; the rest share the last lane."""
    seen: list[str] = []
    for run in runs:
        name = run.instance or "unknown"
        if name not in seen:
            seen.append(name)
    return seen


def runs_timeline(runs: Sequence[Run], since: datetime, until: datetime) -> str:
    """Each run as a bar from its start to its end, coloured by outcome, one lane per process.

    Runs that did not run (missed, skipped) are a tick at the time they were recorded.
    """
    names = _lanes(runs)
    shown = names[: _MAX_LANES - 1] if len(names) > _MAX_LANES else names
    lane_of = {name: i for i, name in enumerate(shown)}
    lanes = len(shown) + (1 if len(names) > len(shown) else 0)
    lane_height = 22
    height = max(lanes, 1) * lane_height + 26
    plot = WIDTH - _LEFT - _RIGHT
    span = (until - since).total_seconds() or 1.0

    def x_of(moment: datetime) -> float:
        return _LEFT + min(max((moment - since).total_seconds() / span, 0.0), 1.0) * plot

    parts = _ticks(since, until, plot)
    for i, name in enumerate(shown):
        label = name if len(name) <= 12 else name[:11] + "…"
        parts.append(
            f'<text class="lane" x="{_LEFT - 6}" y="{i * lane_height + 15}" text-anchor="end">'
            f"<title>{esc(name)}</title>{esc(label)}</text>"
        )
    if lanes > len(shown):
        parts.append(
            f'<text class="lane" x="{_LEFT - 6}" y="{len(shown) * lane_height + 15}" '
            f'text-anchor="end">others</text>'
        )
    for run in sorted(runs, key=lambda r: r.end):
        lane = lane_of.get(run.instance or "unknown", lanes - 1)
        y = lane * lane_height + 3
        end = x_of(run.end)
        what = [run.outcome, f"ended {time_text(run.end, timedelta(0), seconds=True)}"]
        if run.duration_ms is not None:
            what.insert(1, duration_ms_text(run.duration_ms))
        if run.runs > 1:
            what.insert(1, f"{run.runs} runs")
        if run.run_id:
            what.append(f"run {run.run_id}")
        title = f"<title>{esc(' · '.join(what))}</title>"
        if run.start is None:
            parts.append(
                f'<rect class="run run-{esc(run.outcome)} tick" x="{_num(end - 1.5)}" y="{y}" '
                f'width="3" height="{lane_height - 6}">{title}</rect>'
            )
            continue
        start = x_of(run.start)
        parts.append(
            f'<rect class="run run-{esc(run.outcome)}" x="{_num(min(start, end - 2))}" y="{y}" '
            f'width="{_num(max(end - start, 2))}" height="{lane_height - 6}">{title}</rect>'
        )
    return (
        f'<svg class="chart runs" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="runs over time by outcome">{"".join(parts)}</svg>'
    )
