"""The scheduler itself, with a backend whose tasks take known times (request -> handle -> outcome)."""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest
from orchestrator.agents.failures import PERMANENT
from orchestrator.backends.base import BackendEvent
from orchestrator.models import Edge, EdgeKind, FailureClass, Plan, PlannedTask, TaskResult, TaskSpec, TaskStatus
from orchestrator.observe.events import BreakerTripped, EngineEvent, TaskCancelled, TaskFinished, TaskStarted
from orchestrator.run.engine import EngineSettings, ExecutionEngine
from orchestrator.state.atomic import write_json_atomic
from orchestrator.state.registry import ProcessRegistry
from orchestrator.task.wire import Predecessor, TaskRequest

from test_e2e import peak_concurrency


class TimedBackend:
    """Each task 'runs' for its configured seconds on a timer thread, then leaves a result."""

    def __init__(self, durations: dict[str, float], failures: dict[str, FailureClass] | None = None) -> None:
        self.durations = durations
        self.failures = failures or {}  # tasks that fail so instead of completing
        self.events: queue.Queue[BackendEvent] = queue.Queue()
        self.spans: dict[str, list[float]] = {}
        self.requests: dict[str, TaskRequest] = {}
        self._running: set[str] = set()

    def submit(self, request: TaskRequest) -> tuple[int | None, float | None]:
        tid = request.task_id
        self.requests[tid] = request
        self.spans[tid] = [time.monotonic()]
        self._running.add(tid)
        threading.Timer(self.durations[tid], self._finish, args=(request,)).start()
        return None, None

    def _finish(self, request: TaskRequest) -> None:
        tid = request.task_id
        self.spans[tid].append(time.monotonic())
        result = TaskResult(task_id=tid, status=TaskStatus.COMPLETED, attempt=request.attempt, head_sha=f"sha-{tid}")
        result.outcome.success = True
        if tid in self.failures:
            result.status, result.error_message = TaskStatus.FAILED, f"{tid} failed"
            result.outcome.success, result.outcome.failure = False, self.failures[tid]
        write_json_atomic(request.result_path, result.model_dump(mode="json"))
        self._running.discard(tid)
        self.events.put(BackendEvent("exit", tid, request.attempt, "exit", {"returncode": 0}))

    def attach(self, request: TaskRequest, pid: int, create_time: float) -> None:
        raise AssertionError("not used")

    def cancel(self, task_id: str, *, timeout: bool = False) -> None:
        pass

    def kill(self, task_id: str) -> None:
        pass

    def running(self) -> list[str]:
        return sorted(self._running)

    def close(self) -> None:
        pass


def make_plan(tmp_path: Path, ids: list[str], edges: list[tuple[str, str, EdgeKind]]) -> Plan:
    tasks = [
        PlannedTask(spec=TaskSpec(id=t, title=t, prompt_file=tmp_path / f"{t}.md", prompt_text=t, index=i),
                    branch=f"gadugi/{t}", worktree=tmp_path / "wt" / t, agent_command=["agent"])
        for i, t in enumerate(ids)
    ]
    return Plan(tasks=tasks, edges=[Edge(before=b, after=a, kind=k, reason="test") for b, a, k in edges],
                base_sha="base")


def run_engine(tmp_path: Path, plan: Plan, durations: dict[str, float], slots: int) -> TimedBackend:
    backend, results, _ = run_failing(tmp_path, plan, durations, slots)
    assert {r.status for r in results.values()} == {TaskStatus.COMPLETED}
    return backend


