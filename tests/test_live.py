"""The live view: rows from events or registry snapshots, the choice of observer, and fan-out."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from orchestrator.models import AgentOutcome, OrchestrationResult, TaskResult, TaskStatus
from orchestrator.observe.events import (
    EngineEvent,
    Heartbeat,
    PhaseChanged,
    Retrying,
    RunFinished,
    RunStarted,
    TaskCancelled,
    TaskFinished,
    TaskStarted,
)
from orchestrator.observe.live import LiveView, Observers, ProgressPrinter, make_observer, render_view
from orchestrator.state.registry import ProcessRegistry
from rich.console import Console


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def console(stream: io.StringIO) -> Console:
    return Console(file=stream, force_terminal=True, width=140, height=40)


def result(tid: str, status: TaskStatus, error: str | None = None) -> TaskResult:
    return TaskResult(task_id=tid, status=status, duration_seconds=12.5, error_message=error,
                      outcome=AgentOutcome(cost_usd=0.5, num_turns=4))


def started(tid: str, attempt: int = 1) -> TaskStarted:
    return TaskStarted(task_id=tid, branch=f"gadugi/{tid}", predecessors=(), attempt=attempt)


def test_rows_from_events_and_messages() -> None:
    out = Tty()
    view = LiveView(console(out))
    try:
        view(started("a"))
        view(started("b"))
        view(PhaseChanged(task_id="a", phase="agent"))
        view(Heartbeat(task_id="a", summary="tool_use: Edit", turns=2, cost_usd=0.1))
        view(TaskFinished(task_id="b", result=result("b", TaskStatus.FAILED, "agent said no")))
        view(TaskCancelled(task_id="c", reason="dependency 'b' failed"))
        rows = {r.task_id: r for r in view.view().rows}
    finally:
        view.close()
    assert rows["a"].status is TaskStatus.RUNNING and rows["a"].phase == "agent" and rows["a"].turns == 2
    assert rows["a"].last_event == "tool_use: Edit" and rows["a"].cost_usd == 0.1
    assert rows["b"].status is TaskStatus.FAILED and rows["b"].elapsed_seconds == 12.5 and rows["b"].cost_usd == 0.5
    assert rows["c"].status is TaskStatus.CANCELLED and "dependency" in (rows["c"].last_event or "")
    assert "failed: b: agent said no" in out.getvalue()  # printed above the table


def test_rows_from_registry_include_queued(tmp_path: Path) -> None:
    reg = ProcessRegistry(tmp_path / "mon", "run-1", fsync=False)
    for tid in ("a", "b"):
        reg.register(tid, task_name=tid, command=["x"], working_directory="/w", prompt_file=None, branch=tid,
                     base_sha="0", worktree="/w", priority=5)
    reg.transition("a", TaskStatus.RUNNING, phase="agent")
    out = Tty()
    view = LiveView(console(out))
    try:
        view(RunStarted(run_id="run-1", run_dir=tmp_path, monitoring_dir=tmp_path / "mon", registry=reg,
                        max_parallel=2, total=2))
        v = view.view()
        view(RunFinished(result=OrchestrationResult(run_id="run-1", total_tasks=2, successful_tasks=0, failed_tasks=0,
                                                    execution_time_seconds=1.0)))
    finally:
        view.close()
    assert v.run_id == "run-1" and v.slots == 2
    assert [(r.task_id, r.status) for r in v.rows] == [("a", TaskStatus.RUNNING), ("b", TaskStatus.QUEUED)]
    text = Console(file=io.StringIO(), width=140, record=True)
    text.print(render_view(v))
    rendered = text.export_text()
    for column in ("task", "status", "phase", "try", "elapsed", "last event", "turns", "cost"):
        assert column in rendered
    assert "0/2 done · 1 running · 1 queued" in rendered


def test_render_caps_rows_and_labels_eta() -> None:
    view = LiveView(console(Tty()))
    for i in range(30):
        view._apply(started(f"t{i:02d}"))
    for i in range(10):
        view._apply(TaskFinished(task_id=f"t{i:02d}", result=result(f"t{i:02d}", TaskStatus.COMPLETED)))
    text = Console(file=io.StringIO(), width=200, record=True)
    text.print(render_view(view.view(), max_rows=5))
    rendered = text.export_text()
    assert "25 more task(s) not shown" in rendered and "ETA ~" in rendered and "estimate" in rendered


def test_make_observer_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERM", raising=False)
    live = make_observer(plain=False, quiet=False, verbose=False, stream=Tty())
    assert isinstance(live, LiveView)
    assert live.console.no_color  # conftest sets NO_COLOR=1; rich honours it
    assert isinstance(make_observer(plain=True, quiet=False, verbose=False, stream=Tty()), ProgressPrinter)
    assert isinstance(make_observer(plain=False, quiet=False, verbose=False, stream=io.StringIO()), ProgressPrinter)
    assert isinstance(make_observer(plain=False, quiet=True, verbose=False, stream=Tty()), ProgressPrinter)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_observer(plain=False, quiet=False, verbose=False, stream=Tty()), ProgressPrinter)


def test_observers_isolate_failures_and_close() -> None:
    seen: list[str] = []
    closed: list[bool] = []

    def broken(event: EngineEvent) -> None:
        raise RuntimeError("bug")

    class Closing:
        def __call__(self, event: EngineEvent) -> None:
            seen.append(event.name)

        def close(self) -> None:
            closed.append(True)

    with Observers(broken, None, Closing()) as obs:
        obs(started("a"))
        obs(TaskFinished(task_id="a", result=result("a", TaskStatus.COMPLETED)))
    assert seen == ["started", "finished"] and closed == [True]


def test_retry_requeues_with_the_next_attempt() -> None:
    out = Tty()
    view = LiveView(console(out))
    try:
        view(started("a"))
        view(Retrying(task_id="a", attempt=1, delay=2.0, error="rate limited", failure="rate_limited"))
        row = view.view().rows[0]
    finally:
        view.close()
    assert row.status is TaskStatus.QUEUED and row.attempt == 2
    assert "retry: a attempt 2" in out.getvalue()
