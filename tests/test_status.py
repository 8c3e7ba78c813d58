"""`orchestrator status`: rows from the registry files another process wrote, for the latest run,
an older finished run and an unfinished one rebuilt from its journal."""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orchestrator.commands import status as status_cmd
from orchestrator.errors import InputError
from orchestrator.journal import Journal
from orchestrator.models import TaskStatus
from orchestrator.registry import ProcessRegistry
from orchestrator.status import TaskRow, estimate_eta, load_run


def registry_with(monitoring: Path, run_id: str, tasks: dict[str, str], runs: Path | None = None) -> ProcessRegistry:
    """A real registry whose tasks end in the given statuses (queued ones never start)."""
    journal = None
    if runs is not None:
        journal = Journal(runs / run_id / "events.jsonl", run_id=run_id)
        journal.path.parent.mkdir(parents=True, exist_ok=True)
        journal.append("run_started", max_parallel=2)
    reg = ProcessRegistry(monitoring, run_id, journal=journal, fsync=False)
    for tid in tasks:
        reg.register(tid, task_name=tid.upper(), command=["claude", "-p"], working_directory="/w",
                     prompt_file=None, branch=f"gadugi/{tid}", base_sha="0" * 40, worktree="/w", priority=5)
    for tid, final in tasks.items():
        if final == "queued":
            continue
        reg.transition(tid, TaskStatus.RUNNING, phase="agent")
        reg.heartbeat(tid, last_event="tool_use: Edit", turns=3, cost_usd=0.25)
        if final != "running":
            reg.transition(tid, final, error_message="boom" if final == "failed" else None)
    return reg


def test_latest_run_rows_and_progress(tmp_path: Path) -> None:
    mon = tmp_path / "monitoring"
    registry_with(mon, "run-1", {"a": "completed", "b": "running", "c": "queued", "d": "failed"}, runs=tmp_path / "runs")
    view = load_run(mon, runs_dir=tmp_path / "runs")
    assert view.run_id == "run-1" and view.finished is False and view.slots == 2
    assert [r.task_id for r in view.rows] == ["b", "c", "a", "d"]  # running, queued, then the rest in order
    rows = {r.task_id: r for r in view.rows}
    assert rows["b"].last_event == "tool_use: Edit" and rows["b"].turns == 3 and rows["b"].cost_usd == 0.25
    assert rows["d"].error_message == "boom" and rows["c"].elapsed_seconds is None
    p = view.progress
    assert (p.total, p.done, p.running, p.queued, p.failed) == (4, 2, 1, 1, 1)
    assert set(p.counts) == {s.value for s in TaskStatus}
    assert p.cost_usd == pytest.approx(0.75)
    assert json.loads(json.dumps(view.to_json()))["rows"][0]["status"] == "running"


def test_finished_run_and_older_runs(tmp_path: Path) -> None:
    mon, runs = tmp_path / "monitoring", tmp_path / "runs"
    old = registry_with(mon, "run-old", {"a": "completed"}, runs=runs)
    old.finalize()
    assert load_run(mon).finished is True
    registry_with(mon, "run-unfinished", {"x": "running"}, runs=runs)  # never finalized
    registry_with(mon, "run-new", {"n": "completed"}, runs=runs)
    assert load_run(mon).run_id == "run-new"
    older = load_run(mon, "run-old", runs_dir=runs)
    assert older.finished and [r.task_id for r in older.rows] == ["a"] and older.source.endswith("run-old_final.json")
    rebuilt = load_run(mon, "run-unfinished", runs_dir=runs)
    assert rebuilt.source.endswith("events.jsonl") and rebuilt.rows[0].status is TaskStatus.RUNNING


def test_no_run_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no run found"):
        load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no run found"):
        load_run(tmp_path / "empty")
    registry_with(tmp_path / "m", "run-1", {"a": "queued"})
    with pytest.raises(InputError, match="no run 'nope'"):
        load_run(tmp_path / "m", "nope")


def _row(status: TaskStatus, elapsed: float | None) -> TaskRow:
    return TaskRow("t", status, "agent", 1, elapsed, None, 0, None)


def test_eta_estimate() -> None:
    done = [_row(TaskStatus.COMPLETED, 60.0), _row(TaskStatus.FAILED, 120.0)]  # mean 90 s
    assert estimate_eta(done + [_row(TaskStatus.QUEUED, None)], slots=4) == 90.0
    assert estimate_eta(done, slots=2) == 0.0
    assert estimate_eta([_row(TaskStatus.RUNNING, 10.0)], slots=2) is None  # nothing finished yet
    # 4 queued x 90 s over 2 slots = 180 s; a running task 30 s in has 60 s left: (360 + 60) / 2.
    work = done + [_row(TaskStatus.QUEUED, None)] * 4 + [_row(TaskStatus.RUNNING, 30.0)]
    assert estimate_eta(work, slots=2) == 210.0
    # A task running longer than the mean could end any time: no number rather than "~0s".
    assert estimate_eta(done + [_row(TaskStatus.RUNNING, 95.0)], slots=2) is None
    # A cancelled task that never ran says nothing about task durations.
    assert estimate_eta([_row(TaskStatus.CANCELLED, 0.0), _row(TaskStatus.QUEUED, None)], slots=1) is None


def cli() -> click.Group:
    group = click.Group()
    group.add_command(status_cmd.command)
    return group


def test_status_command(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    mon = repo / ".gadugi" / "monitoring"
    registry_with(mon, "run-1", {"alpha": "completed", "beta": "running"}, runs=repo / ".gadugi" / "runs")
    sub = repo / "sub"
    sub.mkdir()
    runner = CliRunner()
    out = runner.invoke(cli(), ["status", "--project-root", str(sub)])
    assert out.exit_code == 0, out.output
    assert "alpha" in out.output and "beta" in out.output and "1/2 done" in out.output
    data = json.loads(runner.invoke(cli(), ["status", "--json", "--project-root", str(repo)]).output)
    assert data["run_id"] == "run-1" and {r["task_id"] for r in data["rows"]} == {"alpha", "beta"}
    custom = runner.invoke(cli(), ["status", "--project-root", str(repo), "--monitoring-dir", str(tmp_path / "none")])
    assert custom.exit_code == 1 and custom.output.strip().count("\n") == 0 and "no run found" in custom.output


def test_status_watch_until_finished(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo()
    reg = registry_with(repo / ".gadugi" / "monitoring", "run-1", {"a": "running", "b": "queued"})
    steps = iter([lambda: reg.transition("a", TaskStatus.COMPLETED),
                  lambda: reg.transition("b", TaskStatus.CANCELLED, reason="stop"),
                  reg.finalize])
    monkeypatch.setattr(status_cmd, "_sleep", lambda seconds: next(steps)())
    out = CliRunner().invoke(cli(), ["status", "--watch", "--project-root", str(repo)])
    assert out.exit_code == 0, out.output
    assert "0/2 done" in out.output and "finished" in out.output and "cancelled" in out.output
    lines = CliRunner().invoke(cli(), ["status", "--watch", "--json", "--project-root", str(repo)]).output
    assert json.loads(lines.splitlines()[-1])["finished"] is True


def test_status_outside_a_repo(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli(), ["status", "--project-root", str(tmp_path)])
    assert out.exit_code == 1 and "not a git repository" in out.output