def run_failing(tmp_path: Path, plan: Plan, durations: dict[str, float], slots: int,
                failures: dict[str, FailureClass] | None = None,
                ) -> tuple[TimedBackend, dict[str, TaskResult], list[EngineEvent]]:
    """Run the plan without retries; returns the backend, the results and what observers saw."""
    backend = TimedBackend(durations, failures)
    registry = ProcessRegistry(tmp_path / "mon", "run-t", fsync=False)
    for p in plan.tasks:
        registry.register(p.spec.id, task_name=p.spec.title, command=["agent"], working_directory="/w",
                          prompt_file="/p", branch=p.branch, base_sha="base", worktree="/w", priority=5)

    def make_request(planned: PlannedTask, preds: list[Predecessor], attempt: int, previous: object) -> TaskRequest:
        return TaskRequest(run_id="run-t", task_id=planned.spec.id, attempt=attempt, project_root=tmp_path,
                           task_dir=tmp_path / "tasks" / planned.spec.id, prompt_path=tmp_path / "p.md",
                           branch=planned.branch, worktree=planned.worktree, base_sha="base", predecessors=preds,
                           agent_command=["agent"], timeout_seconds=60)

    seen: list[EngineEvent] = []
    engine = ExecutionEngine(plan, settings=EngineSettings(max_parallel=slots, launch_stagger=0, retries=0),
                             backend=backend, registry=registry, make_request=make_request, observer=seen.append)
    results = engine.run()
    return backend, results, seen


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_conflict_partner_runs_first_when_the_preferred_one_is_not_ready(tmp_path: Path) -> None:
    # a must wait for x; c conflicts with a (planned a -> c). A fixed order would leave a slot idle
    # until x and a are done; mutual exclusion lets c run beside x, then a stacks on c's work.
    plan = make_plan(tmp_path, ["x", "a", "c"], [("x", "a", EdgeKind.DEPENDENCY), ("a", "c", EdgeKind.CONFLICT)])
    backend = run_engine(tmp_path, plan, {"x": 0.4, "a": 0.1, "c": 0.1}, slots=2)
    spans = backend.spans
    assert spans["c"][0] < spans["x"][1], "c did not wait for a partner that was not ready"
    assert not overlap(spans["a"], spans["c"]), "conflicting tasks never run together"
    assert spans["a"][0] >= spans["x"][1]
    assert [p.task_id for p in backend.requests["a"].predecessors] == ["x", "c"]


def test_planned_order_holds_when_both_are_ready_and_slots_are_never_exceeded(tmp_path: Path) -> None:
    ids = [f"t{i}" for i in range(10)]
    edges = [("t0", "t1", EdgeKind.CONFLICT), ("t2", "t3", EdgeKind.DEPENDENCY), ("t3", "t4", EdgeKind.DEPENDENCY)]
    backend = run_engine(tmp_path, make_plan(tmp_path, ids, edges), {t: 0.05 + 0.02 * i for i, t in enumerate(ids)},
                         slots=3)
    spans = backend.spans
    assert spans["t1"][0] >= spans["t0"][1] and [p.task_id for p in backend.requests["t1"].predecessors] == ["t0"]
    assert spans["t4"][0] >= spans["t3"][1] >= spans["t2"][1]
    assert peak_concurrency(spans) <= 3


@pytest.mark.parametrize("failure", sorted(PERMANENT - {"auth"}))
def test_the_same_permanent_failure_three_times_stops_launches(tmp_path: Path, failure: FailureClass) -> None:
    ids = [f"t{i}" for i in range(5)]
    _, results, seen = run_failing(tmp_path, make_plan(tmp_path, ids, []), dict.fromkeys(ids, 0.01), slots=1,
                                   failures=dict.fromkeys(ids, failure))
    assert [results[t].status for t in ids] == [TaskStatus.FAILED] * 3 + [TaskStatus.CANCELLED] * 2
    assert {results[t].cancelled_by for t in ("t3", "t4")} == {"breaker"}
    tripped = [e for e in seen if isinstance(e, BreakerTripped)]
    assert len(tripped) == 1 and tripped[0].task_id == "t2" and "t2 failed" in tripped[0].reason
    assert [e.task_id for e in seen if isinstance(e, TaskStarted)] == ["t0", "t1", "t2"]
    assert {e.task_id for e in seen if isinstance(e, TaskCancelled)} == {"t3", "t4"}


def test_not_logged_in_stops_launches_at_once(tmp_path: Path) -> None:
    ids = ["a", "b", "c"]
    _, results, seen = run_failing(tmp_path, make_plan(tmp_path, ids, []), dict.fromkeys(ids, 0.01), slots=1,
                                   failures={"a": "auth"})
    assert [results[t].status for t in ids] == [TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.CANCELLED]
    assert [type(e).__name__ for e in seen if e.task_id == "a"] == ["TaskStarted", "TaskFinished", "BreakerTripped"]


def test_transient_failures_and_a_success_between_do_not_stop_launches(tmp_path: Path) -> None:
    ids = [f"t{i}" for i in range(6)]
    failures: dict[str, FailureClass] = {"t0": "crashed", "t1": "crashed", "t2": "crashed",
                                         "t3": "agent_error", "t4": "agent_error"}
    _, results, seen = run_failing(tmp_path, make_plan(tmp_path, ids, []), dict.fromkeys(ids, 0.01), slots=1,
                                   failures=failures)
    assert [results[t].status for t in ids] == [TaskStatus.FAILED] * 5 + [TaskStatus.COMPLETED]
    assert not [e for e in seen if isinstance(e, BreakerTripped)]
    assert [e.task_id for e in seen if isinstance(e, TaskFinished)] == ids
