"""The run timeline SVG: slot assignment, axis, labels, legend, escaping."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from orchestrator.models import TaskStatus, TaskSummary
from orchestrator.observe.run_segments import RunTiming, Segment
from orchestrator.observe.timeline import (
    COLOURS,
    GAP_FILL,
    GAP_LABEL,
    assign_slots,
    render_timeline,
    tick_label,
    tick_step,
)

NS = {"svg": "http://www.w3.org/2000/svg"}
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def task(tid: str, start: float | None, end: float | None, status: str = "completed") -> TaskSummary:
    def at(s: float | None) -> str | None:
        return None if s is None else (T0 + timedelta(seconds=s)).isoformat()

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


def processes(*spans: tuple[float, float]) -> RunTiming:
    def at(s: float) -> datetime:
        return T0 + timedelta(seconds=s)

    return RunTiming(tuple(Segment(start=at(a), end=at(b), finished=True) for a, b in spans))


def chart_rects(svg: str, fill: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("fill") == fill and r.get("width") != "14"]


def test_gap_between_orchestrator_processes_is_shaded() -> None:
    # Process one ran 0-10s and was killed; the run was resumed at 110s and ended at 130s.
    rows = [task("a", 1, 9), task("b", 111, 129)]
    svg = render_timeline(rows, slots=2, timing=processes((0, 10), (110, 130)))
    root = ET.fromstring(svg)
    [band] = chart_rects(svg, GAP_FILL)
    # Each bar is a <g> whose <title> starts with its task id.
    spans = {}
    for g in root.iter("{http://www.w3.org/2000/svg}g"):
        rect, title = g.find("{http://www.w3.org/2000/svg}rect"), g.findtext("{http://www.w3.org/2000/svg}title")
        assert rect is not None and title is not None
        spans[title.split(":")[0]] = (float(rect.get("x", 0)), float(rect.get("x", 0)) + float(rect.get("width", 0)))
    left, right = float(band.get("x", 0)), float(band.get("x", 0)) + float(band.get("width", 0))
    (a_start, a_end), (b_start, b_end) = spans["a"], spans["b"]
    # The band covers 10s..110s: after a ended (9s), before b started (111s); a to b spans 1s..129s.
    assert a_end < left < right < b_start
    assert (right - left) / (b_end - a_start) == pytest.approx(100 / 128, rel=0.02)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert GAP_LABEL in texts
    assert ("Total 2m10s = wall time 30.0s across 2 orchestrator processes (as in report.md) + 1m40s "
            "while no orchestrator ran (shaded)") in texts
    assert "time since the run started" in texts
    titles = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert f"{GAP_LABEL}: 1m40s from 10s" in titles


def test_one_process_has_no_gap_and_counts_from_the_run_start() -> None:
    svg = render_timeline([task("a", 5, 25)], slots=1, timing=processes((0, 30)))
    assert chart_rects(svg, GAP_FILL) == []
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "The run took 30.0s, its wall time in report.md" in texts
    assert GAP_LABEL not in texts
    [bar] = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("fill") == COLOURS["completed"]
             and r.get("width") != "14"]
    assert float(bar.get("x", 0)) > 80  # starts 5s after the run did, not at the axis origin
