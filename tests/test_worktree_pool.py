"""WorktreePool: recycled worktrees must be indistinguishable from fresh ones (except warm dirs)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from orchestrator.gitops import git
from orchestrator.worktrees.manager import CreatedWorktree, WorktreeManager
from orchestrator.worktrees.pool import POOL_LOCK_REASON, WorktreePool

MakeRepo = Callable[..., Path]


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def tree_listing(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file and symlink under `root` (outside .git and `skip` dirs) → content hash and mode."""
    listing: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git" and d not in skip]
        rel_dir = Path(dirpath).relative_to(root)
        listing[f"{rel_dir.as_posix()}/"] = "dir"
        for name in filenames:
            if name == ".git" and dirpath == str(root):
                continue  # the gitdir pointer: names the admin dir, which differs by design
            full = Path(dirpath) / name
            rel = (rel_dir / name).as_posix()
            if full.is_symlink():
                listing[rel] = "link:" + os.readlink(full)
            else:
                mode = "x" if os.access(full, os.X_OK) else "-"
                listing[rel] = mode + hashlib.sha1(full.read_bytes()).hexdigest()
    return listing


def status_all(wt: Path) -> list[str]:
    out = sh(wt, "status", "--porcelain=v1", "--ignored", "--untracked-files=all")
    return sorted(line for line in out.splitlines() if line)


def commit_in(wt: Path, files: dict[str, str | None], message: str) -> str:
    for rel, content in files.items():
        target = wt / rel
        if content is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
    sh(wt, "add", "-A")
    sh(wt, "commit", "-q", "-m", message)
    return sh(wt, "rev-parse", "HEAD")


def lock_reason(repo: Path, path: Path) -> str | None:
    for entry in git.list_worktrees(repo):
        if os.path.realpath(entry.path) == os.path.realpath(path):
            return entry.lock_reason if entry.locked else None
    raise AssertionError(f"{path} not registered")


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    return make_repo(
        {
            "README.md": "# demo\n",
            ".gitignore": "node_modules/\nbuild/\n*.pyc\n",
            "src/app.py": "print('hi')\n",
            "src/util.py": "X = 1\n",
            "docs/guide.md": "guide\n",
        }
    ).resolve()


@pytest.fixture
def manager(repo: Path) -> WorktreeManager:
    return WorktreeManager(repo)


