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
from orchestrator.observe.live import (
    TASK_ID_CAP,
    LiveView,
    Observers,
    ProgressPrinter,
    make_observer,
    middle_ellipsis,
    render_view,
    summary_line,
)
from orchestrator.observe.status import RunView, TaskRow, progress
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
    assert "0/2 finished · 1 running · 1 queued" in rendered


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
        view(Retrying(task_id="a", attempt=1, delay=600.0, error="rate limited", failure="rate_limited"))
        row = view.view().rows[0]
    finally:
        view.close()
    assert row.status is TaskStatus.QUEUED and row.attempt == 2
    assert "retry: a attempt 2" in out.getvalue()
    # Without a registry the retry count is unknown; when and why are still said.
    note = row.retry_note or ""
    assert note.startswith("retry in ") and note.endswith("(the model API's rate limit was hit)")


LONG_IDS = ("parser-frontmatter-validation-errors", "parser-frontmatter-validation-warnings")
TOO_LONG = "a-really-long-task-identifier-that-goes-on-and-on-part-7"


def row(task_id: str, status: TaskStatus, **fields: object) -> TaskRow:
    values: dict[str, object] = {"phase": "agent", "attempt": 1, "elapsed_seconds": 65.0,
                                 "last_event": "tool_use: Edit src/parser/front_matter.py", "turns": 12,
                                 "cost_usd": 0.1234}
    values.update(fields)
    return TaskRow(task_id, status, **values)  # type: ignore[arg-type]


def view_of(*rows: TaskRow, finished: bool = False) -> RunView:
    return RunView(run_id="run-1", finished=finished, rows=list(rows), progress=progress(rows, 2), slots=2)


def rendered(view: RunView, width: int) -> list[str]:
    text = Console(file=io.StringIO(), width=width, record=True)
    text.print(render_view(view, width=width))
    return text.export_text().splitlines()


@pytest.mark.parametrize("width", [60, 80, 120])
def test_long_ids_stay_whole_and_the_table_fits(width: int) -> None:
    view = view_of(row(LONG_IDS[0], TaskStatus.RUNNING), row(LONG_IDS[1], TaskStatus.QUEUED),
                   row(TOO_LONG, TaskStatus.FAILED, error_message="boom"))
    lines = rendered(view, width)
    assert max(len(line.rstrip()) for line in lines) <= width
    body = "\n".join(lines)
    for task_id in LONG_IDS:
        assert task_id in body
    # Past the cap, both ends survive: ids of one plan often differ only at the end.
    shown = middle_ellipsis(TOO_LONG, TASK_ID_CAP)
    assert len(shown) == TASK_ID_CAP and shown.startswith(TOO_LONG[:15]) and shown.endswith("part-7")
    assert shown in body
    header = next(line for line in lines if "task" in line and "status" in line)
    assert ("last event" in header) is (width >= 120)
    assert ("phase" in header) is (width >= 80)


def test_at_80_columns_cost_and_turns_give_way_to_the_last_event() -> None:
    lines = rendered(view_of(row("lexer", TaskStatus.RUNNING), row("parser", TaskStatus.FAILED,
                                                                    error_message="verify failed: 3 tests")), 80)
    header = next(line for line in lines if "task" in line and "status" in line)
    assert "last event" in header and "cost" not in header
    assert any("verify failed: 3 tests" in line for line in lines)
    assert max(len(line.rstrip()) for line in lines) <= 80


def test_summary_counts_finished_tasks_by_outcome() -> None:
    rows = ([row(f"c{i}", TaskStatus.COMPLETED) for i in range(3)] + [row("f", TaskStatus.FAILED)]
            + [row("x", TaskStatus.CANCELLED)] + [row(f"r{i}", TaskStatus.RUNNING) for i in range(2)]
            + [row(f"q{i}", TaskStatus.QUEUED) for i in range(4)])
    line = summary_line(view_of(*rows)).plain
    assert line.startswith("5/11 finished (3 completed, 1 failed, 1 cancelled) · 2 running · 4 queued")
    assert summary_line(view_of(row("q", TaskStatus.QUEUED))).plain.startswith("0/1 finished · 0 running · 1 queued")
    done = summary_line(view_of(row("t", TaskStatus.TIMEOUT), finished=True)).plain
    assert done.startswith("1/1 finished (1 timeout)") and done.endswith("run ended")


def test_a_task_waiting_to_retry_says_so() -> None:
    note = "retry 2/3 in 4s (the model API failed or was overloaded)"
    lines = rendered(view_of(row("o", TaskStatus.QUEUED, phase="queued", attempt=3, elapsed_seconds=None,
                                 last_event="agent exited", retry_note=note)), 140)
    (line,) = [line for line in lines if line.startswith(" o ")]
    assert line.split()[1] == "waiting" and note in line and "agent exited" not in line


def test_plain_retry_line_says_why_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    ProgressPrinter()(Retrying(task_id="a", attempt=1, delay=4.0, error="API Error: 529", failure="api_error"))
    out = capsys.readouterr().out
    assert "retry  a: attempt 1 failed (the model API failed or was overloaded): API Error: 529; again in 4.0s" in out
