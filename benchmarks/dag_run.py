"""A real run of a 24-task graph against the best any scheduler could do with the same tasks.

The graph (dependencies and shared files, as the TaskAnalyzer plans them) runs through the CLI at
k=4 with a stand-in agent named `claude` that sleeps 1-4 s and commits. Each task's own slot time
(`running` → terminal in the journal: WorkflowManager, worktree, agent, commit, adoption) is what
the lower bound is computed from, so the ratio shows what the schedule and the gaps between tasks
cost, not what a task costs: max(critical path of dependencies, work ÷ slots, the sum of the tasks
sharing one scope). The virtual-clock benchmark (schedule.py) shows what the policy alone reaches.
"""
from __future__ import annotations

import bisect
import heapq
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.common import GIT_ENV, make_small_repo, median
from benchmarks.overhead import check_run, install_agent, orchestrate
from benchmarks.phases import RunPhases, read_phases
from benchmarks.schedule import _longest

if TYPE_CHECKING:
    from orchestrator.plan.analyzer import Analysis

N_TASKS, SLOTS, SEED = 24, 4, 7
# Sleeps before committing; the task's name says how long (durations/<task id>).
SLEEPING_AGENT = 'sleep "$(cat "$GADUGI_DURATIONS/$GADUGI_TASK_ID")"\n'


@dataclass
class DagResult:
    tasks: int
    slots: int
    makespans: list[float] = field(default_factory=list)  # run_started → last task terminal
    bounds: list[float] = field(default_factory=list)
    bound_kinds: list[str] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)  # the whole CLI, planning and merge check included
    overhead: list[float] = field(default_factory=list)  # median over tasks: slot time minus the agent's sleep
    # The same graph with the same slot times through the engine on the virtual clock: the policy's own ratio.
    virtual: list[float] = field(default_factory=list)
    # The best of many list schedules with random priorities and the slot times known in advance
    # (which no run knows): how close an order chosen with hindsight gets to the bound.
    hindsight: list[float] = field(default_factory=list)
    # Median over launches after the first wave: from the latest end before a task's start to that start.
    launch_gap: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [m / b for m, b in zip(self.makespans, self.bounds, strict=True)]


def _write_graph(repo: Path, rng: random.Random) -> tuple[list[str], dict[str, float]]:
    folder = repo / "prompts"
    folder.mkdir(exist_ok=True)
    names, sleeps = [], {}
    for i in range(N_TASKS):
        tid = f"t{i:02d}"
        deps = sorted({f"t{j:02d}" for j in rng.sample(range(i), k=min(i, rng.choice([0, 0, 0, 1])))})
        files = sorted({f"src/f{rng.randrange(12):02d}.py" for _ in range(rng.choice([0, 1, 1, 2]))})
        sleeps[tid] = round(rng.uniform(1.0, 4.0), 2)
        front = [f"id: {tid}"] + ([f"depends_on: [{', '.join(deps)}]"] if deps else []) + (
            [f"files: [{', '.join(files)}]"] if files else [])
        (folder / f"{tid}.md").write_text("---\n" + "\n".join(front) + f"\n---\n# Task {tid}\nCommit one file.\n")
        names.append(f"prompts/{tid}.md")
    subprocess.run(["git", "add", "-A"], cwd=repo, env=GIT_ENV, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "prompts"], cwd=repo, env=GIT_ENV, check=True)
    return names, sleeps


def analyze(repo: Path, prompts: list[str]) -> Analysis:
    """The graph as the run planned it: tasks, dependency and conflict edges, shared scopes."""
    from orchestrator.gitops import git
    from orchestrator.plan.analyzer import TaskAnalyzer

    return TaskAnalyzer(repo, git.ls_files(repo)).analyze([repo / p for p in prompts])


def lower_bound(analysis: Analysis, slot_times: dict[str, float], slots: int) -> tuple[float, str]:
    """The best makespan for these slot times: no schedule of this graph on `slots` is shorter."""
    from orchestrator.models import EdgeKind

    ids = [t.id for t in analysis.tasks]
    deps = [(e.before, e.after) for e in analysis.edges if e.kind == EdgeKind.DEPENDENCY]
    bounds = {
        "critical path": _longest(ids, deps, slot_times),
        "work/slots": sum(slot_times.values()) / slots,
        # Tasks sharing a scope never overlap, whatever the order.
        "scope chain": max((sum(slot_times[t] for t in tasks) for tasks in analysis.shared_scopes.values()),
                           default=0.0),
    }
    kind = max(bounds, key=lambda k: bounds[k])
    return bounds[kind], kind


