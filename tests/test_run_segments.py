"""A run's orchestrator processes from its journal, and the figures built on them: wall time across
resumes, the speedup, report.md and the timeline agreeing."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from orchestrator.models import Plan, PlannedTask, TaskResult, TaskSpec, TaskStatus, iso, utcnow
from orchestrator.observe.report import render_markdown, write_reports
from orchestrator.observe.run_segments import RunTiming, parse_ts, read_run_timing
from orchestrator.run.results import build_result
from orchestrator.state.journal import Journal, scan_journal

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def write_journal(path: Path, events: list[tuple[float, str, dict[str, Any]]], *, torn: str = "") -> Path:
    """An events.jsonl in the documented format, with chosen timestamps."""
    lines = [json.dumps({"ts": iso(at(t)), "seq": n, "run_id": "r1", "event": event, **fields})
             for n, (t, event, fields) in enumerate(events, start=1)]
    path.write_text("\n".join(lines) + "\n" + torn, encoding="utf-8")
    return path


def killed_then_resumed(tmp_path: Path, *, resumed_finished_at: float | None = None) -> Path:
    """Process 11 runs 0s..30s and is killed; process 22 resumes at 130s (a 100s gap)."""
    events: list[tuple[float, str, dict[str, Any]]] = [
        (0, "run_started", {"pid": 11, "tasks": ["a", "b"]}),
        (1, "transition", {"task_id": "a", "to": "running"}),
        (2, "transition", {"task_id": "b", "to": "running"}),
        (29, "transition", {"task_id": "a", "to": "completed"}),
        (30, "update", {"task_id": "b"}),
        (130, "run_resumed", {"pid": 22}),
    ]
    if resumed_finished_at is not None:
        events.append((resumed_finished_at, "run_finished", {"wall_seconds": resumed_finished_at - 130}))
    return write_journal(tmp_path / "events.jsonl", events)


def test_one_process_that_finished(tmp_path: Path) -> None:
    path = write_journal(tmp_path / "events.jsonl", [
        (0, "run_started", {"pid": 11}),
        (5, "transition", {"task_id": "a"}),
        (30, "run_finished", {"wall_seconds": 30.0}),
    ])
    timing = read_run_timing(path, now=at(999))  # `now` only closes a segment left open
    [segment] = timing.segments
    assert (segment.start, segment.end, segment.pid) == (at(0), at(30), 11)
    assert segment.finished and not segment.running
    assert timing.wall_seconds == 30.0 and timing.gaps == () and timing.gap_seconds == 0.0


def test_killed_process_ends_at_its_last_record(tmp_path: Path) -> None:
    path = write_journal(tmp_path / "events.jsonl", [
        (0, "run_started", {"pid": 11}),
        (4, "transition", {"task_id": "a"}),
        (12, "update", {"task_id": "a"}),
    ])
    [killed] = read_run_timing(path).segments
    assert (killed.end, killed.finished, killed.running) == (at(12), False, False)
    # Read by the process itself, still running: its segment lasts until now.
    [running] = read_run_timing(path, now=at(50)).segments
    assert (running.end, running.finished, running.running) == (at(50), False, True)


def test_two_processes_with_a_gap(tmp_path: Path) -> None:
    timing = read_run_timing(killed_then_resumed(tmp_path, resumed_finished_at=150))
    first, second = timing.segments
    assert (first.start, first.end, first.pid) == (at(0), at(30), 11)
    assert not first.finished and not first.resumed  # killed: it ends at its last record
    assert (second.start, second.end, second.pid) == (at(130), at(150), 22)
    assert second.finished and second.resumed
    [gap] = timing.gaps
    assert (gap.start, gap.end) == (at(30), at(130))
    assert timing.wall_seconds == 50.0 and timing.gap_seconds == 100.0


def test_torn_last_line_does_not_extend_a_process(tmp_path: Path) -> None:
    torn = '{"ts":"' + iso(at(500)) + '","seq":3,"run_id":"r1","event":"transi'
    path = write_journal(tmp_path / "events.jsonl", [
        (0, "run_started", {"pid": 11}),
        (12, "transition", {"task_id": "a"}),
    ], torn=torn)
    assert scan_journal(path).truncated_tail  # the file really ends in a torn record
    [segment] = read_run_timing(path).segments
    assert segment.end == at(12) and read_run_timing(path).wall_seconds == 12.0


def test_records_between_processes_do_not_hide_the_gap(tmp_path: Path) -> None:
    # The next process may journal a registry rebuild before its run_resumed: no orchestrator of
    # the run was known to be alive then, so it must not stretch the finished one.
    path = write_journal(tmp_path / "events.jsonl", [
        (0, "run_started", {"pid": 11}),
        (20, "run_finished", {"wall_seconds": 20.0}),
        (105, "registry_rebuilt", {"why": "corrupt"}),
        (110, "run_resumed", {"pid": 22}),
        (120, "run_finished", {"wall_seconds": 10.0}),
    ])
    timing = read_run_timing(path)
    assert [s.seconds for s in timing.segments] == [20.0, 10.0] and timing.gap_seconds == 90.0


def test_finished_process_ends_when_it_took_its_figures(tmp_path: Path) -> None:
    path = write_journal(tmp_path / "events.jsonl", [
        (0, "run_started", {"pid": 11}),
        (30.25, "run_finished", {"ended_at": iso(at(30))}),
    ])
    assert read_run_timing(path).wall_seconds == 30.0


def test_real_journal_of_the_running_process(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r1" / "events.jsonl"
    with Journal(path) as journal:
        started = journal.append("run_started", pid=os.getpid())
        journal.append("transition", task_id="a", to="running")
        now = (utcnow() + timedelta(seconds=1)).replace(microsecond=123456)  # after every record, sub-ms part
        [running] = read_run_timing(path, now=now).segments
        assert running.start == parse_ts(started["ts"]) and running.pid == os.getpid() and running.running
        assert running.end == now.replace(microsecond=123000)  # the journal's resolution
        # The process then records the instant it took its figures at: read back, they are the same.
        journal.append("run_finished", ended_at=iso(now))
    [finished] = read_run_timing(path).segments
    assert finished.finished and finished.end == running.end


@dataclass
class Engine:
    max_parallel: int = 2
    interrupted: bool = False
    abort_reason: str | None = None


def plan_and_results(tmp_path: Path, tasks: dict[str, tuple[float, float]]) -> tuple[Plan, dict[str, TaskResult]]:
    """A plan of completed tasks, each {id: (start, end)} in seconds from T0, lasting exactly that."""
    planned = [PlannedTask(spec=TaskSpec(id=t, title=t, prompt_file=tmp_path / f"{t}.md", prompt_text=t, index=i),
                           branch=f"feature/{t}", worktree=tmp_path / t, agent_command=["claude"])
               for i, t in enumerate(tasks)]
    results = {t: TaskResult(task_id=t, status=TaskStatus.COMPLETED, started_at=iso(at(s)), completed_at=iso(at(e)),
                             duration_seconds=e - s)
               for t, (s, e) in tasks.items()}
    return Plan(tasks=planned, edges=[]), results


def resumed_timing(tmp_path: Path) -> RunTiming:
    """Killed after 30s; resumed 100s later, it adopts the results and ends 0.3s after starting."""
    return read_run_timing(killed_then_resumed(tmp_path), now=at(130.3))


def test_speedup_divides_by_the_wall_time_of_every_process(tmp_path: Path) -> None:
    plan, results = plan_and_results(tmp_path, {"a": (1, 29), "b": (2, 27)})
    result = build_result("r1", plan, results, resumed_timing(tmp_path), Engine(), in_place=False)
    assert result.execution_time_seconds == 30.3
    # 53s of task time over 30.3s of orchestrators running; over the resuming process's 0.3s
    # alone it would be 176.67, over the elapsed 130.3s (gap included) 0.41.
    assert result.parallel_speedup == 1.75


def test_task_time_in_a_gap_is_not_divided_by_the_wall_time(tmp_path: Path) -> None:
    # c's WorkflowManager ran on after its orchestrator was killed at 30s and finished at 80s.
    plan, results = plan_and_results(tmp_path, {"a": (1, 29), "c": (20, 80)})
    result = build_result("r1", plan, results, resumed_timing(tmp_path), Engine(), in_place=False)
    # Counted: a's 28s and the 10s of c before the kill; c's 50s in the gap would make it 2.9x
    # with two slots, more than two slots can do.
    assert result.parallel_speedup == round(38 / 30.3, 2)
    assert result.parallel_speedup <= Engine().max_parallel


def test_report_md_json_and_timeline_agree(tmp_path: Path) -> None:
    timing = resumed_timing(tmp_path)
    plan, results = plan_and_results(tmp_path, {"a": (1, 29), "b": (2, 27)})
    result = build_result("r1", plan, results, timing, Engine(), in_place=False)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    md = write_reports(run_dir, result, plan, results, [], timing=timing).read_text(encoding="utf-8")
    assert ("- Wall time: 30.3s across 2 orchestrator processes (gap of 1m40s while no orchestrator ran); "
            "max parallel 2") in md
    assert "- Parallel speedup (sum of task durations / wall time, measured): 1.75 (53.0s / 30.3s)" in md
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert (report["execution_time_seconds"], report["parallel_speedup"]) == (30.3, 1.75)
    svg = ET.fromstring((run_dir / "timeline.svg").read_text(encoding="utf-8"))
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert ("Total 2m10s = wall time 30.3s across 2 orchestrator processes (as in report.md) + 1m40s "
            "while no orchestrator ran (shaded)") in texts


def test_report_states_task_time_left_out_of_the_speedup(tmp_path: Path) -> None:
    timing = resumed_timing(tmp_path)
    plan, results = plan_and_results(tmp_path, {"a": (1, 29), "c": (20, 80)})
    result = build_result("r1", plan, results, timing, Engine(), in_place=False)
    md = render_markdown(result, plan, results, [], None, timing)
    assert ("- Parallel speedup (task time while an orchestrator ran / wall time, measured): 1.25 (38.0s / 30.3s); "
            "another 50.0s of task time ran while no orchestrator did and is not counted") in md


@pytest.mark.parametrize("timing", [None, "journal"])
def test_one_process_reads_as_before(tmp_path: Path, timing: str | None) -> None:
    path = write_journal(tmp_path / "events.jsonl", [(0, "run_started", {"pid": 11}), (30, "run_finished", {})])
    plan, results = plan_and_results(tmp_path, {"a": (1, 25), "b": (2, 26)})
    run_timing = read_run_timing(path) if timing else None
    result = build_result("r1", plan, results, run_timing or 30.0, Engine(), in_place=False)
    md = render_markdown(result, plan, results, [], None, run_timing)
    assert "- Wall time: 30.0s; max parallel 2" in md
    assert "- Parallel speedup (sum of task durations / wall time, measured): 1.6 (48.0s / 30.0s)" in md
