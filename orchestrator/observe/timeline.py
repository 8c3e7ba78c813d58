"""A timeline picture of a run as SVG: a Gantt chart with one row per task, labelled with its
whole id, and one bar per attempt on that row. A failed attempt that was retried is hatched and
the wait before its retry is drawn, so no slot looks idle while an attempt ran; a shaded band marks
each gap while no orchestrator of the run was running.

Plain string building (no drawing library): the picture is small, and every piece of text that
comes from a prompt (task ids) is XML-escaped.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import NamedTuple
from xml.sax.saxutils import escape, quoteattr

from orchestrator.config.durations import format_duration
from orchestrator.models import AttemptRecord, TaskResult, TaskSummary
from orchestrator.observe.run_segments import RunTiming, parse_ts

COLOURS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "timeout": "#ef6c00",
    "cancelled": "#8e8e8e",
    "running": "#1565c0",
    "queued": "#b0bec5",
}
OTHER_COLOUR = "#607d8b"
WAIT_COLOUR = "#757575"
WAIT_LABEL = "retry wait"
GAP_FILL = "#ffe0b2"
GAP_EDGE = "#ef6c00"
GAP_LABEL = "orchestrator not running"
FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
WIDTH = 1000  # unless the longest id needs a wider label margin than this leaves
MIN_CHART = 600  # the time axis never gets narrower than this: long ids widen the picture instead
PAD = 10
RIGHT = 30
TOP = 56  # title and subtitle
ROW = 34
# Past 41 tasks rows shrink from ROW to keep the chart within FIT_CHART pixels, but never below
# MIN_ROW (reached at 100 tasks): one line of 12px text, the least that keeps every whole id
# legible. Beyond that the picture grows by MIN_ROW per task rather than dropping or shortening
# names: 200 tasks give a chart of 2800px, a picture about 2950px tall.
MIN_ROW = 14
FIT_CHART = 1400
BAR_SHARE = 0.7  # of the row's height
TALL_CHART = 600  # a chart this tall gets its time labels on top as well as below
AXIS = 46
LEGEND = 34
CHAR_W = 7.2  # average advance of a 12px sans-serif character
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
# Timestamps from different processes may disagree by a few milliseconds: a task launched as
# another ended can appear to start a hair before that one ended. Not counted as running at once.
_SLACK = 0.25


@dataclass(frozen=True)
class AttemptBar:
    """One attempt of a task, in seconds from the picture's origin."""

    attempt: int
    status: str
    start: float
    end: float
    earlier: AttemptRecord | None = None
    """Set for an attempt that was tried again: the record of how it ended."""

    @property
    def retried(self) -> bool:
        return self.earlier is not None


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    status: str  # the task's final status
    attempts: int
    bars: tuple[AttemptBar, ...]  # the attempts that have times, oldest first


@dataclass(frozen=True)
class Layout:
    rows: list[TaskRow]  # ordered by first start
    never: list[str]  # tasks that made no attempt
    untimed: dict[str, list[int]]  # per task, attempts whose times were not recorded (older versions)


class _Timed(NamedTuple):
    attempt: int
    status: str
    start: datetime
    end: datetime | None
    earlier: AttemptRecord | None


def _timed_attempts(row: TaskSummary, result: TaskResult | None) -> tuple[list[_Timed], list[int]]:
    """The task's attempts that have times, oldest first, and the numbers of those that have none.
    Earlier attempts come from the result; the last is the row itself, drawn if it started."""
    timed: list[_Timed] = []
    untimed: list[int] = []
    for record in result.attempts if result is not None else []:
        start, end = parse_ts(record.started_at), parse_ts(record.completed_at)
        if start is None or end is None:
            untimed.append(record.attempt)
        else:
            timed.append(_Timed(record.attempt, record.status.value, start, end, record))
    start = parse_ts(row.started_at)
    if start is not None:
        last = result.attempt if result is not None else max(row.attempts, 1)
        timed.append(_Timed(last, row.status.value, start, parse_ts(row.completed_at), None))
    return timed, untimed


