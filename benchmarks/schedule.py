"""Schedule quality: the real ExecutionEngine on a virtual clock, against lower bounds.

Graphs come from real prompt files through the real TaskAnalyzer (dependencies, and conflicts from
shared file scopes, oriented by the analyzer). A fake Backend "runs" each task for its known
duration on a virtual clock that the engine's `time` module is swapped for, so hundreds of
multi-hour schedules take seconds and are exact: the makespan differs from the lower bound only by
the policy (and the engine's launch stagger, which is simulated too).
"""
from __future__ import annotations

import heapq
import inspect
import queue
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import git

N_FILES = 30


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class VirtualQueue:
    """The engine's event queue: `get` jumps the clock to the next completion (or the timeout)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, int, Any]] = []
        self.seq = 0

    def put(self, item: Any, at: float | None = None) -> None:
        self.seq += 1
        heapq.heappush(self.pending, (self.clock.now if at is None else at, self.seq, item))

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        limit = self.clock.now + (timeout or 0.0)
        if self.pending and self.pending[0][0] <= limit:
            at, _, item = heapq.heappop(self.pending)
            self.clock.now = max(self.clock.now, at)
            return item
        self.clock.now = limit
        raise queue.Empty

    def get_nowait(self) -> Any:
        return self.get(timeout=0.0)

    def empty(self) -> bool:
        return not self.pending


class VirtualBackend:
    def __init__(self, clock: VirtualClock, durations: dict[str, float]) -> None:
        from orchestrator.backends.base import BackendEvent
        from orchestrator.models import TaskResult, TaskStatus

        self._event, self._result, self._status = BackendEvent, TaskResult, TaskStatus
        self.clock = clock
        self.durations = durations
        self.events = VirtualQueue(clock)
        self.spans: dict[str, tuple[float, float]] = {}
        self._running: set[str] = set()

    def submit(self, request: Any) -> tuple[int | None, float | None]:
        tid = request.task_id
        end = self.clock.now + self.durations[tid]
        self.spans[tid] = (self.clock.now, end)
        request.task_dir.mkdir(parents=True, exist_ok=True)
        result = self._result(task_id=tid, status=self._status.COMPLETED, attempt=request.attempt,
                              branch=request.branch, worktree=str(request.worktree), base_sha=request.base_sha,
                              head_sha="1" * 40)
        request.result_path.write_text(result.model_dump_json())
        self._running.add(tid)
        self.events.put(self._event("exit", tid, request.attempt, "exit", {"returncode": 0}), at=end)
        return None, None

    def attach(self, request: Any, pid: int, create_time: float) -> None:
        raise NotImplementedError("no resume in the simulation")

    def cancel(self, task_id: str, *, timeout: bool = False) -> None:
        pass

    def kill(self, task_id: str) -> None:
        pass

    def running(self) -> list[str]:
        return sorted(self._running)

    def close(self) -> None:
        pass


@dataclass
class GraphSpec:
    n: int
    slots: int
    seed: int


@dataclass
class ScheduleResult:
    n: int
    slots: int
    edges_dep: int
    edges_conflict: int
    makespan: float
    lower_bound: float
    plan_bound: float
    wave: float
    bound_kind: str


def _write_graph(root: Path, spec: GraphSpec) -> tuple[list[Path], dict[str, float]]:
    rng = random.Random(spec.seed)
    folder = root / "prompts" / f"g{spec.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    paths, durations = [], {}
    for i in range(spec.n):
        tid = f"t{i:03d}"
        deps = sorted({f"t{j:03d}" for j in rng.sample(range(i), k=min(i, rng.choice([0, 0, 0, 1, 1, 2])))})
        files = sorted({f"src/f{rng.randrange(N_FILES):02d}.py" for _ in range(rng.choice([0, 1, 1, 2]))})
        # Uneven, agent-like durations: most tasks take minutes, a few take much longer.
        durations[tid] = rng.uniform(60, 300) if rng.random() < 0.75 else rng.uniform(300, 1500)
        front = [f"id: {tid}"]
        if deps:
            front.append(f"depends_on: [{', '.join(deps)}]")
        if files:
            front.append(f"files: [{', '.join(files)}]")
        path = folder / f"{tid}.md"
        path.write_text("---\n" + "\n".join(front) + f"\n---\n# Task {tid}\nDo the work.\n")
        paths.append(path)
    return paths, durations


def _longest(ids: list[str], edges: list[tuple[str, str]], durations: dict[str, float]) -> float:
    import graphlib

    preds: dict[str, list[str]] = {t: [] for t in ids}
    for before, after in edges:
        preds[after].append(before)
    finish: dict[str, float] = {}
    for tid in graphlib.TopologicalSorter(preds).static_order():
        finish[tid] = durations[tid] + max((finish[p] for p in preds[tid]), default=0.0)
    return max(finish.values(), default=0.0)


def _list_schedule(durations: list[float], slots: int) -> float:
    loads = [0.0] * slots  # a valid min-heap
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def _make_engine(plan: Any, slots: int, backend: VirtualBackend, registry: Any, make_request: Any,
                 remaining: dict[str, int]) -> Any:
    from orchestrator.run import engine as engine_mod

    # Any: the engine's constructor is being reshaped while this is written; both shapes are driven.
    engine_cls: Any = engine_mod.ExecutionEngine
    params = inspect.signature(engine_cls).parameters
    if "settings" in params:
        settings = engine_mod.EngineSettings(max_parallel=slots, retries=0, min_free_memory=0, min_free_disk=0)
        return engine_cls(plan, settings=settings, backend=backend, registry=registry,
                                          make_request=make_request, remaining_path=remaining,
                                          rng=random.Random(0))
    return engine_cls(plan, max_parallel=slots, backend=backend, registry=registry,
                                      make_request=make_request, remaining_path=remaining)


def simulate(spec: GraphSpec, workdir: Path) -> ScheduleResult:
    from orchestrator.models import EdgeKind, Plan, PlannedTask
    from orchestrator.plan.analyzer import (
        TaskAnalyzer,
        execution_groups,
        longest_remaining_path,
    )
    from orchestrator.run import engine as engine_mod
    from orchestrator.state.registry import ProcessRegistry
    from orchestrator.task.wire import TaskRequest

    repo = workdir / "repo"
    paths, durations = _write_graph(repo, spec)
    tracked = git(repo, "ls-files").splitlines()
    analysis = TaskAnalyzer(repo, tracked).analyze(paths)
    planned = [PlannedTask(spec=s, branch=f"b/{s.id}", worktree=workdir / "wt" / s.id, agent_command=["true"])
               for s in analysis.tasks]
    plan = Plan(tasks=planned, edges=analysis.edges, base_sha="0" * 40)
    run_dir = workdir / "runs" / f"g{spec.seed}-{spec.slots}"
    if run_dir.exists():
        raise RuntimeError(f"{run_dir} reused")
    clock = VirtualClock()
    backend = VirtualBackend(clock, durations)
    registry = ProcessRegistry(run_dir / "monitoring", f"sim-{spec.seed}", fsync=False)
    with registry.batch():
        for p in planned:
            registry.register(p.spec.id, task_name=p.spec.title, command=["true"], working_directory=str(p.worktree),
                              prompt_file=str(p.spec.prompt_file), branch=p.branch, base_sha=plan.base_sha,
                              worktree=str(p.worktree), priority=p.spec.priority)

    def make_request(p: Any, preds: Any, attempt: int, *rest: Any) -> Any:
        return TaskRequest(run_id="sim", task_id=p.spec.id, attempt=attempt, project_root=repo,
                           task_dir=run_dir / "tasks" / p.spec.id, prompt_path=p.spec.prompt_file, branch=p.branch,
                           worktree=p.worktree, base_sha=plan.base_sha, predecessors=preds,
                           agent_command=["true"], timeout_seconds=7200)

    remaining = longest_remaining_path([t.spec for t in planned], plan.edges)
    saved = engine_mod.time, getattr(engine_mod, "LIVENESS_INTERVAL", None)
    engine_mod.time = clock  # type: ignore[assignment]
    if saved[1] is not None:
        engine_mod.LIVENESS_INTERVAL = 1e12  # liveness checks real pids; it never affects the order
    try:
        start = clock.now
        engine = _make_engine(plan, spec.slots, backend, registry, make_request, remaining)
        results = engine.run()
        makespan = max(end for _, end in backend.spans.values()) - start
    finally:
        engine_mod.time = saved[0]
        if saved[1] is not None:
            engine_mod.LIVENESS_INTERVAL = saved[1]
    assert len(results) == len(planned) and all(r.status.value == "completed" for r in results.values())
    ids = [p.spec.id for p in planned]
    dep = [(e.before, e.after) for e in plan.edges if e.kind == EdgeKind.DEPENDENCY]
    every = [(e.before, e.after) for e in plan.edges]
    work = sum(durations.values()) / spec.slots
    # Tasks sharing a file must run one after another whatever the order: their sum is a bound.
    per_file: dict[str, float] = {}
    for p in planned:
        for f in set(p.spec.files):
            per_file[f] = per_file.get(f, 0.0) + durations[p.spec.id]
    bounds = {"critical path": _longest(ids, dep, durations), "work/slots": work,
              "file chain": max(per_file.values(), default=0.0)}
    kind = max(bounds, key=lambda k: bounds[k])
    plan_bound = max(_longest(ids, every, durations), work)
    groups = execution_groups([t.spec for t in planned], plan.edges)
    wave = sum(_list_schedule([durations[t] for t in g], spec.slots) for g in groups)
    return ScheduleResult(n=spec.n, slots=spec.slots, edges_dep=len(dep), edges_conflict=len(every) - len(dep),
                          makespan=makespan, lower_bound=bounds[kind], plan_bound=plan_bound, wave=wave,
                          bound_kind=kind)


def run_schedule(graphs: int, seed: int = 1) -> list[ScheduleResult]:
    rng = random.Random(seed)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sched-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "src").mkdir()
        for i in range(N_FILES):
            (repo / "src" / f"f{i:02d}.py").write_text(f"X = {i}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "files")
        for g in range(graphs):
            n = rng.choice([20, 40, 60, 80, 100])
            for slots in (2, 4, 8, 16):
                results.append(simulate(GraphSpec(n=n, slots=slots, seed=seed * 1000 + g), work))
    return results
