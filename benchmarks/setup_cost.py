"""Per-task worktree setup by repository size: fresh `git worktree add` (the floor every fresh
checkout pays), WorktreeManager.create, a sparse create of one directory (`--sparse` with a
one-directory `files:` scope), and a WorktreePool recycle once the pool is warm.

Every repetition removes the previous worktree first, as a run does between tasks, so the numbers
include this VM's slow-create-after-delete effect where it applies (perf-limits §1). The plain add
and the create alternate within each repetition, so neither is always the one measured right after
the other's removal.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import generated_repo, git, median


@dataclass
class SetupResult:
    files: int
    git_add: list[float] = field(default_factory=list)
    git_remove: list[float] = field(default_factory=list)
    create: list[float] = field(default_factory=list)
    sparse: list[float] = field(default_factory=list)  # create with one directory (100 files) as scope
    remove: list[float] = field(default_factory=list)
    acquire: list[float] = field(default_factory=list)
    release: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return median(self.acquire) / median(self.git_add)

    @property
    def create_ratio(self) -> float:
        return median(self.create) / median(self.git_add)

    @property
    def sparse_ratio(self) -> float:
        return median(self.sparse) / median(self.git_add)


def measure(cache_dir: Path, files: int, reps: int) -> SetupResult:
    from orchestrator.worktrees.manager import WorktreeManager
    from orchestrator.worktrees.pool import WorktreePool

    repo, first, second = generated_repo(cache_dir, files)
    wt_root = repo / ".worktrees"
    if wt_root.exists():  # left by an interrupted earlier run
        for entry in git(repo, "worktree", "list", "--porcelain").split("\n\n")[1:]:
            stale = entry.splitlines()[0].removeprefix("worktree ")
            if "locked" in entry:
                git(repo, "worktree", "unlock", stale)
            git(repo, "worktree", "remove", "--force", stale)
        shutil.rmtree(wt_root, ignore_errors=True)
    manager = WorktreeManager(repo)
    pool = WorktreePool(manager, size=2)
    pool.drain()
    out = SetupResult(files=files)
    def plain(i: int) -> None:
        path = wt_root / f"plain-{i}"
        t0 = time.perf_counter()
        git(repo, "worktree", "add", "-q", "--no-track", "-b", f"plain-{i}-{time.time_ns()}", str(path), first)
        out.git_add.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        git(repo, "worktree", "remove", "--force", str(path))
        out.git_remove.append(time.perf_counter() - t0)

    def fresh(i: int) -> None:
        path = wt_root / f"fresh-{i}"
        t0 = time.perf_counter()
        manager.create(f"fresh-{i}", f"bench/fresh-{i}-{time.time_ns()}", path, base_sha=first, lock_reason="bench")
        out.create.append(time.perf_counter() - t0)
        manager.finish(path)
        t0 = time.perf_counter()
        manager.remove(path)
        out.remove.append(time.perf_counter() - t0)

    for i in range(reps):
        for step in (plain, fresh) if i % 2 == 0 else (fresh, plain):
            step(i)
    for i in range(reps):
        path = wt_root / f"sparse-{i}"
        t0 = time.perf_counter()
        manager.create(f"sparse-{i}", f"bench/sparse-{i}-{time.time_ns()}", path, base_sha=first,
                       lock_reason="bench", sparse_scopes=["d0000/"])
        out.sparse.append(time.perf_counter() - t0)
        manager.finish(path)
        manager.remove(path)
    # Warm the pool with one finished worktree, then alternate start commits so every recycle
    # rewrites the files that differ, as consecutive tasks on a moving base do.
    seed = wt_root / "seed"
    manager.create("seed", f"bench/seed-{time.time_ns()}", seed, base_sha=first, lock_reason="bench")
    manager.finish(seed)
    assert pool.release(seed)
    for i in range(reps):
        path = wt_root / f"pooled-{i}"
        start = second if i % 2 == 0 else first
        t0 = time.perf_counter()
        got = pool.acquire(f"pooled-{i}", f"bench/pooled-{i}-{time.time_ns()}", path, start_sha=start,
                           lock_reason="bench")
        out.acquire.append(time.perf_counter() - t0)
        assert got is not None, "pool was empty"
        (path / "build").mkdir()
        (path / "build" / "artifact.o").write_text("x")  # an ignored leftover for the next clean
        manager.finish(path)
        t0 = time.perf_counter()
        assert pool.release(path)
        out.release.append(time.perf_counter() - t0)
    pool.drain()
    return out