def lay_out(
    tasks: Sequence[TaskSummary],
    results: Mapping[str, TaskResult],
    *,
    now: datetime | None = None,
    origin: datetime | None = None,
) -> Layout:
    """A row for each task with an attempt that has times. An attempt without an end (still
    running) is drawn up to `now`, or to the latest time seen. Times count from `origin`, else
    from the first start."""
    found: list[tuple[TaskSummary, list[_Timed]]] = []
    never: list[str] = []
    untimed: dict[str, list[int]] = {}
    for row in tasks:
        result = results.get(row.task_id)
        timed, missing = _timed_attempts(row, result)
        if missing:
            untimed[row.task_id] = missing
        if timed:
            found.append((row, timed))
        elif not missing:
            never.append(row.task_id)
    if not found:
        return Layout([], never, untimed)
    every = [t for _, timed in found for t in timed]
    t0 = origin if origin is not None else min(t.start for t in every)
    latest = max([t.start for t in every] + [t.end for t in every if t.end is not None])
    if now is not None:
        latest = max(latest, now if now.tzinfo is not None else now.replace(tzinfo=UTC))

    def seconds(at: datetime) -> float:
        return max((at - t0).total_seconds(), 0.0)

    rows = [
        TaskRow(row.task_id, row.status.value, max([row.attempts] + [t.attempt for t in timed]), tuple(
            AttemptBar(t.attempt, t.status, seconds(t.start), max(seconds(t.end or latest), seconds(t.start)),
                       t.earlier) for t in timed))
        for row, timed in sorted(found, key=lambda f: (min(t.start for t in f[1]), f[0].task_id))
    ]
    return Layout(rows, never, untimed)


def peak_concurrency(bars: Sequence[AttemptBar]) -> int:
    """The most attempts running at one instant, measured from the bars (not the limit). The peak
    is reached at some bar's start: count the bars running then (quadratic, for a few hundred)."""
    return max((sum(1 for j, b in enumerate(bars) if j == i or b.start <= a.start < b.end - _SLACK)
                for i, a in enumerate(bars)), default=0)


def row_height(n_rows: int) -> float:
    return max(MIN_ROW, min(ROW, FIT_CHART / max(n_rows, 1)))


def text_width(text: str) -> float:
    """A generous estimate of `text`'s width in 12px sans-serif, so a margin this wide holds it."""
    def advance(ch: str) -> float:
        if unicodedata.east_asian_width(ch) in "WF" or ch in "mwMW@%":
            return 12.0
        return 8.6 if ch.isupper() else 7.7 if ch.isdigit() else CHAR_W

    return sum(advance(ch) for ch in text)


def tick_step(span: float, *, max_ticks: int = 10) -> int:
    """The smallest round step (1s, 2s, 5s, ... 1h ...) giving at most `max_ticks` intervals."""
    return next((s for s in _STEPS if span / s <= max_ticks), _STEPS[-1])


def tick_label(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h" + (f"{minutes:02d}m" if minutes else "")
    return f"{minutes}m" + (f"{secs:02d}s" if secs else "")


def _fit(text: str, width: float) -> str | None:
    """`text`, or a shortened form, that fits `width` pixels; None when even that does not fit."""
    room = int(width / CHAR_W)
    if room >= len(text):
        return text
    return text[: room - 1] + "…" if room >= 4 else None


def _wrap(head: str, items: Sequence[str], width: int, max_lines: int = 4) -> list[str]:
    """`head` + comma-separated items in lines of at most `width` characters; past `max_lines`
    the rest is counted."""
    lines: list[str] = []
    line = head
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else "")
        if len(line) + len(piece) > width and line.strip():
            if len(lines) == max_lines - 1:
                lines.append(line + f"and {len(items) - i} more")
                return lines
            lines.append(line.rstrip())
            line = "  "
        line += piece
    return [*lines, line] if items else []


