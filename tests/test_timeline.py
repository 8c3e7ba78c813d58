"""The run timeline SVG: a row per task with every attempt, whole ids, axis, legend, escaping."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from orchestrator.models import AttemptRecord, OrchestrationResult, Plan, TaskResult, TaskStatus, TaskSummary
from orchestrator.observe.report import write_reports
from orchestrator.observe.run_segments import RunTiming, Segment
from orchestrator.observe.timeline import (
    COLOURS,
    GAP_FILL,
    GAP_LABEL,
    MIN_CHART,
    MIN_ROW,
    ROW,
    WAIT_LABEL,
    hatch_id,
    lay_out,
    peak_concurrency,
    render_timeline,
    text_width,
    tick_label,
    tick_step,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def at(s: float | None) -> str | None:
    return None if s is None else (T0 + timedelta(seconds=s)).isoformat()


def task(tid: str, start: float | None, end: float | None, status: str = "completed", attempts: int = 1) -> TaskSummary:
    return TaskSummary(task_id=tid, status=TaskStatus(status), started_at=at(start), completed_at=at(end),
                       attempts=attempts)


def earlier(n: int, start: float | None, end: float | None, status: str = "failed", delay: float = 5.0) -> AttemptRecord:
    return AttemptRecord(attempt=n, status=TaskStatus(status), failure="agent_error", started_at=at(start),
                         completed_at=at(end), retry_delay_seconds=delay)


def retried(row: TaskSummary, *attempts: AttemptRecord) -> TaskResult:
    return TaskResult(task_id=row.task_id, status=row.status, attempt=row.attempts, started_at=row.started_at,
                      completed_at=row.completed_at, attempts=list(attempts))


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def titled(root: ET.Element, tag: str) -> dict[str, ET.Element]:
    """Each mark (a bar's rect, a wait's line) by the tooltip of the <g> it is drawn in."""
    found = {}
    for g in root.iter(f"{SVG}g"):
        mark, title = g.find(f"{SVG}{tag}"), g.findtext(f"{SVG}title")
        if mark is not None and title is not None:
            found[title] = mark
    return found


def span(rect: ET.Element) -> tuple[float, float]:
    x = float(rect.get("x", 0))
    return x, x + float(rect.get("width", 0))


def test_failed_attempts_are_drawn_on_the_task_row_with_the_waits_between() -> None:
    flaky = task("flaky", 40, 60, attempts=3)
    rows = [flaky, task("steady", 5, 50)]
    results = {"flaky": retried(flaky, earlier(1, 0, 10), earlier(2, 20, 30, delay=8.0))}
    root = ET.fromstring(render_timeline(rows, results, slots=4))
    bars = titled(root, "rect")
    first, second, last = (bars[t] for t in (
        "flaky attempt 1: failed (agent_error), retried, 10.0s (from 0s)",
        "flaky attempt 2: failed (agent_error), retried, 10.0s (from 20s)",
        "flaky attempt 3: completed, 20.0s (from 40s)",
    ))
    # One row: the same height on the page, left to right in the order they ran.
    assert first.get("y") == second.get("y") == last.get("y") != bars["steady attempt 1: completed, 45.0s (from 5s)"].get("y")
    assert span(first)[1] < span(second)[0] < span(second)[1] < span(last)[0]
    for failed in (first, second):
        assert (failed.get("fill"), failed.get("stroke")) == (f"url(#{hatch_id('failed')})", COLOURS["failed"])
    assert last.get("fill") == COLOURS["completed"]
    assert [p.get("id") for p in root.iter(f"{SVG}pattern")] == [hatch_id("failed")]
    # The waits before each retry, from one attempt's end to the next one's start.
    waits = titled(root, "line")
    one = waits["flaky: waited 10.0s before attempt 2 (backoff 5.0s)"]
    two = waits["flaky: waited 10.0s before attempt 3 (backoff 8.0s)"]
    assert (float(one.get("x1", 0)), float(one.get("x2", 0))) == pytest.approx((span(first)[1], span(second)[0]), abs=0.11)
    assert float(two.get("x1", 0)) == pytest.approx(span(second)[1], abs=0.11)
    words = texts(root)
    assert {"failed, retried", WAIT_LABEL, "completed"} <= set(words)
    assert "2 task(s) ran (4 attempts) in 1m00s, at most 2 at once (measured; limit 4)" in words
    # Rows in order of first start: flaky (0s) above steady (5s).
    assert words.index("flaky") < words.index("steady")


def test_peak_concurrency_is_measured_from_the_bars() -> None:
    rows = [task("a", 0, 10), task("b", 9.9, 20), task("c", 12, 30), task("d", 15, 18)]
    bars = [b for row in lay_out(rows, {}).rows for b in row.bars]
    # b starting 0.1s before a ended is the clocks of two processes, not two at once; b, c, d overlap.
    assert peak_concurrency(bars) == 3
    assert peak_concurrency(bars[:2]) == 1
    root = ET.fromstring(render_timeline(rows, slots=8))
    assert "4 task(s) ran in 30.0s, at most 3 at once (measured; limit 8)" in texts(root)


def test_a_long_id_is_shown_whole_beside_its_row() -> None:
    long_id = "refactor-the-authentication-layer-into-small-typed-modules-x"
    assert len(long_id) == 60
    root = ET.fromstring(render_timeline([task(long_id, 300, 301), task("b", 0, 600)], slots=2))
    [label] = [t for t in root.iter(f"{SVG}text") if t.text == long_id]
    bar = titled(root, "rect")[f"{long_id} attempt 1: completed, 1.0s (from 5m)"]
    chart_left = min(float(line.get("x1", 0)) for line in root.iter(f"{SVG}line"))
    assert float(label.get("x", 0)) + text_width(long_id) <= chart_left < float(bar.get("x", 0))
    assert not [t for t in texts(root) if "…" in t]
    # An id longer than the picture's usual width widens it; the time axis keeps its room.
    longer = "x" * 200
    root = ET.fromstring(render_timeline([task(longer, 0, 10)], slots=1))
    assert longer in texts(root)
    chart_left = min(float(line.get("x1", 0)) for line in root.iter(f"{SVG}line"))
    assert float(root.get("width", 0)) - chart_left >= MIN_CHART


def test_two_hundred_tasks_fit_a_bounded_readable_picture() -> None:
    rows = [task(f"task-{i:03d}", i * 3, i * 3 + 40) for i in range(200)]
    root = ET.fromstring(render_timeline(rows, slots=10))
    height = float(root.get("height", 0))
    assert height <= 200 * MIN_ROW + 250 < 200 * ROW  # rows shrank, to no less than a line of text
    labels = [t for t in root.iter(f"{SVG}text") if (t.text or "").startswith("task-")]
    assert [t.text for t in labels] == [r.task_id for r in rows]
    ys = [float(t.get("y", 0)) for t in labels]
    assert min(b - a for a, b in zip(ys, ys[1:], strict=False)) >= MIN_ROW - 0.01  # no two overlap
    for text in root.iter(f"{SVG}text"):
        assert float(text.get("font-size") or root.get("font-size") or 0) >= 12
    # So tall a chart has its time labels above it too.
    assert texts(root).count(tick_label(0)) == 2


def test_attempts_without_recorded_times_are_counted_not_drawn() -> None:
    # Results written before attempts kept their times: only the last attempt can be drawn.
    old = task("old", 30, 50, attempts=3)
    gone = task("gone", None, None, "cancelled", attempts=2)
    results = {"old": retried(old, earlier(1, None, None), earlier(2, None, None)),
               "gone": retried(gone, earlier(1, None, None))}
    root = ET.fromstring(render_timeline([old, gone], results, slots=2))
    assert list(titled(root, "rect")) == ["old attempt 3: completed, 20.0s (from 0s)"]
    assert ("3 attempt(s) not drawn, their times were not recorded (older version): old (attempts 1, 2), "
            "gone (attempt 1)") in texts(root)
    assert not [t for t in texts(root) if t.startswith("never started")]  # gone did run, once
    assert root.find(f"{SVG}defs") is None  # and nothing retried is drawn


def test_ticks() -> None:
    assert tick_step(4.6) == 1 and tick_step(95) == 10 and tick_step(3000) == 300 and tick_step(5 * 3600) == 1800
    assert [tick_label(s) for s in (0, 45, 60, 90, 600, 3600, 5400)] == ["0s", "45s", "1m", "1m30s", "10m", "1h", "1h30m"]


def test_svg_is_valid_and_readable() -> None:
    odd = task("x<&>\"y", 200, 420, "timeout", attempts=2)
    rows = [task("build-api", 0, 300), task("docs", 5, 200, "failed"), odd,
            task("after", None, None, "cancelled"), task("run", 310, None, "running")]
    results = {odd.task_id: retried(odd, earlier(1, 100, 150, "timeout"))}
    svg = render_timeline(rows, results, slots=3, title="Run <r1>", now=T0 + timedelta(seconds=480))
    root = ET.fromstring(svg)  # well-formed XML, ids escaped
    words = texts(root)
    assert {"Run <r1>", "build-api", "docs", 'x<&>"y', "run"} <= set(words)
    assert {"0s", "1m", "8m"} <= set(words)  # minute ticks for an 8-minute run
    assert "never started: after" in words
    fills = {r.get("fill") for r in root.iter(f"{SVG}rect")}
    for status in ("completed", "failed", "timeout", "running"):
        assert COLOURS[status] in fills and status in words  # bar colour and legend entry
    assert "timeout, retried" in words
    bars = titled(root, "rect")
    assert "run attempt 1: running, 2m50s (from 5m10s)" in bars  # drawn up to now
    assert 'x<&>"y attempt 1: timeout (agent_error), retried, 50.0s (from 1m40s)' in bars
    for text in root.iter(f"{SVG}text"):
        assert float(text.get("font-size") or root.get("font-size") or 0) >= 12


def test_empty_run() -> None:
    root = ET.fromstring(render_timeline([task("a", None, None, "cancelled")], slots=2))
    assert "never started: a" in texts(root)


def processes(*spans: tuple[float, float]) -> RunTiming:
    def when(s: float) -> datetime:
        return T0 + timedelta(seconds=s)

    return RunTiming(tuple(Segment(start=when(a), end=when(b), finished=True) for a, b in spans))


def chart_rects(root: ET.Element, fill: str) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.get("fill") == fill and r.get("width") != "14"]


def test_gap_between_orchestrator_processes_is_shaded() -> None:
    # Process one ran 0-10s and was killed; the run was resumed at 110s and ended at 130s.
    rows = [task("a", 1, 9), task("b", 111, 129)]
    root = ET.fromstring(render_timeline(rows, slots=2, timing=processes((0, 10), (110, 130))))
    [band] = chart_rects(root, GAP_FILL)
    bars = titled(root, "rect")
    (a_start, a_end) = span(bars["a attempt 1: completed, 8.0s (from 1s)"])
    (b_start, b_end) = span(bars["b attempt 1: completed, 18.0s (from 1m51s)"])
    left, right = span(band)
    # The band covers 10s..110s: after a ended (9s), before b started (111s); a to b spans 1s..129s.
    assert a_end < left < right < b_start
    assert (right - left) / (b_end - a_start) == pytest.approx(100 / 128, rel=0.02)
    # It spans every task row.
    assert float(band.get("height", 0)) == pytest.approx(2 * ROW)
    words = texts(root)
    assert GAP_LABEL in words
    assert ("Total 2m10s = wall time 30.0s across 2 orchestrator processes (as in report.md) + 1m40s "
            "while no orchestrator ran (shaded)") in words
    assert "time since the run started" in words
    assert f"{GAP_LABEL}: 1m40s from 10s" in titled(root, "rect")


def test_one_process_has_no_gap_and_counts_from_the_run_start() -> None:
    root = ET.fromstring(render_timeline([task("a", 5, 25)], slots=1, timing=processes((0, 30))))
    assert chart_rects(root, GAP_FILL) == []
    words = texts(root)
    assert "The run took 30.0s, its wall time in report.md" in words
    assert GAP_LABEL not in words
    [bar] = chart_rects(root, COLOURS["completed"])
    chart_left = min(float(line.get("x1", 0)) for line in root.iter(f"{SVG}line"))
    assert float(bar.get("x", 0)) > chart_left  # starts 5s after the run did, not at the axis origin


def test_the_report_draws_the_attempts_of_its_results(tmp_path: Path) -> None:
    flaky = task("flaky", 20, 30, attempts=2)
    results = {"flaky": retried(flaky, earlier(1, 0, 10))}
    result = OrchestrationResult(run_id="r1", total_tasks=1, successful_tasks=1, failed_tasks=0,
                                 execution_time_seconds=30.0, max_parallel=2, tasks=[flaky])
    md = write_reports(tmp_path, result, Plan(tasks=[], edges=[]), results, []).read_text(encoding="utf-8")
    assert "![Timeline: one row per task, one bar per attempt, retried attempts hatched](timeline.svg)" in md
    root = ET.fromstring((tmp_path / "timeline.svg").read_text(encoding="utf-8"))
    assert "flaky attempt 1: failed (agent_error), retried, 10.0s (from 0s)" in titled(root, "rect")