def finished_task(manager: WorktreeManager, repo: Path, task: str) -> CreatedWorktree:
    """A task that ran: commits edits, a new file and a deletion, and leaves ignored files behind."""
    base = sh(repo, "rev-parse", "HEAD")
    created = manager.create(task, f"gadugi/{task}", manager.worktrees_root / task, base_sha=base, lock_reason="run")
    wt = created.path
    commit_in(wt, {"src/app.py": "print('changed')\n", "src/new.py": "NEW = 1\n", "docs/guide.md": None}, task)
    (wt / "build").mkdir()
    (wt / "build" / "out.o").write_text("binary")
    (wt / "src" / "app.pyc").write_text("cache")
    (wt / "node_modules" / "left-pad").mkdir(parents=True)
    (wt / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1\n")
    manager.finish(wt)
    return created


def advance_main(repo: Path) -> str:
    return commit_in(repo, {"src/util.py": "X = 2\n", "lib/extra.py": "E = 1\n"}, "main moves on")


def test_recycled_worktree_is_indistinguishable_from_fresh(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=4)
    previous = finished_task(manager, repo, "first")
    previous_head = sh(previous.path, "rev-parse", "HEAD")
    assert pool.release(previous.path)
    assert not previous.path.exists()
    start = advance_main(repo)

    recycled = pool.acquire("second", "gadugi/second", manager.worktrees_root / "second",
                            start_sha=start, lock_reason="gadugi run=r task=second")
    fresh = manager.create("third", "gadugi/third", manager.worktrees_root / "third",
                           base_sha=start, lock_reason="gadugi run=r task=third")
    assert recycled is not None
    assert recycled.path == manager.worktrees_root / "second" and recycled.start_sha == start

    r, f = recycled.path, fresh.path
    # Same files with the same content and modes; nothing of the first task but its warm node_modules.
    assert tree_listing(r, skip=("node_modules",)) == tree_listing(f)
    assert not (r / "build").exists() and not (r / "src" / "app.pyc").exists() and not (r / "src" / "new.py").exists()
    assert (r / "node_modules" / "left-pad" / "index.js").exists()
    assert status_all(r) == ["!! node_modules/left-pad/index.js"] and status_all(f) == []
    # Right branch, right HEAD, no leftover history on HEAD and a fresh-looking ORIG_HEAD.
    assert sh(r, "symbolic-ref", "--short", "HEAD") == "gadugi/second"
    assert sh(r, "rev-parse", "HEAD") == sh(f, "rev-parse", "HEAD") == start
    assert sh(r, "rev-parse", "ORIG_HEAD") == sh(f, "rev-parse", "ORIG_HEAD") == start
    assert previous_head not in sh(r, "reflog", "--format=%H")
    assert sh(r, "ls-files", "-s") == sh(f, "ls-files", "-s")
    assert lock_reason(repo, r) == "gadugi run=r task=second"
    # The previous task's branch keeps its commit and is no longer checked out anywhere.
    assert sh(repo, "rev-parse", "gadugi/first") == previous_head
    sh(repo, "branch", "-D", "gadugi/first")
    assert pool.entries() == []


def test_released_worktree_is_detached_locked_and_listed(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=2)
    task = finished_task(manager, repo, "one")
    assert pool.release(task.path)
    [pooled] = pool.entries()
    assert pooled.parent == pool.pool_dir
    assert sh(pooled, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached
    assert lock_reason(repo, pooled) == POOL_LOCK_REASON
    state = json.loads((repo / ".gadugi" / "pool.json").read_text())
    assert state["entries"][0]["previous_branch"] == "gadugi/one"
    # Neither the pool nor its list shows up in the user's status.
    assert sh(repo, "status", "--porcelain") == ""


def test_dirty_worktree_is_never_pooled_or_cleaned(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=4)
    task = finished_task(manager, repo, "dirty")
    (task.path / "notes.txt").write_text("uncommitted work\n")
    (task.path / "README.md").write_text("edited\n")
    before = tree_listing(task.path)
    assert not pool.release(task.path)
    assert tree_listing(task.path) == before
    assert (task.path / "build" / "out.o").exists()
    assert sh(task.path, "symbolic-ref", "--short", "HEAD") == "gadugi/dirty"
    assert pool.entries() == []


def test_unfinished_merge_is_not_pooled(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=4)
    task = finished_task(manager, repo, "merging")
    gitdir = Path(sh(task.path, "rev-parse", "--absolute-git-dir"))
    (gitdir / "MERGE_HEAD").write_text(sh(repo, "rev-parse", "HEAD") + "\n")
    assert not pool.release(task.path)
    assert task.path.exists()


def test_pool_size_is_a_bound(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=1)
    a = finished_task(manager, repo, "a")
    b = finished_task(manager, repo, "b")
    assert pool.release(a.path)
    assert not pool.release(b.path)
    assert b.path.exists() and len(pool.entries()) == 1
    assert not WorktreePool(manager, size=0).release(b.path)


def test_empty_pool_and_existing_branch_or_path_give_none(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=2)
    head = sh(repo, "rev-parse", "HEAD")
    assert pool.acquire("x", "gadugi/x", manager.worktrees_root / "x", start_sha=head, lock_reason="r") is None
    task = finished_task(manager, repo, "t")
    assert pool.release(task.path)
    sh(repo, "branch", "users-branch")
    user_tip = sh(repo, "rev-parse", "users-branch")
    assert pool.acquire("y", "users-branch", manager.worktrees_root / "y", start_sha=head, lock_reason="r") is None
    taken = manager.worktrees_root / "taken"
    taken.mkdir(parents=True)
    assert pool.acquire("z", "gadugi/z", taken, start_sha=head, lock_reason="r") is None
    # Nothing was consumed or moved, and the user's branch is untouched.
    assert len(pool.entries()) == 1 and sh(repo, "rev-parse", "users-branch") == user_tip
    assert list(taken.iterdir()) == []


def test_warm_dir_not_ignored_at_new_base_is_removed(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=2)
    task = finished_task(manager, repo, "w")
    assert pool.release(task.path)
    start = commit_in(repo, {".gitignore": "build/\n"}, "stop ignoring node_modules")
    got = pool.acquire("v", "gadugi/v", manager.worktrees_root / "v", start_sha=start, lock_reason="r")
    assert got is not None
    assert not (got.path / "node_modules").exists()
    assert status_all(got.path) == []


def test_custom_warm_dirs_and_none(repo: Path, manager: WorktreeManager) -> None:
    task = finished_task(manager, repo, "c")
    pool = WorktreePool(manager, size=2, warm_dirs=())
    assert pool.release(task.path)
    head = sh(repo, "rev-parse", "HEAD")
    got = pool.acquire("d", "gadugi/d", manager.worktrees_root / "d", start_sha=head, lock_reason="r")
    assert got is not None and status_all(got.path) == []
    with pytest.raises(ValueError):
        WorktreePool(manager, size=1, warm_dirs=("a/b",))


def test_stale_entry_is_dropped(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=2)
    task = finished_task(manager, repo, "s")
    assert pool.release(task.path)
    [pooled] = pool.entries()
    sh(repo, "worktree", "unlock", str(pooled))
    sh(repo, "worktree", "remove", "--force", str(pooled))
    head = sh(repo, "rev-parse", "HEAD")
    assert pool.acquire("n", "gadugi/n", manager.worktrees_root / "n", start_sha=head, lock_reason="r") is None
    assert pool.entries() == []


def test_concurrent_acquires_get_distinct_worktrees(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=4)
    for name in ("p1", "p2"):
        assert pool.release(finished_task(manager, repo, name).path)
    head = sh(repo, "rev-parse", "HEAD")

    def take(name: str) -> CreatedWorktree | None:
        own = WorktreePool(WorktreeManager(repo), size=4)
        return own.acquire(name, f"gadugi/{name}", manager.worktrees_root / name, start_sha=head, lock_reason=name)

    with ThreadPoolExecutor(3) as ex:
        results = list(ex.map(take, ["q1", "q2", "q3"]))
    got = [r for r in results if r is not None]
    assert len(got) == 2 and len({r.path for r in got}) == 2
    for r in got:
        assert sh(r.path, "symbolic-ref", "--short", "HEAD") == r.branch and status_all(r.path) == [
            "!! node_modules/left-pad/index.js"
        ]


def test_drain_removes_pooled_worktrees_and_keeps_branches(repo: Path, manager: WorktreeManager) -> None:
    pool = WorktreePool(manager, size=4)
    a = finished_task(manager, repo, "da")
    tip = sh(a.path, "rev-parse", "HEAD")
    assert pool.release(a.path)
    removed = pool.drain()
    assert len(removed) == 1 and not removed[0].exists()
    assert pool.entries() == [] and not pool.pool_dir.exists()
    assert sh(repo, "rev-parse", "gadugi/da") == tip
    assert [e for e in git.list_worktrees(repo) if e.path.parent == pool.pool_dir] == []


class Killed(BaseException):
    """Stands for a kill: no except clause of the pool catches it, so no clean-up of its own runs."""


@pytest.mark.parametrize("dies_after", ["relock_worktree", "move_worktree", "reset_hard"])
def test_a_take_killed_at_any_step_leaves_the_task_lock_then_a_retry_clears_it(
    repo: Path, manager: WorktreeManager, monkeypatch: pytest.MonkeyPatch, dies_after: str
) -> None:
    """Between the pool and the task's path the checkout is always locked, by the pool or by the
    task: a kill leaves nothing unlocked for prune, and the task's next attempt (`leftover_of`)
    clears it wherever it stopped, instead of refusing its own path."""
    pool = WorktreePool(manager, size=2)
    assert pool.release(finished_task(manager, repo, "one").path)
    [pooled] = pool.entries()
    owner = "gadugi run=r task=two "
    real = getattr(git, dies_after)

    def step_then_kill(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(git, dies_after, step_then_kill)
    path = manager.worktrees_root / "two"
    start = sh(repo, "rev-parse", "HEAD")
    with pytest.raises(Killed):
        pool.acquire("two", "gadugi/two", path, start_sha=start, lock_reason=owner + "pid=1")
    monkeypatch.undo()
    where = pooled if dies_after == "relock_worktree" else path
    assert lock_reason(repo, where) == owner + "pid=1"

    # The next attempt, as the WorkflowManager makes it: the pool first, then a fresh checkout.
    again = pool.acquire("two", "gadugi/two", path, start_sha=start, lock_reason=owner + "pid=2", leftover_of=owner)
    created = again or manager.create("two", "gadugi/two", path, base_sha=start, lock_reason=owner + "pid=2",
                                      leftover_of=owner)
    assert sh(created.path, "branch", "--show-current") == "gadugi/two"
    assert lock_reason(repo, path) == owner + "pid=2"
    assert [e.path for e in git.list_worktrees(repo)] == [repo, path]
    assert not pooled.exists() and pool.entries() == []


def test_a_release_killed_mid_move_leaves_the_checkout_locked(
    repo: Path, manager: WorktreeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = WorktreePool(manager, size=2)
    task = finished_task(manager, repo, "one")
    sh(repo, "worktree", "lock", "--reason", "gadugi run=r task=one pid=1", str(task.path))
    real = git.move_worktree

    def move_then_kill(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise Killed

    monkeypatch.setattr(git, "move_worktree", move_then_kill)
    with pytest.raises(Killed):
        pool.release(task.path)
    monkeypatch.undo()
    [pooled] = pool.entries()
    assert lock_reason(repo, pooled) == POOL_LOCK_REASON
    assert sh(repo, "rev-parse", "gadugi/one") == sh(pooled, "rev-parse", "HEAD")


def test_a_pooled_checkout_whose_directory_was_deleted_is_dropped_and_unregistered(
    repo: Path, manager: WorktreeManager
) -> None:
    pool = WorktreePool(manager, size=2)
    assert pool.release(finished_task(manager, repo, "s").path)
    [pooled] = pool.entries()
    subprocess.run(["rm", "-rf", str(pooled)], check=True)  # behind git's back
    head = sh(repo, "rev-parse", "HEAD")
    assert pool.acquire("n", "gadugi/n", manager.worktrees_root / "n", start_sha=head, lock_reason="r") is None
    assert pool.entries() == [] and [e.path for e in git.list_worktrees(repo)] == [repo]


def test_nothing_of_the_task_is_cleared_once_its_branch_exists(repo: Path, manager: WorktreeManager) -> None:
    """With the task's branch made an agent may have worked, detached or not: taking from the
    pool for that task again changes nothing."""
    pool = WorktreePool(manager, size=2)
    assert pool.release(finished_task(manager, repo, "one").path)
    owner = "gadugi run=r task=two "
    base = sh(repo, "rev-parse", "HEAD")
    sh(repo, "branch", "gadugi/two", base)
    kept = manager.worktrees_root / "kept"
    sh(repo, "worktree", "add", "-q", "--detach", "--lock", "--reason", owner + "pid=1", str(kept), base)
    (kept / "work.txt").write_text("uncommitted\n")
    assert pool.acquire("two", "gadugi/two", manager.worktrees_root / "two", start_sha=base,
                        lock_reason=owner + "pid=2", leftover_of=owner) is None
    assert (kept / "work.txt").read_text() == "uncommitted\n" and lock_reason(repo, kept) == owner + "pid=1"
