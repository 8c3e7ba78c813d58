"""Batch size: planning time by number of prompts, and registry update latency under 16 writers."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import PYTHON, git, median, percentile


@dataclass
class PlanResult:
    prompts: int
    shape: str
    seconds: float | None  # None: did not finish within the time limit
    edges: int
    limit: float
    conflict_edges: int = -1
    cpu_seconds: float | None = None  # this process's CPU time (less moved by a loaded machine)


def _plan_once(n: int, shape: str, limit: float) -> PlanResult:
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        try:
            proc = subprocess.run([PYTHON, "-m", "benchmarks.plan_worker", tmp, str(n), shape],
                                  capture_output=True, text=True, timeout=limit if limit > 0 else None, check=False)
        except subprocess.TimeoutExpired:
            return PlanResult(prompts=n, shape=shape, seconds=None, edges=-1, limit=limit)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        data = json.loads(proc.stdout)
    return PlanResult(prompts=n, shape=shape, seconds=data["seconds"], edges=data["edges"], limit=limit,
                      conflict_edges=data["conflict_edges"], cpu_seconds=data["cpu_seconds"])


def run_planning(sizes: list[int], shapes: list[str], limit: float) -> list[PlanResult]:
    out = []
    for shape in shapes:
        for n in sizes:
            out.append(_plan_once(n, shape, limit))
    return out


@dataclass
class RegistryResult:
    tasks: int
    writers: int
    updates: int
    p50: float
    p99: float
    max: float
    single_p50: float


def run_registry(tasks: int, writers: int, per_writer: int) -> RegistryResult:
    from orchestrator.state.registry import ProcessRegistry

    with tempfile.TemporaryDirectory(prefix="bench-reg-") as tmp:
        mon = Path(tmp) / "monitoring"
        reg = ProcessRegistry(mon, "bench-run")
        with reg.batch():
            for i in range(tasks):
                reg.register(f"t{i}", task_name=f"task {i}", command=["agent", str(i)], working_directory=tmp,
                             prompt_file=None, branch=f"b/{i}", base_sha="0" * 40, worktree=tmp, priority=5)
        single = []
        for i in range(50):
            t0 = time.perf_counter()
            reg.update(f"t{i % tasks}", phase="agent")
            single.append(time.perf_counter() - t0)
        start_at = time.time() + 1.5  # every writer is imported and waiting before the first update
        procs = [subprocess.Popen([PYTHON, "-m", "benchmarks.registry_writer", str(mon), "bench-run",
                                   f"t{w % tasks}", str(per_writer), repr(start_at)],
                                  stdout=subprocess.PIPE, text=True) for w in range(writers)]
        lat: list[float] = []
        for p in procs:
            out, _ = p.communicate()
            lat += json.loads(out)
    return RegistryResult(tasks=tasks, writers=writers, updates=len(lat), p50=median(lat), p99=percentile(lat, 99),
                          max=max(lat), single_p50=median(single))


SCOPE_DIRS, SCOPE_FILES = 5, 50


def _scopes(i: int) -> list[str]:
    """The `scopes` shape: two of 50 files in 5 directories each; every 10th prompt adds its
    directory's `*.py` glob, every 50th the whole directory (so a few groups are large)."""
    per_dir = SCOPE_FILES // SCOPE_DIRS
    first, second = i % SCOPE_FILES, (i * 7 + 3) % SCOPE_FILES
    files = [f"src/pkg{f // per_dir}/f{f % per_dir}.py" for f in (first, second)]
    if i % 10 == 0:
        files.append(f"src/pkg{i % SCOPE_DIRS}/*.py")
    if i % 50 == 0:
        files.append(f"src/pkg{(i // 50) % SCOPE_DIRS}/")
    return files


def main_plan_worker(argv: list[str]) -> int:
    """Child process: write N prompts into a fresh repo, time ls-files + analyze + plan_names."""
    from orchestrator.gitops import git as ogit
    from orchestrator.plan.analyzer import TaskAnalyzer
    from orchestrator.worktrees.manager import WorktreeManager

    root, n, shape = Path(argv[0]), int(argv[1]), argv[2]
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for i in range(max(n, 10)):
        (repo / "src" / f"m{i:04d}.py").write_text(f"X = {i}\n")
    (repo / "src" / "shared.py").write_text("S = 1\n")
    for k in range(SCOPE_DIRS):
        (repo / "src" / f"pkg{k}").mkdir()
        for j in range(SCOPE_FILES // SCOPE_DIRS):
            (repo / "src" / f"pkg{k}" / f"f{j}.py").write_text(f"Y = {j}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "files")
    prompts = repo / "prompts"
    prompts.mkdir()
    paths = []
    for i in range(n):
        files = [f"src/m{i:04d}.py"]
        if shape == "all-share-one-file" or (shape == "mixed" and i % 10 == 0):
            files.append("src/shared.py")
        if shape == "scopes":
            files = _scopes(i)
        front = [f"id: p{i:04d}", f"files: [{', '.join(files)}]"]
        if shape in ("mixed", "scopes") and i % 7 == 3:
            front.append(f"depends_on: [p{i - 1:04d}]")
        path = prompts / f"p{i:04d}.md"
        path.write_text("---\n" + "\n".join(front) + f"\n---\n# Prompt {i}\nChange {files[0]} please.\n")
        paths.append(path)
    t0, cpu0 = time.perf_counter(), time.process_time()
    tracked = ogit.ls_files(repo)
    analysis = TaskAnalyzer(repo, tracked).analyze(paths)
    WorktreeManager(repo).plan_names([t.id for t in analysis.tasks])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "edges": len(analysis.edges),
                      "conflict_edges": sum(e.kind == "conflict" for e in analysis.edges)}))
    return 0


if __name__ == "__main__":
    sys.exit(main_plan_worker(sys.argv[1:]))
