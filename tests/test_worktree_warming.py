"""Pool warming: background checkouts of the base that the first wave's acquire takes, waits for,
or (when the warmer died) refuses; never a half-made checkout handed to a task."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from orchestrator.gitops import git
from orchestrator.state.locks import is_held
from orchestrator.worktrees.manager import CreatedWorktree, WorktreeManager
from orchestrator.worktrees.pool import WARMING_LOCK_REASON, WorktreePool
from orchestrator.worktrees.warming import PoolWarming, start_warming

from conftest import wait_until

MakeRepo = Callable[..., Path]
PROJECT = Path(__file__).resolve().parent.parent


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def gated(make_repo: MakeRepo, tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """A repository whose checkout stops in a smudge filter until the FIFO `gate` is written:
    (repo, gate, started) where `started` appears once a checkout is inside the filter. Whatever
    still waits at the gate when the test ends (it failed mid-way) is let through, not left."""
    repo = make_repo({".gitattributes": "*.gated filter=gate\n", "a.gated": "payload\n", "src/m.py": "X = 1\n"})
    gate, started = tmp_path / "gate", tmp_path / "started"
    os.mkfifo(gate)
    sh(repo, "config", "filter.gate.smudge", f"touch {started}; cat {gate} >/dev/null; cat")
    sh(repo, "config", "filter.gate.clean", "cat")
    yield repo.resolve(), gate, started
    for _ in range(100):
        try:
            fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO once no filter waits
        except OSError:
            return
        os.close(fd)  # the waiting `cat` reads EOF and the checkout goes on


def open_gate(gate: Path) -> None:
    with gate.open("w") as fifo:
        fifo.write("go\n")


def test_acquire_takes_a_warmed_checkout_of_the_base(make_repo: MakeRepo) -> None:
    repo = make_repo({"README.md": "# demo\n", "src/app.py": "print('hi')\n"}).resolve()
    base = sh(repo, "rev-parse", "HEAD")
    pool = WorktreePool(WorktreeManager(repo), size=4)
    start_warming(pool, base, 2).join()
    slots = pool.entries()
    assert len(slots) == 2
    assert all(e.locked and e.lock_reason != WARMING_LOCK_REASON for e in git.list_worktrees(repo) if e.path in slots)
    path = repo / ".worktrees" / "t1"
    got = pool.acquire("t1", "gadugi/t1", path, start_sha=base, lock_reason="gadugi run=r task=t1")
    assert got is not None and got.path == path
    assert sh(path, "symbolic-ref", "HEAD") == "refs/heads/gadugi/t1"
    assert (path / "src" / "app.py").read_text() == "print('hi')\n" and not git.is_dirty(path)
    assert len(pool.entries()) == 1
    # Enough entries already: a second start adds nothing.
    assert start_warming(pool, base, 1).threads == []


def test_nothing_is_warmed_when_the_pool_is_off(make_repo: MakeRepo) -> None:
    repo = make_repo().resolve()
    manager = WorktreeManager(repo)
    pool = WorktreePool(manager, size=0)
    assert start_warming(pool, sh(repo, "rev-parse", "HEAD"), 4).threads == []
    assert not pool.pool_dir.exists() and len(git.list_worktrees(repo)) == 1


def warming_one(gated: tuple[Path, Path, Path]) -> tuple[Path, Path, str, WorktreePool, PoolWarming]:
    """A pool of two whose one warming checkout of the base is held at the gate:
    (repo, gate, base, pool, warming)."""
    repo, gate, started = gated
    base = sh(repo, "rev-parse", "HEAD")
    pool = WorktreePool(WorktreeManager(repo), size=2)
    warming = start_warming(pool, base, 1)
    wait_until(started.exists, "the warmer's checkout to be inside the filter")
    return repo, gate, base, pool, warming


def test_acquire_claims_an_entry_still_being_warmed_and_waits_for_it(gated: tuple[Path, Path, Path]) -> None:
    repo, gate, base, pool, warming = warming_one(gated)
    got: list[CreatedWorktree | None] = []
    path = repo / ".worktrees" / "t1"
    taker = threading.Thread(target=lambda: got.append(
        pool.acquire("t1", "gadugi/t1", path, start_sha=base, lock_reason="gadugi run=r task=t1")))
    (slot,) = pool.entries()
    taker.start()
    try:
        # Claimed while the warmer still writes it: still listed, but passed by by other takers.
        wait_until(lambda: is_held(claim_lock(repo, slot)), "the warming entry to be claimed")
        assert pool.entries() == [slot]
        assert pool.acquire("t2", "gadugi/t2", repo / ".worktrees" / "t2", start_sha=base, lock_reason="r") is None
        assert not path.exists() and not got
    finally:
        open_gate(gate)
        taker.join()
        warming.join()
    assert got and got[0] is not None and got[0].path == path
    assert (path / "a.gated").read_text() == "payload\n" and not git.is_dirty(path)
    assert sh(path, "symbolic-ref", "HEAD") == "refs/heads/gadugi/t1"


def claim_lock(repo: Path, slot: Path) -> Path:
    return repo / ".gadugi" / f"pool-claim-{slot.name}.lock"


def test_a_killed_claimers_entry_stays_listed_for_the_next_taker(gated: tuple[Path, Path, Path]) -> None:
    repo, gate, base, pool, warming = warming_one(gated)
    (slot,) = pool.entries()
    code = ("import sys; from pathlib import Path; from orchestrator.worktrees.manager import WorktreeManager;"
            "from orchestrator.worktrees.pool import WorktreePool; repo = Path(sys.argv[1]);"
            "WorktreePool(WorktreeManager(repo), size=2).acquire('t1', 'gadugi/t1', repo / '.worktrees' / 't1',"
            " start_sha=sys.argv[2], lock_reason='gadugi run=r task=t1 pid=1')")
    claimer = subprocess.Popen([sys.executable, "-c", code, str(repo), base], cwd=PROJECT)
    try:
        wait_until(lambda: is_held(claim_lock(repo, slot)), "the claimer to wait for the warming entry")
    finally:
        claimer.kill()  # kill -9 while it waits for the warmer
        claimer.wait()
        open_gate(gate)
        warming.join()
    assert pool.entries() == [slot]
    got = pool.acquire("t2", "gadugi/t2", repo / ".worktrees" / "t2", start_sha=base, lock_reason="r")
    assert got is not None and (got.path / "a.gated").read_text() == "payload\n"
    assert not git.branch_exists(repo, "gadugi/t1") and not (repo / ".worktrees" / "t1").exists()


def kill_warmer_mid_checkout(repo: Path, gate: Path, started: Path, base: str) -> Path:
    code = ("import sys; from pathlib import Path; from orchestrator.worktrees.manager import WorktreeManager;"
            "from orchestrator.worktrees.pool import WorktreePool;"
            "WorktreePool(WorktreeManager(Path(sys.argv[1])), size=2).warm_one(sys.argv[2])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(repo), base], cwd=PROJECT, start_new_session=True)
    try:
        wait_until(started.exists, "the warmer's checkout to be inside the filter")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the warmer, its git and the filter: kill -9 mid-checkout
        proc.wait()
    (slot,) = [e.path for e in git.list_worktrees(repo) if e.lock_reason == WARMING_LOCK_REASON]
    return slot


def test_a_checkout_left_by_a_killed_warmer_is_never_handed_out(gated: tuple[Path, Path, Path]) -> None:
    repo, gate, started = gated
    base = sh(repo, "rev-parse", "HEAD")
    slot = kill_warmer_mid_checkout(repo, gate, started, base)
    pool = WorktreePool(WorktreeManager(repo), size=2)
    path = repo / ".worktrees" / "t1"
    assert pool.acquire("t1", "gadugi/t1", path, start_sha=base, lock_reason="r") is None
    assert not path.exists() and not slot.exists()
    assert [e.path for e in git.list_worktrees(repo)] == [repo]
    assert pool.entries() == [] and not git.branch_exists(repo, "gadugi/t1")


def test_a_killed_warmers_entry_does_not_count_and_warming_replaces_it(gated: tuple[Path, Path, Path]) -> None:
    repo, gate, started = gated
    base = sh(repo, "rev-parse", "HEAD")
    kill_warmer_mid_checkout(repo, gate, started, base)
    pool = WorktreePool(WorktreeManager(repo), size=1)
    assert pool.entries() == []
    started.unlink()
    warming = start_warming(pool, base, 1)
    wait_until(started.exists, "the new warmer's checkout to be inside the filter")
    open_gate(gate)
    warming.join()
    (slot,) = pool.entries()
    assert (slot / "a.gated").read_text() == "payload\n"


def test_drain_removes_a_checkout_left_by_a_killed_warmer(gated: tuple[Path, Path, Path]) -> None:
    repo, gate, started = gated
    slot = kill_warmer_mid_checkout(repo, gate, started, sh(repo, "rev-parse", "HEAD"))
    pool = WorktreePool(WorktreeManager(repo), size=2)
    assert pool.drain() == [slot]
    assert [e.path for e in git.list_worktrees(repo)] == [repo] and not pool.pool_dir.exists()