def virtual_makespan(analysis: Analysis, slot_times: dict[str, float], slots: int, work: Path) -> float:
    """The makespan the engine's policy gives these slot times, on the virtual clock (no overhead)."""
    from orchestrator.models import Plan, PlannedTask
    from orchestrator.plan.analyzer import longest_remaining_path
    from orchestrator.run.engine import EngineSettings

    from benchmarks.virtual import START, Simulation, VirtualBackend, VirtualClock

    planned = [PlannedTask(spec=s, branch=f"b/{s.id}", worktree=work / "wt" / s.id, agent_command=["true"])
               for s in analysis.tasks]
    plan = Plan(tasks=planned, edges=analysis.edges, shared_scopes=analysis.shared_scopes, base_sha="0" * 40)
    sim = Simulation(plan, VirtualBackend(VirtualClock(), slot_times), work / "virtual-run")
    sim.run(EngineSettings(max_parallel=slots, retries=0, launch_stagger=0.0),
            remaining_path=longest_remaining_path([t.spec for t in planned], plan.edges))
    return max(end for _, end in sim.backend.spans.values()) - START


def hindsight_makespan(analysis: Analysis, slot_times: dict[str, float], slots: int,
                       tries: int = 2000, seed: int = 1) -> float:
    """The shortest makespan found by list-scheduling with `tries` random priority orders, the
    durations known: dependencies wait, tasks sharing a scope never overlap, a free slot takes the
    highest-priority task that may start."""
    from orchestrator.models import EdgeKind

    ids = [t.id for t in analysis.tasks]
    needs: dict[str, set[str]] = {t: set() for t in ids}
    for e in analysis.edges:
        if e.kind == EdgeKind.DEPENDENCY:
            needs[e.after].add(e.before)
    scopes = [set(tasks) for tasks in analysis.shared_scopes.values()]

    def blocked(tid: str, busy: set[str]) -> bool:
        return any(tid in scope and scope & busy for scope in scopes)

    def makespan(rank: dict[str, float]) -> float:
        now, running, done, started = 0.0, [], set(), set()  # running: heap of (end, task)
        while len(done) < len(ids):
            busy = {tid for _, tid in running}
            for tid in sorted((t for t in ids if t not in started and needs[t] <= done), key=lambda t: -rank[t]):
                if len(running) < slots and not blocked(tid, busy):
                    started.add(tid)
                    busy.add(tid)
                    heapq.heappush(running, (now + slot_times[tid], tid))
            now, tid = heapq.heappop(running)
            done.add(tid)
        return now

    rng = random.Random(seed)
    return min(makespan({t: rng.random() for t in ids}) for _ in range(tries))


def _launch_gaps(slots: dict[str, tuple[float, float]], k: int) -> list[float]:
    starts = sorted(start for start, _ in slots.values())
    ends = sorted(end for _, end in slots.values())
    return [start - ends[i] for start in starts[k:] if (i := bisect.bisect_right(ends, start) - 1) >= 0]


def run_dag(work: Path, reps: int) -> DagResult:
    out = DagResult(tasks=N_TASKS, slots=SLOTS)
    agent_dir = install_agent(work, prefix=SLEEPING_AGENT)
    for rep in range(reps):
        repo = make_small_repo(work / f"dag-{rep}")
        prompts, sleeps = _write_graph(repo, random.Random(SEED))
        durations = work / f"durations-{rep}"
        durations.mkdir()
        for tid, seconds in sleeps.items():
            (durations / tid).write_text(f"{seconds}\n")
        t0 = time.perf_counter()
        proc = orchestrate(repo, prompts, SLOTS, agent_dir=agent_dir, env={"GADUGI_DURATIONS": str(durations)})
        check_run(proc, N_TASKS)
        out.wall.append(time.perf_counter() - t0)
        phases: RunPhases = read_phases(next((repo / ".gadugi" / "runs").iterdir()))
        slot_times = {tid: end - start for tid, (start, end) in phases.slots.items()}
        analysis = analyze(repo, prompts)
        bound, kind = lower_bound(analysis, slot_times, SLOTS)
        assert phases.run_started_at is not None
        out.makespans.append(max(end for _, end in phases.slots.values()) - phases.run_started_at)
        out.bounds.append(bound)
        out.bound_kinds.append(kind)
        out.overhead.append(median([slot_times[t] - sleeps[t] for t in slot_times]))
        out.virtual.append(virtual_makespan(analysis, slot_times, SLOTS, work / f"virtual-{rep}") / bound)
        out.hindsight.append(hindsight_makespan(analysis, slot_times, SLOTS) / bound)
        out.launch_gap.append(median(_launch_gaps(phases.slots, SLOTS)))
        shutil.rmtree(repo)
        shutil.rmtree(durations)
    return out
