"""A timeline picture of a run as SVG: one row per slot, one bar per task, coloured by status,
and a shaded band for each gap while no orchestrator of the run was running.

Plain string building (no drawing library): the picture is small, and every piece of text that
comes from a prompt (task ids) is XML-escaped.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from orchestrator.config.durations import format_duration
from orchestrator.observe.run_segments import RunTiming

COLOURS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "timeout": "#ef6c00",
    "cancelled": "#8e8e8e",
    "running": "#1565c0",
    "queued": "#b0bec5",
}
GAP_FILL = "#ffe0b2"
GAP_EDGE = "#ef6c00"
GAP_LABEL = "orchestrator not running"
FONT = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
WIDTH = 1000
LEFT = 80  # slot labels
RIGHT = 30
TOP = 56  # title and subtitle
ROW = 34
BAR = 24
AXIS = 46
LEGEND = 34
CHAR_W = 7.2  # average advance of a 12px sans-serif character, for fitting labels into bars
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
# Timestamps from different processes may disagree by a few milliseconds: a task launched into the
# slot another just left can appear to start a hair before that one ended.
_SLACK = 0.25


class TaskTimes(Protocol):
    task_id: str
    started_at: str | None
    completed_at: str | None


@dataclass(frozen=True)
class Bar:
    task_id: str
    status: str
    start: float  # seconds from the first start
    end: float
    slot: int


def _status(row: Any) -> str:
    value = getattr(row, "status", "")
    return str(getattr(value, "value", value))


def _parse(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def assign_slots(
    rows: Iterable[Any], *, now: datetime | None = None, origin: datetime | None = None
) -> tuple[list[Bar], list[str]]:
    """Bars for the tasks that started (earliest start first, each in the lowest slot free at its
    start) and the ids of those that never did. A task without an end is drawn up to `now`, or
    to the latest time seen. Times count from `origin`, else from the first start."""
    timed: list[tuple[datetime, datetime | None, Any]] = []
    never: list[str] = []
    for row in rows:
        start = _parse(row.started_at)
        if start is None:
            never.append(row.task_id)
        else:
            timed.append((start, _parse(row.completed_at), row))
    if not timed:
        return [], never
    t0 = origin if origin is not None else min(s for s, _, _ in timed)
    latest = max([s for s, _, _ in timed] + [e for _, e, _ in timed if e is not None])
    horizon = max(latest, now) if now is not None else latest
    bars: list[Bar] = []
    free_at: list[float] = []
    for start, end, row in sorted(timed, key=lambda t: (t[0], t[2].task_id)):
        s = max((start - t0).total_seconds(), 0.0)
        e = max(((end or horizon) - t0).total_seconds(), s)
        slot = next((i for i, f in enumerate(free_at) if f <= s + _SLACK), len(free_at))
        if slot == len(free_at):
            free_at.append(e)
        else:
            free_at[slot] = e
        bars.append(Bar(row.task_id, _status(row), s, e, slot))
    return bars, never


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


def render_timeline(
    tasks: Sequence[Any],
    *,
    slots: int,
    title: str = "",
    now: datetime | None = None,
    timing: RunTiming | None = None,
) -> str:
    """SVG of the run: `tasks` are rows with task_id, status, started_at, completed_at (e.g.
    TaskSummary); `slots` the concurrency limit. Each task is drawn in the lowest slot free when it
    started, so the rows show how the slots were used over time. With `timing` (the run's
    orchestrator processes, from its journal) the axis starts when the run started and runs to
    the end of its last process, and each gap between processes is shaded: the axis total is the
    report's wall time plus those gaps."""
    origin = timing.started if timing is not None else None
    bars, never = assign_slots(tasks, now=now, origin=origin)
    bands = _gap_bands(timing)
    n_rows = max([b.slot + 1 for b in bars] + [min(max(slots, 1), len(bars)), 1])
    run_end = 0.0
    if timing is not None and origin is not None:
        run_end = (timing.segments[-1].end - origin).total_seconds()
    span = max([b.end for b in bars] + [run_end, 1.0])
    step = tick_step(span)
    axis_end = step * -(-span // step)  # round the axis up to a whole tick
    chart_w = WIDTH - LEFT - RIGHT
    scale = chart_w / axis_end
    chart_h = n_rows * ROW
    top = TOP + (20 if timing is not None and timing.segments else 0)
    ran = f"{len(bars)} task(s) ran" + ("" if origin is not None else f" in {format_duration(span)}")
    out = [
        (f'<text x="{LEFT}" y="24" font-size="16" font-weight="bold" fill="#212121">'
         f"{escape(title or 'Run timeline')}</text>"),
        (f'<text x="{LEFT}" y="44" fill="#616161">{ran} '
         f"with up to {max(slots, 1)} at once" + (f"; {len(never)} never started" if never else "") + "</text>"),
    ]
    if timing is not None and timing.segments:
        out.append(f'<text x="{LEFT}" y="64" fill="#616161">{escape(_totals_line(timing))}</text>')
    for i in range(n_rows):
        row_y = top + i * ROW
        if i % 2:
            out.append(f'<rect x="{LEFT}" y="{row_y}" width="{chart_w}" height="{ROW}" fill="#f5f5f5"/>')
        out.append(f'<text x="{LEFT - 10}" y="{row_y + ROW / 2 + 4:.1f}" text-anchor="end" fill="#424242">'
                   f"slot {i + 1}</text>")
    for start, end in bands:
        x, w = LEFT + start * scale, max((end - start) * scale, 2.0)
        out.append(f"<g><title>{escape(f'{GAP_LABEL}: {format_duration(end - start)} from {tick_label(start)}')}"
                   "</title>")
        out.append(f'<rect x="{x:.1f}" y="{top}" width="{w:.1f}" height="{chart_h}" fill="{GAP_FILL}" '
                   f'fill-opacity="0.7" stroke="{GAP_EDGE}" stroke-dasharray="4 3"/>')
        label = _fit(GAP_LABEL, w - 8)
        if label is not None:
            out.append(f'<text x="{x + w / 2:.1f}" y="{top + chart_h / 2 + 4:.1f}" text-anchor="middle" '
                       f'fill="#6d4c41">{escape(label)}</text>')
        out.append("</g>")
    tick = 0.0
    while tick <= axis_end + 1e-9:
        x = LEFT + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + chart_h}" stroke="#e0e0e0"/>')
        out.append(f'<line x1="{x:.1f}" y1="{top + chart_h}" x2="{x:.1f}" y2="{top + chart_h + 5}" stroke="#616161"/>')
        out.append(f'<text x="{x:.1f}" y="{top + chart_h + 19}" text-anchor="middle" fill="#424242">'
                   f"{tick_label(tick)}</text>")
        tick += step
    out.append(f'<line x1="{LEFT}" y1="{top + chart_h}" x2="{LEFT + chart_w}" y2="{top + chart_h}" stroke="#616161"/>')
    since = "the run started" if origin is not None else "the first task started"
    out.append(f'<text x="{LEFT + chart_w / 2:.1f}" y="{top + chart_h + 38}" text-anchor="middle" '
               f'fill="#616161">time since {since}</text>')
    unnamed: list[str] = []
    next_start: dict[Bar, float] = {}
    for slot in range(n_rows):
        in_slot = sorted((b for b in bars if b.slot == slot), key=lambda b: b.start)
        next_start.update({a: b.start for a, b in pairwise(in_slot)})
    for bar in bars:
        x = LEFT + bar.start * scale
        w = max((bar.end - bar.start) * scale, 2.0)
        bar_y = top + bar.slot * ROW + (ROW - BAR) / 2
        colour = COLOURS.get(bar.status, "#607d8b")
        tip = f"{bar.task_id}: {bar.status}, {format_duration(bar.end - bar.start)} (from {tick_label(bar.start)})"
        out.append(f"<g><title>{escape(tip)}</title>")
        out.append(f'<rect x="{x:.1f}" y="{bar_y:.1f}" width="{w:.1f}" height="{BAR}" rx="3" fill="{colour}" '
                   f'stroke="#ffffff" stroke-width="1"/>')
        text_y = bar_y + BAR / 2 + 4
        inside = _fit(bar.task_id, w - 8)
        # A bar too short for its id gets the id beside it when the slot is empty there, else a
        # shortened id and a line under the legend, so no task is left unnamed.
        room = (next_start.get(bar, axis_end) - bar.end) * scale - 6
        if inside != bar.task_id and _fit(bar.task_id, room) == bar.task_id:
            out.append(f'<text x="{x + w + 4:.1f}" y="{text_y:.1f}" fill="#212121">{escape(bar.task_id)}</text>')
        else:
            if inside is not None:
                out.append(f'<text x="{x + 5:.1f}" y="{text_y:.1f}" fill="#ffffff">{escape(inside)}</text>')
            if inside != bar.task_id:
                unnamed.append(f"{bar.task_id} (slot {bar.slot + 1} at {tick_label(bar.start)}, {bar.status})")
        out.append("</g>")
    y = top + chart_h + AXIS + 16
    x = float(LEFT)
    present = sorted({b.status for b in bars}, key=lambda s: list(COLOURS).index(s) if s in COLOURS else 99)
    for status in present:
        out.append(f'<rect x="{x:.1f}" y="{y - 11}" width="14" height="14" rx="2" '
                   f'fill={quoteattr(COLOURS.get(status, "#607d8b"))}/>')
        out.append(f'<text x="{x + 20:.1f}" y="{y}" fill="#424242">{escape(status)}</text>')
        x += 20 + len(status) * CHAR_W + 24
    if bands:
        out.append(f'<rect x="{x:.1f}" y="{y - 11}" width="14" height="14" rx="2" fill="{GAP_FILL}" '
                   f'stroke="{GAP_EDGE}" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x + 20:.1f}" y="{y}" fill="#424242">{GAP_LABEL}</text>')
    for label, ids in (("short bars", unnamed), ("never started", never)):
        for line in _wrap(f"{label}: ", ids, int((WIDTH - LEFT - RIGHT) / CHAR_W)):
            y += 20
            out.append(f'<text x="{LEFT}" y="{y}" fill="#616161">{escape(line)}</text>')
    height = y + LEGEND - 16
    head = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" {FONT} font-size="12">'),
            f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>']
    return "\n".join([*head, *out, "</svg>"]) + "\n"