def _gap_bands(timing: RunTiming | None) -> list[tuple[float, float]]:
    """(start, end) of each gap that lasted, in seconds from the run's start."""
    if timing is None or timing.started is None:
        return []
    t0 = timing.started
    return [((g.start - t0).total_seconds(), (g.end - t0).total_seconds()) for g in timing.gaps if g.seconds > 0]


def _totals_line(timing: RunTiming) -> str:
    # The same rounding as the result's execution_time_seconds, so the figures match report.md.
    wall = round(timing.wall_seconds, 3)
    if len(timing.segments) < 2:
        return f"The run took {format_duration(wall)}, its wall time in report.md"
    gap = round(timing.gap_seconds, 3)
    return (f"Total {format_duration(wall + gap)} = wall time {format_duration(wall)} across "
            f"{len(timing.segments)} orchestrator processes (as in report.md) + {format_duration(gap)} "
            f"while no orchestrator ran (shaded)")


def _colour(status: str) -> str:
    return COLOURS.get(status, OTHER_COLOUR)


def hatch_id(status: str) -> str:
    """The id of the hatch pattern that fills a retried attempt of this status."""
    return "retried-" + "".join(ch for ch in status if ch.isalnum())


def _hatch(status: str) -> str:
    return (f'<pattern id={quoteattr(hatch_id(status))} width="6" height="6" patternUnits="userSpaceOnUse" '
            f'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" '
            f'stroke={quoteattr(_colour(status))} stroke-width="4" stroke-opacity="0.55"/></pattern>')


