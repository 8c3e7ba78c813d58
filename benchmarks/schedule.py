"""Schedule quality: the real ExecutionEngine on a virtual clock, against lower bounds.

Graphs come from real prompt files through the real TaskAnalyzer (dependencies, and conflicts from
shared file scopes, oriented by the analyzer). The fake Backend of benchmarks/virtual.py "runs"
each task for its known duration on a virtual clock, so hundreds of multi-hour schedules take
seconds and are exact: the makespan differs from the lower bound only by the policy (and the
engine's launch stagger, which is simulated too).
"""
from __future__ import annotations

import heapq
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import git

N_FILES = 30


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


def simulate(spec: GraphSpec, workdir: Path) -> ScheduleResult:
    from orchestrator.models import EdgeKind, Plan, PlannedTask
    from orchestrator.plan.analyzer import (
        TaskAnalyzer,
        execution_groups,
        longest_remaining_path,
    )
    from orchestrator.run.engine import EngineSettings

    from benchmarks.virtual import START, Simulation, VirtualBackend, VirtualClock

    repo = workdir / "repo"
    paths, durations = _write_graph(repo, spec)
    tracked = git(repo, "ls-files").splitlines()
    analysis = TaskAnalyzer(repo, tracked).analyze(paths)
    planned = [PlannedTask(spec=s, branch=f"b/{s.id}", worktree=workdir / "wt" / s.id, agent_command=["true"])
               for s in analysis.tasks]
    plan = Plan(tasks=planned, edges=analysis.edges, shared_scopes=analysis.shared_scopes, base_sha="0" * 40)
    run_dir = workdir / "runs" / f"g{spec.seed}-{spec.slots}"
    if run_dir.exists():
        raise RuntimeError(f"{run_dir} reused")
    sim = Simulation(plan, VirtualBackend(VirtualClock(), durations), run_dir)
    remaining = longest_remaining_path([t.spec for t in planned], plan.edges)
    settings = EngineSettings(max_parallel=spec.slots, retries=0)  # the launch stagger is simulated too
    _, results = sim.run(settings, remaining_path=remaining)
    makespan = max(end for _, end in sim.backend.spans.values()) - START
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
