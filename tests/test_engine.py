"""The scheduler itself, with a backend whose tasks take known times (request -> handle -> outcome)."""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from orchestrator.backends.base import BackendEvent
from orchestrator.models import Edge, EdgeKind, Plan, PlannedTask, TaskResult, TaskSpec, TaskStatus
from orchestrator.run.engine import EngineSettings, ExecutionEngine
from orchestrator.state.atomic import write_json_atomic
from orchestrator.state.registry import ProcessRegistry
from orchestrator.task.wire import Predecessor, TaskRequest

from test_e2e import peak_concurrency


class TimedBackend:
    """Each task 'runs' for its configured seconds on a timer thread, then leaves a result."""

    def __init__(self, durations: dict[str, float]) -> None:
        self.durations = durations
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
    backend = TimedBackend(durations)
    registry = ProcessRegistry(tmp_path / "mon", "run-t", fsync=False)
    for p in plan.tasks:
        registry.register(p.spec.id, task_name=p.spec.title, command=["agent"], working_directory="/w",
                          prompt_file="/p", branch=p.branch, base_sha="base", worktree="/w", priority=5)

    def make_request(planned: PlannedTask, preds: list[Predecessor], attempt: int, previous: object) -> TaskRequest:
        return TaskRequest(run_id="run-t", task_id=planned.spec.id, attempt=attempt, project_root=tmp_path,
                           task_dir=tmp_path / "tasks" / planned.spec.id, prompt_path=tmp_path / "p.md",
                           branch=planned.branch, worktree=planned.worktree, base_sha="base", predecessors=preds,
                           agent_command=["agent"], timeout_seconds=60)

    engine = ExecutionEngine(plan, settings=EngineSettings(max_parallel=slots, launch_stagger=0), backend=backend,
                             registry=registry, make_request=make_request)
    results = engine.run()
    assert {r.status for r in results.values()} == {TaskStatus.COMPLETED}
    return backend


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
