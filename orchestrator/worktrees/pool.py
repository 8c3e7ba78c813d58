"""A pool of finished worktrees, recycled for new tasks instead of checked out from scratch.

A fresh `git worktree add` writes every file of the tree: seconds on a big repository, and on
ext4 without a journal up to 14x slower right after a removal (perf-limits §1). Recycling a clean
worktree moves it to the new task's path and rewrites only the files that differ between the two
commits: 3-9x faster (perf-limits §3).

What makes a recycled worktree look fresh to the agent (tests/test_worktree_pool.py proves it):
`reset --hard <start>` puts index and tracked files at the start commit, `clean -ffdx` removes
every untracked and ignored file except the warm dependency directories, and the task's branch is
created new with `switch -c`, so an existing branch is never reused or moved. While pooled, a
worktree sits detached (it holds no branch, so the user can delete or check out the previous
task's branch anywhere) and locked with a pool reason (so `git worktree prune/remove` leave it).

Pool entries live in `<worktrees_root>-pool/<n>`, a sibling of the worktrees directory: the same
filesystem (so `git worktree move` is a rename), and outside the directory whose unknown children
`WorktreeManager.orphans` reports. The list is `.gadugi/pool.json`, rewritten atomically under the
repository's git lock, which also serializes the moves themselves.

Warming (`warm_one`, run in the background by worktrees/warming.py while a run starts) adds fresh
detached checkouts of the base. A warming entry is listed from the moment it is registered, marked
with the warmer's pid, and the warmer holds its flock (`.gadugi/pool-warm-<slot>.lock`) until the
checkout is complete and the worktree's lock reason says so. An `acquire` that finds no ready entry
claims a warming one by holding its claim flock (`.gadugi/pool-claim-<slot>.lock`: other takers
pass it by, and a claimer's death ends the claim), waits for the warmer's flock, and takes the
worktree only if its lock reason then says ready: an entry left by a warmer killed mid-checkout is
discarded there, or by `drain`, which removes everything under the pool directory.

Taking an entry relocks it for the task, moves it with its lock and only then unlists it, so a kill
at any step leaves it listed or at the task's path, locked by the pool or by the task: the task's
next attempt clears what is its own (`leftover_of`), and nothing is left that nobody knows of.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from pydantic import BaseModel, Field

from orchestrator.errors import OrchestratorError, StateError
from orchestrator.gitops import git
from orchestrator.models import iso
from orchestrator.state.atomic import read_json, write_json_atomic
from orchestrator.state.locks import file_lock, is_held
from orchestrator.worktrees.manager import CreatedWorktree, WorktreeManager

log = logging.getLogger(__name__)

POOL_FILE = "pool.json"
POOL_LOCK_REASON = "gadugi-pool: idle, recycled for the next task"
WARMING_LOCK_REASON = "gadugi-pool: warming, not ready"
# Ignored directories that are expensive to rebuild and that a task of the same repository almost
# always wants again. Keeping them is the one way a recycled worktree differs from a fresh one: a
# dependency installed (or modified) by the previous task is still there, possibly stale for the new
# base's lockfile. That is the trade the issue asks for (an `npm install` or venv costs far more
# than a checkout) and the package managers re-sync these directories against the lockfile anyway.
# Only directories git ignores at the new start commit stay; an unignored one would show up as
# untracked and be committed by the agent's `git add -A`, so it is removed like any other file.
DEFAULT_WARM_DIRS: tuple[str, ...] = ("node_modules", ".venv", "venv", "target", ".tox")
# Per-worktree state of an operation the previous task left unfinished; such a worktree is not
# pooled, because the next agent would find itself mid-merge or mid-rebase.
_IN_PROGRESS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "BISECT_LOG", "rebase-merge", "rebase-apply")
# Per-worktree settings that would make the recycled tree differ from a fresh full checkout.
_PER_WORKTREE_CONFIG = ("config.worktree", "info/sparse-checkout")


class PoolEntry(BaseModel):
    path: str
    released_at: str
    previous_branch: str | None = Field(default=None, description="Branch of the task that used it last.")
    warming_pid: int | None = Field(default=None, description="Set while a warmer is still checking it out.")


class PoolFile(BaseModel):
    version: int = 1
    entries: list[PoolEntry] = Field(default_factory=list)


def not_poolable_reason(path: Path) -> str | None:
    """None when the worktree at `path` may be recycled, else why not. Does not check dirtiness."""
    gitdir = git.linked_admin_dir(path)
    if gitdir is None:
        return "not a linked worktree"
    for name in _IN_PROGRESS:
        if (gitdir / name).exists():
            return f"an unfinished git operation ({name})"
    for name in _PER_WORKTREE_CONFIG:
        if (gitdir / name).exists():
            return f"per-worktree settings ({name})"
    # Submodules are neither reset nor cleaned by the commands below, and git refuses to move a
    # worktree that has them; such repositories get fresh worktrees.
    if (path / ".gitmodules").exists():
        return "the repository uses submodules"
    return None


class WorktreePool:
    """Keeps up to `size` clean worktrees of finished tasks and hands them to new tasks.

    Safe across processes: every WorkflowManager may acquire and release concurrently. `size` only
    bounds `release`; `acquire` takes whatever is there.
    """

    def __init__(
        self, manager: WorktreeManager, *, size: int, warm_dirs: Sequence[str] = DEFAULT_WARM_DIRS
    ) -> None:
        if size < 0:
            raise ValueError("pool size must not be negative")
        for name in warm_dirs:
            if not name or "/" in name or name in (".", "..", ".git"):
                raise ValueError(f"warm directory must be a plain directory name, not {name!r}")
        self.manager = manager
        self.size = size
        self.warm_dirs = tuple(warm_dirs)
        root = manager.worktrees_root
        self.pool_dir = root.parent / f"{root.name}-pool"
        self.state_path = manager.project_root / ".gadugi" / POOL_FILE

    # -- public ----------------------------------------------------------------------------------

    def entries(self) -> list[Path]:
        """Paths currently listed as pooled (not validated), but for entries whose warmer died."""
        with file_lock(self.manager.lock_path):
            return [Path(e.path) for e in self._load().entries if not self._abandoned(e)]

    def acquire(
        self,
        task_id: str,
        branch: str,
        path: Path,
        *,
        start_sha: str,
        lock_reason: str,
        merged_from: Sequence[str] = (),
        leftover_of: str | None = None,
    ) -> CreatedWorktree | None:
        """A pooled worktree moved to `path`, on a new `branch` at `start_sha`, locked with
        `lock_reason`; None when the pool has nothing usable (the caller then creates one).

        `start_sha` must be a commit (WorktreeManager.start_commit gives it). A branch or path that
        already exists is a WorktreeError-free refusal: None, and nothing changes. `leftover_of`:
        as for WorktreeManager.create, what an earlier attempt of the task left half taken is
        cleared first.
        """
        repo = self.manager.project_root
        path = Path(os.path.abspath(path))
        with ExitStack() as claim:
            with file_lock(self.manager.lock_path):
                if leftover_of is not None:
                    self.manager.clear_leftover(branch, leftover_of)
                if git.branch_exists(repo, branch) or os.path.lexists(path):
                    return None
                chosen = self._choose()
                if chosen is None:
                    return None
                source, warming = chosen
                if warming:
                    # Claimed for as long as we hold this flock: other takers pass the entry by,
                    # and if we are killed the kernel lets go, so the entry (listed throughout)
                    # is free again instead of lost.
                    claim.enter_context(file_lock(self._claim_lock(source)))
                elif not self._move_in(source, path, lock_reason):
                    return None
            if warming:
                # Its warmer may still be writing files. Wait for it without the git lock (the
                # warmer needs that to finish), then take the entry only if it finished.
                with file_lock(self._warm_lock(source)):
                    pass
                with file_lock(self.manager.lock_path):
                    entry = self._registered(source)
                    if entry is None or entry.lock_reason != POOL_LOCK_REASON or os.path.lexists(path):
                        log.warning("warming of %s did not finish; creating a fresh worktree instead", source)
                        self._unlist(source)
                        if entry is not None:
                            self._discard(source)
                        return None
                    if not self._move_in(source, path, lock_reason):
                        return None
        try:
            # Outside the lock: these touch only this worktree, and they are the slow part.
            self._reset(path, start_sha)
            git.switch_new_branch(path, branch, start_sha)
        except (OrchestratorError, OSError) as exc:
            log.warning("recycling into %s failed, falling back to a fresh worktree: %s", path, exc)
            with file_lock(self.manager.lock_path):
                self._discard(path)
                if not git.delete_branch_if_at(repo, branch, start_sha) and git.branch_exists(repo, branch):
                    log.warning("kept branch %s after failed recycle: it moved from %s", branch, start_sha)
            return None
        return CreatedWorktree(path=path, branch=branch, start_sha=start_sha, merged_from=tuple(merged_from))

    def warm_one(self, start_sha: str) -> bool:
        """Add one fresh detached checkout of `start_sha` to the pool; False when it is full.

        Listed as warming from its registration on (so acquire can claim it and wait), ready once
        checked out. Raises what the checkout raises, after removing the half-made entry."""
        repo = self.manager.project_root
        with ExitStack() as warming:
            with file_lock(self.manager.lock_path):
                state = self._load()
                if self.size == 0 or sum(not self._abandoned(e) for e in state.entries) >= self.size:
                    return False
                slot = self._free_slot(state)
                # Held until the checkout is done: a claimer waits on it, and the kernel lets go
                # of it if we are killed, so the claimer never waits for a dead warmer.
                warming.enter_context(file_lock(self._warm_lock(slot)))
                git.info_exclude_add(repo, self._exclude_patterns())
                self.pool_dir.mkdir(parents=True, exist_ok=True)
                state.entries.append(PoolEntry(path=str(slot), released_at=iso(), warming_pid=os.getpid()))
                self._save(state)
                try:
                    git.add_worktree(repo, slot, None, start_sha, checkout=False, lock_reason=WARMING_LOCK_REASON)
                except OrchestratorError:
                    self._unlist(slot)
                    raise
            try:
                git.checkout_worktree(slot)
            except BaseException:
                with file_lock(self.manager.lock_path):
                    self._unlist(slot)
                    self._discard(slot)
                raise
            with file_lock(self.manager.lock_path):
                # The lock reason is the mark of a finished checkout that a claimer trusts (a task
                # may be waiting for this entry already, holding its claim).
                git.relock_worktree(slot, POOL_LOCK_REASON)
                state = self._load()
                for item in state.entries:
                    if os.path.realpath(item.path) == os.path.realpath(slot):
                        item.warming_pid = None
                self._save(state)
        return True

    def release(self, path: Path) -> bool:
        """Put the finished task's worktree at `path` into the pool; True when pooled.

        Call it only for completed tasks. A dirty worktree (anything `git status` shows), one with
        an unfinished git operation, per-worktree settings or submodules, or a full pool: False,
        and the worktree is left exactly as it was. The task's branch keeps its commits.
        """
        repo = self.manager.project_root
        path = Path(os.path.abspath(path))
        if self.size == 0 or not path.is_dir() or not_poolable_reason(path) is not None or git.is_dirty(path):
            return False
        with file_lock(self.manager.lock_path):
            state = self._load()
            if len(state.entries) >= self.size:
                return False
            entry = self._registered(path)
            if entry is None or entry.bare or os.path.realpath(path) == os.path.realpath(repo):
                return False
            previous = entry.branch
            git.info_exclude_add(repo, self._exclude_patterns())
            target = self._free_slot(state)
            self.pool_dir.mkdir(parents=True, exist_ok=True)
            # Listed before it moves: a kill mid-way leaves a listed slot that is not there yet
            # (dropped at the next take), never a pooled checkout nobody knows of.
            state.entries.append(PoolEntry(path=str(target), released_at=iso(), previous_branch=previous))
            self._save(state)
            try:
                # Detached first: a pooled worktree must not hold the task's branch.
                git.detach_head(path)
                if entry.locked:
                    git.relock_worktree(path, POOL_LOCK_REASON)
                else:
                    git.lock_worktree(repo, path, POOL_LOCK_REASON)
                git.move_worktree(repo, path, target)
            except OrchestratorError:
                state.entries.pop()
                self._save(state)
                raise
        return True

    def drain(self) -> list[Path]:
        """Remove every pooled worktree (listed or left under the pool directory); returns them."""
        repo = self.manager.project_root
        removed: list[Path] = []
        with file_lock(self.manager.lock_path):
            listed = {os.path.realpath(e.path) for e in self._load().entries}
            for entry in git.list_worktrees(repo):
                real = os.path.realpath(entry.path)
                if real in listed or os.path.dirname(real) == os.path.realpath(self.pool_dir):
                    self._discard(Path(entry.path))
                    removed.append(Path(entry.path))
            self._save(PoolFile())
            git.prune_worktrees(repo)
            try:
                self.pool_dir.rmdir()
            except OSError:
                pass  # absent, or holds something that is not ours: leave it
        return removed

    # -- internals -------------------------------------------------------------------------------

    def _reset(self, path: Path, start_sha: str) -> None:
        # Only files that differ between the two commits are rewritten; ignore rules are those of
        # the new commit from here on, which is what the cleaning below must follow.
        git.reset_hard(path, start_sha)
        # -ff: also nested repositories an agent may have cloned. -x with -e: every ignored file
        # goes except the warm directories, at any depth (a monorepo has one node_modules per package).
        git.clean_untracked(path, ignored=True, keep=self.warm_dirs)
        # Without -x: removes untracked files that are not ignored, i.e. a warm directory the new
        # commit does not ignore (it would otherwise be an untracked change the agent commits).
        if self.warm_dirs:
            git.clean_untracked(path, ignored=False)
        gitdir = git.linked_admin_dir(path)
        if gitdir is not None:
            # A fresh worktree's HEAD reflog starts at its start commit, and ORIG_HEAD is that
            # commit too: no trace of the previous task's history for the agent to stumble on.
            (gitdir / "logs" / "HEAD").unlink(missing_ok=True)
        git.set_orig_head(path, start_sha)

    def _move_in(self, source: Path, path: Path, lock_reason: str) -> bool:
        """Move a chosen pool entry to the task's path, locked for it, and unlist it (under the
        git lock). In this order a kill leaves the checkout listed, or at the task's path, and
        always locked by the pool or by the task, never unlocked and known to nobody."""
        repo = self.manager.project_root
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The task's lock before the move, and the move keeps it: from here the checkout is
            # recognisably this task's (its next attempt clears it, WorktreeManager.clear_leftover).
            git.relock_worktree(source, lock_reason)
            git.move_worktree(repo, source, path)
        except (OrchestratorError, OSError) as exc:
            log.warning("pooled worktree %s unusable, removing it: %s", source, exc)
            self._unlist(source)
            self._discard(source)
            return False
        self._unlist(source)
        return True

    def _choose(self) -> tuple[Path, bool] | None:
        """The first ready entry that is still a registered, existing worktree, else the first
        warming one, passing by entries another taker has claimed; with whether it is still
        warming. Dead entries are dropped on the way (under the git lock); the chosen one stays
        listed until it has moved."""
        state = self._load()
        if not state.entries:
            return None
        registered = {os.path.realpath(e.path): e for e in git.list_worktrees(self.manager.project_root)}
        kept: list[PoolEntry] = []
        for item in state.entries:
            wt = registered.get(os.path.realpath(item.path))
            if self._abandoned(item):
                if wt is not None:
                    self._discard(Path(item.path))
            elif item.warming_pid is not None:
                kept.append(item)  # still being checked out: a claimer waits for it
            elif wt is not None and not wt.prunable and Path(item.path).is_dir():
                kept.append(item)
            elif wt is not None:  # registered but its directory is gone: drop the registration
                self._discard(Path(item.path))
        if len(kept) != len(state.entries):
            state.entries = kept
            self._save(state)
        free = [i for i in kept if not is_held(self._claim_lock(Path(i.path)))]
        chosen = next((i for i in free if i.warming_pid is None), free[0] if free else None)
        return None if chosen is None else (Path(chosen.path), chosen.warming_pid is not None)

    def _unlist(self, path: Path) -> None:
        state = self._load()
        state.entries = [e for e in state.entries if os.path.realpath(e.path) != os.path.realpath(path)]
        self._save(state)

    def _abandoned(self, item: PoolEntry) -> bool:
        """Listed as warming while nobody holds its flock: its warmer was killed mid-way."""
        return item.warming_pid is not None and not is_held(self._warm_lock(Path(item.path)))

    def _warm_lock(self, slot: Path) -> Path:
        return self.state_path.parent / f"pool-warm-{slot.name}.lock"

    def _claim_lock(self, slot: Path) -> Path:
        return self.state_path.parent / f"pool-claim-{slot.name}.lock"

    def _discard(self, path: Path) -> None:
        """Remove a worktree of ours (pooled, or just recycled and not yet handed over)."""
        try:
            # Pooled worktrees hold nothing but a clean checkout of a committed state.
            self.manager.remove_fresh(path)
        except OrchestratorError as exc:
            log.warning("could not remove pooled worktree %s: %s", path, exc)

    def _registered(self, path: Path) -> git.WorktreeEntry | None:
        real = os.path.realpath(path)
        for entry in git.list_worktrees(self.manager.project_root):
            if os.path.realpath(entry.path) == real:
                return entry
        return None

    def _free_slot(self, state: PoolFile) -> Path:
        used = {os.path.realpath(e.path) for e in state.entries}
        n = 0
        while True:
            candidate = self.pool_dir / str(n)
            if os.path.realpath(candidate) not in used and not os.path.lexists(candidate):
                return candidate
            n += 1

    def _exclude_patterns(self) -> list[str]:
        patterns = [f"/.gadugi/{POOL_FILE}"]
        try:
            rel = Path(os.path.normpath(self.pool_dir)).relative_to(self.manager.project_root)
            patterns.append(f"/{rel.as_posix()}/")
        except ValueError:
            pass  # the pool lives outside the checkout
        return patterns

    def _load(self) -> PoolFile:
        try:
            data = read_json(self.state_path)
        except StateError as exc:  # moved aside by read_json; the worktrees stay findable by drain
            log.warning("%s", exc)
            data = None
        if data is None:
            return PoolFile()
        try:
            return PoolFile.model_validate(data)
        except ValueError:
            log.warning("ignoring malformed %s", self.state_path)
            return PoolFile()

    def _save(self, state: PoolFile) -> None:
        write_json_atomic(self.state_path, state.model_dump(mode="json"))

