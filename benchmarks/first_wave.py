"""Time to the first wave on a generated repository: from `orchestrator run` to the k-th agent's
start, against k parallel plain `git worktree add` of the same commit (the floor: every task of the
first wave needs a checkout, and git's own is the cheapest way to one). Measured for a first run
(an empty pool: what the background warming buys) and a second run in the same repository (the
pool kept from the first).

The agent is the stand-in `claude` of overhead.py, which commits one file; with a config directory
per agent (the default) launches are not spaced.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator.state.journal import read_journal

from benchmarks.common import GIT_ENV, generated_repo, git
from benchmarks.overhead import check_run, install_agent, orchestrate
from benchmarks.phases import read_phases


@dataclass
class FirstWaveResult:
    files: int
    slots: int
    tasks: int
    git_add: list[float] = field(default_factory=list)  # k parallel `git worktree add`, wall
    first_run: list[float] = field(default_factory=list)  # run start -> k-th agent start
    second_run: list[float] = field(default_factory=list)
    setup_first: list[float] = field(default_factory=list)  # median worktree setup phase per run
    setup_second: list[float] = field(default_factory=list)
    first_agent: list[float] = field(default_factory=list)  # first run: run start -> the first agent's start


def agent_starts(run_dir: Path) -> list[float]:
    """Epoch seconds at which each task's agent process was first recorded, sorted."""
    first: dict[str, float] = {}
    for record in read_journal(run_dir / "events.jsonl"):
        task = record.get("task_id")
        if task is not None and (record.get("changes") or {}).get("pid") and task not in first:
            first[task] = datetime.fromisoformat(record["ts"]).timestamp()
    return sorted(first.values())


def _clone(source: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    # A local clone hardlinks the objects; not --shared, whose alternates point outside the
    # repository, where a sandboxed agent cannot read them. The main tree's checkout is paid here,
    # outside every measurement.
    git(target.parent, "clone", "-q", str(source), str(target))
    return target


def _prompts(repo: Path, prefix: str, n: int) -> list[str]:
    folder = repo / "prompts"
    folder.mkdir(exist_ok=True)
    names = []
    for i in range(n):
        name = f"{prefix}{i:02d}"
        (folder / f"{name}.md").write_text(f"---\nid: {name}\n---\n# Task {name}\nCommit one file.\n")
        names.append(f"prompts/{name}.md")
    subprocess.run(["git", "add", "-A"], cwd=repo, env=GIT_ENV, check=True)
    subprocess.run(["git", "commit", "-q", "-m", f"prompts {prefix}"], cwd=repo, env=GIT_ENV, check=True)
    return names


def _parallel_adds(repo: Path, k: int, tag: str) -> float:
    head = git(repo, "rev-parse", "HEAD")
    paths = [repo.parent / f"floor-{tag}-{i}" for i in range(k)]

    def add(i: int) -> None:
        # Concurrent adds race in git 2.39 ("failed to read .git/worktrees/<x>/commondir"); a
        # retry is what a script doing this would need too, and its time counts.
        for attempt in range(5):
            try:
                git(repo, "worktree", "add", "-q", "--no-track", "-b", f"floor-{tag}-{i}-{attempt}", str(paths[i]), head)
                return
            except RuntimeError:
                if attempt == 4 or paths[i].exists():
                    raise

    t0 = time.perf_counter()
    with ThreadPoolExecutor(k) as pool:
        list(pool.map(add, range(k)))
    took = time.perf_counter() - t0
    for path in paths:
        git(repo, "worktree", "remove", "--force", str(path))
    return took


def _run(repo: Path, prompts: list[str], k: int, agent_dir: Path) -> tuple[float, float, float]:
    """(run start -> k-th agent start, median setup phase, run start -> first agent start)."""
    runs = repo / ".gadugi" / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    epoch0 = time.time()
    proc = orchestrate(repo, prompts, k, agent_dir=agent_dir)
    check_run(proc, len(prompts))
    (run_dir,) = set(runs.iterdir()) - before
    starts = agent_starts(run_dir)
    return starts[k - 1] - epoch0, read_phases(run_dir).medians().get("setup", float("nan")), starts[0] - epoch0


def measure(cache_dir: Path, work: Path, files: int, k: int, tasks: int, reps: int) -> FirstWaveResult:
    source, _, _ = generated_repo(cache_dir, files)
    out = FirstWaveResult(files=files, slots=k, tasks=tasks)
    agent_dir = install_agent(work)
    (work / "home").mkdir(exist_ok=True)
    for rep in range(reps):
        repo = _clone(source, work / f"wave-{rep}")
        first = _prompts(repo, "a", tasks)
        out.git_add.append(_parallel_adds(repo, k, f"{rep}"))
        took, setup, first_agent = _run(repo, first, k, agent_dir)
        out.first_run.append(took)
        out.first_agent.append(first_agent)
        out.setup_first.append(setup)
        second = _prompts(repo, "b", tasks)
        took, setup, _ = _run(repo, second, k, agent_dir)
        out.second_run.append(took)
        out.setup_second.append(setup)
        shutil.rmtree(repo)  # its worktrees and pool live inside it
    return out
