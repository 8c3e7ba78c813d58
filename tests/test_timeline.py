"""The run timeline SVG: slot assignment, axis, labels, legend, escaping."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from orchestrator.models import TaskStatus, TaskSummary
from orchestrator.timeline import (
    COLOURS,
    assign_slots,
    render_timeline,
    tick_label,
    tick_step,
)

NS = {"svg": "http://www.w3.org/2000/svg"}
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def task(tid: str, start: float | None, end: float | None, status: str = "completed") -> TaskSummary:
    at = lambda s: None if s is None else (T0 + timedelta(seconds=s)).isoformat()
    return TaskSummary(task_id=tid, status=TaskStatus(status), started_at=at(start), completed_at=at(end))


def test_lowest_free_slot_by_start_time() -> None:
    rows = [task("a", 0, 100), task("b", 0, 30), task("c", 30.1, 60), task("d", 40, 90), task("e", 100, 120),
            task("never", None, None, "cancelled")]
    bars, never = assign_slots(rows)
    slots = {b.task_id: b.slot for b in bars}
    assert slots == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 0}
    assert never == ["never"]
    # A start a few milliseconds before the previous end (clocks of two processes) reuses the slot.
    bars, _ = assign_slots([task("x", 0, 10), task("y", 9.9, 20)])
    assert [b.slot for b in bars] == [0, 0]


def test_ticks() -> None:
    assert tick_step(4.6) == 1 and tick_step(95) == 10 and tick_step(3000) == 300 and tick_step(5 * 3600) == 1800
    assert [tick_label(s) for s in (0, 45, 60, 90, 600, 3600, 5400)] == ["0s", "45s", "1m", "1m30s", "10m", "1h", "1h30m"]


def test_svg_is_valid_and_readable() -> None:
    rows = [task("build-api", 0, 300), task("docs", 5, 200, "failed"), task("x<&>\"y", 200, 420, "timeout"),
            task("tiny", 300, 301), task("after", None, None, "cancelled"), task("run", 310, None, "running")]
    svg = render_timeline(rows, slots=3, title="Run <r1>", now=T0 + timedelta(seconds=480))
    root = ET.fromstring(svg)  # well-formed XML, ids escaped
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "Run <r1>" in texts and "build-api" in texts and 'x<&>"y' in texts
    assert "slot 1" in texts and "slot 3" in texts and "slot 4" not in texts
    assert {"0s", "1m", "8m"} <= set(texts)  # minute ticks for an 8-minute run
    assert any(t.startswith("never started: after") for t in texts)
    assert any("tiny" in t for t in texts)  # too short for a label inside: named beside or below
    fills = {r.get("fill") for r in root.iter("{http://www.w3.org/2000/svg}rect")}
    for status in ("completed", "failed", "timeout", "running"):
        assert COLOURS[status] in fills and status in texts  # bar colour and legend entry
    titles = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert len(titles) == 5 and any(t.startswith("run: running") for t in titles)
    for text in root.iter("{http://www.w3.org/2000/svg}text"):
        assert float(text.get("font-size") or root.get("font-size") or 0) >= 12


def test_empty_run() -> None:
    svg = render_timeline([task("a", None, None, "cancelled")], slots=2)
    root = ET.fromstring(svg)
    assert "never started: a" in ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