def _bar_svg(task_id: str, bar: AttemptBar, x: float, y: float, w: float, h: float) -> list[str]:
    colour = _colour(bar.status)
    if bar.earlier is None:
        what, paint = bar.status, f'fill="{colour}" stroke="#ffffff" stroke-width="1"'
    else:
        failure = f" ({bar.earlier.failure})" if bar.earlier.failure != "none" else ""
        what = f"{bar.status}{failure}, retried"
        paint = f'fill="url(#{hatch_id(bar.status)})" stroke="{colour}" stroke-width="1.5"'
    tip = (f"{task_id} attempt {bar.attempt}: {what}, {format_duration(bar.end - bar.start)} "
           f"(from {tick_label(bar.start)})")
    return [f"<g><title>{escape(tip)}</title>",
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="2" {paint}/>', "</g>"]


def _wait_svg(task_id: str, before: AttemptBar, after: AttemptBar, scale: float, left: float, y: float) -> list[str]:
    """The time between an attempt that was retried and its retry: its backoff, then waiting for a slot."""
    backoff = before.earlier.retry_delay_seconds if before.earlier is not None else None
    tip = (f"{task_id}: waited {format_duration(after.start - before.end)} before attempt {after.attempt}"
           + (f" (backoff {format_duration(backoff)})" if backoff is not None else ""))
    x1, x2 = left + before.end * scale, left + after.start * scale
    return [f"<g><title>{escape(tip)}</title>",
            f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" stroke="{WAIT_COLOUR}" '
            f'stroke-width="2" stroke-dasharray="3 2"/>', "</g>"]


def render_timeline(
    tasks: Sequence[TaskSummary],
    results: Mapping[str, TaskResult] | None = None,
    *,
    slots: int,
    title: str = "",
    now: datetime | None = None,
    timing: RunTiming | None = None,
) -> str:
    """SVG of the run: a row per task of `tasks` (the run's summary rows, whose times are the last
    attempt's), ordered by first start, with the earlier attempts from `results` on the same row;
    `slots` is the concurrency limit, shown beside the peak measured from the bars. With `timing`
    (the run's orchestrator processes, from its journal) the axis starts when the run started and
    runs to the end of its last process, and each gap between processes is shaded: the axis total
    is the report's wall time plus those gaps."""
    origin = timing.started if timing is not None else None
    layout = lay_out(tasks, results or {}, now=now, origin=origin)
    bars = [b for row in layout.rows for b in row.bars]
    bands = _gap_bands(timing)
    run_end = 0.0
    if timing is not None and origin is not None:
        run_end = (timing.segments[-1].end - origin).total_seconds()
    span = max([b.end for b in bars] + [run_end, 1.0])
    step = tick_step(span)
    axis_end = step * -(-span // step)  # round the axis up to a whole tick
    left = PAD + max([text_width(row.task_id) for row in layout.rows] + [60.0]) + PAD
    chart_w = max(MIN_CHART, WIDTH - left - RIGHT)
    width = round(left + chart_w + RIGHT)
    scale = chart_w / axis_end
    row_h = row_height(len(layout.rows))
    bar_h = row_h * BAR_SHARE
    chart_h = max(len(layout.rows), 1) * row_h
    tall = chart_h > TALL_CHART
    top = TOP + (20 if timing is not None and timing.segments else 0) + (18 if tall else 0)
    ran = (f"{len(layout.rows)} task(s) ran" + (f" ({len(bars)} attempts)" if len(bars) != len(layout.rows) else "")
           + ("" if origin is not None else f" in {format_duration(span)}")
           + f", at most {peak_concurrency(bars)} at once (measured; limit {max(slots, 1)})"
           + (f"; {len(layout.never)} never started" if layout.never else ""))
    out = [
        (f'<text x="{PAD}" y="24" font-size="16" font-weight="bold" fill="#212121">'
         f"{escape(title or 'Run timeline')}</text>"),
        f'<text x="{PAD}" y="44" fill="#616161">{escape(ran)}</text>',
    ]
    if timing is not None and timing.segments:
        out.append(f'<text x="{PAD}" y="64" fill="#616161">{escape(_totals_line(timing))}</text>')
    retried = sorted({b.status for b in bars if b.retried})
    if retried:
        out += ["<defs>", *(_hatch(status) for status in retried), "</defs>"]
    for i in range(len(layout.rows)):
        if i % 2:
            out.append(f'<rect x="{PAD / 2}" y="{top + i * row_h:.1f}" width="{left + chart_w - PAD / 2:.1f}" '
                       f'height="{row_h:.1f}" fill="#f5f5f5"/>')
    for start, end in bands:
        x, w = left + start * scale, max((end - start) * scale, 2.0)
        out.append(f"<g><title>{escape(f'{GAP_LABEL}: {format_duration(end - start)} from {tick_label(start)}')}"
                   "</title>")
        out.append(f'<rect x="{x:.1f}" y="{top}" width="{w:.1f}" height="{chart_h:.1f}" fill="{GAP_FILL}" '
                   f'fill-opacity="0.7" stroke="{GAP_EDGE}" stroke-dasharray="4 3"/>')
        label = _fit(GAP_LABEL, w - 8)
        if label is not None:
            out.append(f'<text x="{x + w / 2:.1f}" y="{top + chart_h / 2 + 4:.1f}" text-anchor="middle" '
                       f'fill="#6d4c41">{escape(label)}</text>')
        out.append("</g>")
    tick = 0.0
    while tick <= axis_end + 1e-9:
        x = left + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + chart_h:.1f}" stroke="#e0e0e0"/>')
        out.append(f'<line x1="{x:.1f}" y1="{top + chart_h:.1f}" x2="{x:.1f}" y2="{top + chart_h + 5:.1f}" '
                   'stroke="#616161"/>')
        out.append(f'<text x="{x:.1f}" y="{top + chart_h + 19:.1f}" text-anchor="middle" fill="#424242">'
                   f"{tick_label(tick)}</text>")
        if tall:
            out.append(f'<text x="{x:.1f}" y="{top - 6}" text-anchor="middle" fill="#424242">{tick_label(tick)}</text>')
        tick += step
    out.append(f'<line x1="{left:.1f}" y1="{top + chart_h:.1f}" x2="{left + chart_w:.1f}" y2="{top + chart_h:.1f}" '
               'stroke="#616161"/>')
    since = "the run started" if origin is not None else "the first task started"
    out.append(f'<text x="{left + chart_w / 2:.1f}" y="{top + chart_h + 38:.1f}" text-anchor="middle" '
               f'fill="#616161">time since {since}</text>')
    for i, row in enumerate(layout.rows):
        row_y = top + i * row_h
        label = f"{row.task_id}: {row.status} after {row.attempts} attempt(s)"
        out.append(f'<g><title>{escape(label)}</title><text x="{PAD}" y="{row_y + row_h / 2 + 4:.1f}" '
                   f'fill="#212121">{escape(row.task_id)}</text></g>')
        for before, after in pairwise(row.bars):
            if before.retried and after.start > before.end:
                out += _wait_svg(row.task_id, before, after, scale, left, row_y + row_h / 2)
        for bar in row.bars:
            x, w = left + bar.start * scale, max((bar.end - bar.start) * scale, 2.0)
            out += _bar_svg(row.task_id, bar, x, row_y + (row_h - bar_h) / 2, w, bar_h)
    y = top + chart_h + AXIS + 16
    waits = any(a.retried and b.start > a.end for row in layout.rows for a, b in pairwise(row.bars))
    out_legend, y = _legend(bars, waits=waits, gaps=bool(bands), y=y, width=width)
    out += out_legend
    untimed = [f"{tid} (attempt{'s' if len(ns) > 1 else ''} {', '.join(map(str, ns))})"
               for tid, ns in layout.untimed.items()]
    n_untimed = sum(len(ns) for ns in layout.untimed.values())
    notes = ((f"{n_untimed} attempt(s) not drawn, their times were not recorded (older version): ", untimed),
             ("never started: ", layout.never))
    for lead, items in notes:
        for line in _wrap(lead, items, int((width - 2 * PAD) / CHAR_W)):
            y += 20
            out.append(f'<text x="{PAD}" y="{y:.1f}" fill="#616161">{escape(line)}</text>')
    height = round(y + LEGEND - 16)
    head = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" {FONT} font-size="12">'),
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    return "\n".join([*head, *out, "</svg>"]) + "\n"


def _legend(bars: Sequence[AttemptBar], *, waits: bool, gaps: bool, y: float, width: int) -> tuple[list[str], float]:
    """A swatch and a name for each kind of mark drawn, in lines that fit `width`; the last line's y."""
    order = list(COLOURS)
    finals = sorted({b.status for b in bars if not b.retried}, key=lambda s: order.index(s) if s in order else 99)
    retried = sorted({b.status for b in bars if b.retried}, key=lambda s: order.index(s) if s in order else 99)
    entries = [(f'fill="{_colour(s)}"', s) for s in finals]
    entries += [(f'fill="url(#{hatch_id(s)})" stroke="{_colour(s)}" stroke-width="1.5"', f"{s}, retried")
                for s in retried]
    if waits:
        entries.append(("", WAIT_LABEL))
    if gaps:
        entries.append((f'fill="{GAP_FILL}" stroke="{GAP_EDGE}" stroke-dasharray="4 3"', GAP_LABEL))
    out: list[str] = []
    x = float(PAD)
    for paint, label in entries:
        advance = 20 + len(label) * CHAR_W + 24
        if x > PAD and x + advance > width - RIGHT:
            x, y = float(PAD), y + 20
        if paint:
            out.append(f'<rect x="{x:.1f}" y="{y - 11:.1f}" width="14" height="14" rx="2" {paint}/>')
        else:
            out.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 14:.1f}" y2="{y - 4:.1f}" '
                       f'stroke="{WAIT_COLOUR}" stroke-width="2" stroke-dasharray="3 2"/>')
        out.append(f'<text x="{x + 20:.1f}" y="{y:.1f}" fill="#424242">{escape(label)}</text>')
        x += advance
    return out, y
