from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from orchestrator.errors import WorktreeError
from orchestrator.gitops import git
from orchestrator.worktrees.manager import WorktreeManager, is_valid_branch_name, slugify

MakeRepo = Callable[..., Path]
PROJECT = Path(__file__).resolve().parent.parent


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit_on(repo: Path, branch: str, start: str, files: dict[str, str]) -> str:
    """Commit `files` on a new branch from `start` using a scratch worktree, leaving main alone."""
    wt = repo.parent / f"scratch-{branch.replace('/', '-')}"
    sh(repo, "worktree", "add", "-q", "-b", branch, str(wt), start)
    for name, content in files.items():
        (wt / name).write_text(content)
    sh(wt, "add", "-A")
    sh(wt, "commit", "-q", "-m", f"work on {branch}")
    sha = sh(wt, "rev-parse", "HEAD")
    sh(repo, "worktree", "remove", str(wt))
    return sha


def refs(repo: Path) -> dict[str, str]:
    out = sh(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ") for line in out.splitlines())


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    return make_repo({"README.md": "# demo\n", "src/app.py": "print('hi')\n"}).resolve()


@pytest.fixture
def manager(repo: Path) -> WorktreeManager:
    return WorktreeManager(repo)


@pytest.mark.parametrize(
    ("task_id", "slug"),
    [
        ("Fix the login bug", "fix-the-login-bug"),
        ("café ünïcode", "cafe-unicode"),
        ("日本語", "task"),
        ("it's \"quoted\"", "it-s-quoted"),
        ("../../etc/passwd", "etc-passwd"),
        ("a..b", "a.b"),
        ("; $(rm -rf ~)", "rm-rf"),
        ("x.lock", "x"),
        ("x.lock.lock", "x"),
        (".hidden-", "hidden"),
        ("--opt", "opt"),
        ("trailing.", "trailing"),
        ("", "task"),
        ("@{-1}", "1"),
    ],
)
def test_slugify(task_id: str, slug: str) -> None:
    assert slugify(task_id) == slug
    assert git.check_ref_format_branch("gadugi/" + slug)


def test_slug_of_very_long_id_is_bounded() -> None:
    slug = slugify("word " * 100)
    assert len(slug) <= 50 and is_valid_branch_name("gadugi/" + slug)
    assert not slug.endswith("-")


def test_plan_names_awkward_ids(repo: Path, manager: WorktreeManager) -> None:
    ids = ["spaces in id", "ünï", "it's", "..", "; $(rm -rf ~)", "x.lock", "y" * 300, "Spaces In Id"]
    plan = manager.plan_names(ids)
    branches = [b for b, _ in plan.values()]
    paths = [p for _, p in plan.values()]
    assert len(set(branches)) == len(ids) and len(set(paths)) == len(ids)
    assert plan["spaces in id"] == ("gadugi/spaces-in-id", repo / ".worktrees" / "spaces-in-id")
    assert plan["Spaces In Id"][0] == "gadugi/spaces-in-id-2"
    for branch, path in plan.values():
        assert git.check_ref_format_branch(branch), branch
        assert path.parent == repo / ".worktrees"
        assert len(path.name) <= 50


def test_plan_names_avoids_existing_branch_and_dir(repo: Path, manager: WorktreeManager) -> None:
    sh(repo, "branch", "gadugi/taken")
    (repo / ".worktrees" / "busy").mkdir(parents=True)
    sh(repo, "branch", "gadugi/deep/nested")  # makes `gadugi/deep` impossible
    plan = manager.plan_names(["taken", "busy", "deep", "free"])
    assert plan["taken"][0] == "gadugi/taken-2"
    assert plan["busy"] == ("gadugi/busy-2", repo / ".worktrees" / "busy-2")
    assert plan["deep"][0] == "gadugi/deep-2"
    assert plan["free"][0] == "gadugi/free"


def test_plan_names_prefix_blocked_by_branch(repo: Path) -> None:
    sh(repo, "branch", "gadugi")
    with pytest.raises(Exception, match="branch 'gadugi' exists"):
        WorktreeManager(repo).plan_names(["a"])


def test_plan_names_1000_ids_is_cheap(repo: Path, manager: WorktreeManager, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real = git.run_cmd

    def counting(argv: Any, **kwargs: Any) -> tuple[int, str, str]:
        calls.append(list(argv))
        return real(argv, **kwargs)

    monkeypatch.setattr(git, "run_cmd", counting)
    ids = [f"Task {i % 500}" for i in range(500)] + [f"task-{i % 500}!" for i in range(500)]
    ids = list(dict.fromkeys(ids))
    ids += [f"extra {i}" for i in range(1000 - len(ids))]
    plan = manager.plan_names(ids)
    assert len(plan) == 1000 and len({b for b, _ in plan.values()}) == 1000
    assert sum("for-each-ref" in argv for argv in calls) == 1
    assert len(calls) <= 4, calls


def test_create_at_base(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    branch, path = manager.plan_names(["t1"])["t1"]
    created = manager.create("t1", branch, path, base_sha=base, lock_reason="gadugi run=r pid=1")
    assert created.start_sha == base and created.merged_from == ()
    assert (path / "src" / "app.py").read_text() == "print('hi')\n"
    assert sh(path, "rev-parse", "HEAD") == base
    assert sh(path, "symbolic-ref", "--short", "HEAD") == branch
    assert not git.is_dirty(path)
    entry = [e for e in git.list_worktrees(repo) if e.path == path][0]
    assert entry.locked and entry.lock_reason == "gadugi run=r pid=1"
    assert "locked gadugi run=r pid=1" in sh(repo, "worktree", "list", "--porcelain")
    manager.finish(path)
    assert not [e for e in git.list_worktrees(repo) if e.path == path][0].locked


def test_create_stacked_on_predecessor(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    pred = commit_on(repo, "gadugi/first", base, {"first.txt": "1\n"})
    created = manager.create(
        "second", "gadugi/second", repo / ".worktrees" / "second",
        base_sha=base, predecessors=[("gadugi/first", pred)], lock_reason="r",
    )
    assert created.start_sha == pred and created.merged_from == ("gadugi/first",)
    assert (created.path / "first.txt").read_text() == "1\n"


def test_create_on_two_predecessors_makes_merge_commit(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    a = commit_on(repo, "gadugi/a", base, {"a.txt": "a\n"})
    b = commit_on(repo, "gadugi/b", base, {"b.txt": "b\n"})
    noop = base  # a predecessor that made no commits is just the base
    manager.ensure_ignored()
    before = refs(repo)
    created = manager.create(
        "x", "gadugi/x", repo / ".worktrees" / "x", base_sha=base,
        predecessors=[("gadugi/a", a), ("gadugi/b", b), ("gadugi/noop", noop), ("gadugi/a", a)],
        lock_reason="r",
    )
    start = created.start_sha
    assert sh(repo, "rev-list", "--parents", "-1", start).split() == [start, a, b]
    assert sh(repo, "log", "-1", "--format=%s", start) == "Merge predecessors gadugi/a, gadugi/b for task x"
    assert created.merged_from == ("gadugi/a", "gadugi/b")
    assert (created.path / "a.txt").exists() and (created.path / "b.txt").exists()
    after = refs(repo)
    assert after.pop("refs/heads/gadugi/x") == start
    assert after == before
    assert sh(repo, "status", "--porcelain") == ""


def test_create_on_three_predecessors_one_merge_commit(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    heads = [commit_on(repo, f"gadugi/p{i}", base, {f"p{i}.txt": f"{i}\n"}) for i in range(3)]
    created = manager.create(
        "y", "gadugi/y", repo / ".worktrees" / "y", base_sha=base,
        predecessors=[(f"gadugi/p{i}", h) for i, h in enumerate(heads)], lock_reason="r",
    )
    assert sh(repo, "rev-list", "--parents", "-1", created.start_sha).split()[1:] == heads
    assert all((created.path / f"p{i}.txt").exists() for i in range(3))


def test_conflicting_predecessors_leave_nothing(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    a = commit_on(repo, "gadugi/left", base, {"README.md": "left\n"})
    b = commit_on(repo, "gadugi/right", base, {"README.md": "right\n"})
    before = refs(repo)
    path = repo / ".worktrees" / "z"
    with pytest.raises(WorktreeError) as info:
        manager.create("z", "gadugi/z", path, base_sha=base,
                       predecessors=[("gadugi/left", a), ("gadugi/right", b)], lock_reason="r")
    message = str(info.value)
    assert "gadugi/left" in message and "gadugi/right" in message and "README.md" in message
    assert refs(repo) == before
    assert not path.exists()
    assert [e.path for e in git.list_worktrees(repo)] == [repo]


def test_create_refuses_existing_branch_or_path(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    sh(repo, "branch", "gadugi/mine")
    mine = refs(repo)["refs/heads/gadugi/mine"]
    with pytest.raises(WorktreeError, match="already exists"):
        manager.create("m", "gadugi/mine", repo / ".worktrees" / "m", base_sha=base, lock_reason="r")
    assert refs(repo)["refs/heads/gadugi/mine"] == mine
    occupied = repo / ".worktrees" / "occupied"
    occupied.mkdir(parents=True)
    (occupied / "keep.txt").write_text("user data")
    with pytest.raises(WorktreeError, match="already exists"):
        manager.create("o", "gadugi/o", occupied, base_sha=base, lock_reason="r")
    assert (occupied / "keep.txt").read_text() == "user data"
    assert not git.branch_exists(repo, "gadugi/o")


def test_failed_checkout_rolls_back(repo: Path, manager: WorktreeManager, monkeypatch: pytest.MonkeyPatch) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    before = refs(repo)

    def broken(path: Path) -> None:
        raise git.GitError("disk full")

    monkeypatch.setattr(git, "checkout_worktree", broken)
    path = repo / ".worktrees" / "rb"
    with pytest.raises(WorktreeError, match="disk full"):
        manager.create("rb", "gadugi/rb", path, base_sha=base, lock_reason="r")
    assert refs(repo) == before
    assert not path.exists()
    assert [e.path for e in git.list_worktrees(repo)] == [repo]


def test_concurrent_create_from_threads(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    plan = manager.plan_names([f"thread {i}" for i in range(8)])

    def make(item: tuple[str, tuple[str, Path]]) -> Path:
        task, (branch, path) = item
        return manager.create(task, branch, path, base_sha=base, lock_reason=f"task {task}").path

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(make, plan.items()))
    entries = [e for e in git.list_worktrees(repo) if e.path != repo]
    assert len(entries) == 8 and all(e.locked for e in entries)
    assert all((p / "README.md").exists() for p in paths)


def test_concurrent_create_from_processes(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from orchestrator.worktrees.manager import WorktreeManager
        repo, i, base = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
        m = WorktreeManager(repo)
        m.create(f"p{i}", f"gadugi/proc-{i}", repo / ".worktrees" / f"proc-{i}", base_sha=base,
                 lock_reason=f"proc {i}")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(repo), str(i), base], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    porcelain = sh(repo, "worktree", "list", "--porcelain")
    assert porcelain.count("\nlocked proc ") == 8
    assert len(git.list_branches(repo)) == 9


def test_remove_refuses_dirty_and_keeps_branch(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    created = manager.create("r", "gadugi/r", repo / ".worktrees" / "r", base_sha=base, lock_reason="running")
    (created.path / "work.txt").write_text("agent output\n")
    assert manager.remove(created.path) is False
    assert (created.path / "work.txt").exists()
    assert [e for e in git.list_worktrees(repo) if e.path == created.path][0].locked
    sha = git.commit_all(created.path, "agent work")
    manager.finish(created.path)
    assert manager.remove(created.path) is True
    assert not created.path.exists()
    assert [e.path for e in git.list_worktrees(repo)] == [repo]
    assert not (repo / ".git" / "worktrees").exists() or not any((repo / ".git" / "worktrees").iterdir())
    assert refs(repo)["refs/heads/gadugi/r"] == sha


def test_remove_force_discards_and_handles_missing(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    a = manager.create("a", "gadugi/a", repo / ".worktrees" / "a", base_sha=base, lock_reason="r").path
    (a / "junk").write_text("x")
    assert manager.remove(a, force=True) is True
    assert not a.exists()
    b = manager.create("b", "gadugi/b", repo / ".worktrees" / "b", base_sha=base, lock_reason="r").path
    subprocess.run(["rm", "-rf", str(b)], check=True)
    assert manager.remove(b) is True
    assert [e.path for e in git.list_worktrees(repo)] == [repo]
    with pytest.raises(WorktreeError, match="not a registered worktree"):
        manager.remove(repo / ".worktrees" / "never")
    with pytest.raises(WorktreeError, match="main checkout"):
        manager.remove(repo)
    assert git.branch_exists(repo, "gadugi/a") and git.branch_exists(repo, "gadugi/b")


def test_ensure_ignored_keeps_status_clean(repo: Path, manager: WorktreeManager) -> None:
    manager.ensure_ignored()
    manager.ensure_ignored()
    exclude = (repo / ".git" / "info" / "exclude").read_text()
    assert exclude.count("/.worktrees/") == 1
    base = sh(repo, "rev-parse", "HEAD")
    created = manager.create("ig", "gadugi/ig", repo / ".worktrees" / "ig", base_sha=base, lock_reason="r")
    runtime = repo / ".gadugi"
    (runtime / "monitoring").mkdir(parents=True)
    (runtime / "monitoring" / "t.json").write_text("{}")
    (runtime / "runs" / "r1").mkdir(parents=True)
    (runtime / "runs" / "r1" / "state.json").write_text("{}")
    (runtime / "registry.lock").write_text("")
    (runtime / "crash-20260101.log").write_text("boom")
    assert sh(repo, "status", "--porcelain", "--untracked-files=all") == ""
    # The exclude file is shared, so the task worktree does not see them either.
    (created.path / ".gadugi" / "monitoring").mkdir(parents=True)
    (created.path / ".gadugi" / "monitoring" / "x.json").write_text("{}")
    assert sh(created.path, "status", "--porcelain") == ""
    # The user's config.toml in .gadugi stays visible: everything else there is runtime state.
    (runtime / "config.toml").write_text("max_parallel = 2\n")
    assert sh(repo, "status", "--porcelain") == "?? .gadugi/"


def test_probe(repo: Path, manager: WorktreeManager) -> None:
    assert manager.probe() is None
    assert [e.path for e in git.list_worktrees(repo)] == [repo]
    assert list((repo / ".worktrees").iterdir()) == []
    assert git.list_branches(repo) == {"main"}


def test_probe_reports_worktrees_file(repo: Path, manager: WorktreeManager) -> None:
    (repo / ".worktrees").write_text("not a dir")
    reason = manager.probe()
    assert reason is not None and "not a directory" in reason and "\n" not in reason


def test_probe_reports_empty_repo(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    sh(tmp_path, "init", "-q", str(empty))
    assert WorktreeManager(empty).probe() == "the repository has no commits yet"


def test_orphans(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    gone = manager.create("g", "gadugi/g", repo / ".worktrees" / "g", base_sha=base, lock_reason="r").path
    manager.create("ok", "gadugi/ok", repo / ".worktrees" / "ok", base_sha=base, lock_reason="r")
    manager.finish(gone)
    subprocess.run(["rm", "-rf", str(gone)], check=True)
    (repo / ".worktrees" / "stray").mkdir()
    found = {(o.path.name, o.kind, o.branch) for o in manager.orphans()}
    assert found == {("g", "missing", "gadugi/g"), ("stray", "unregistered", None)}


def test_inherited_git_env_does_not_leak(repo: Path, make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    decoy = make_repo(name="decoy")
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(decoy / "idx"))
    manager = WorktreeManager(repo)
    base = git.rev_parse(repo, "HEAD")
    assert base is not None
    created = manager.create("e", "gadugi/e", repo / ".worktrees" / "e", base_sha=base, lock_reason="r")
    assert (created.path / "src" / "app.py").exists()
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert git.branch_exists(repo, "gadugi/e") and not git.branch_exists(decoy, "gadugi/e")
    assert not (decoy / "idx").exists()


def test_create_refuses_registered_missing_path(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    other = manager.create("o", "gadugi/other", repo / ".worktrees" / "o", base_sha=base, lock_reason="other run").path
    subprocess.run(["rm", "-rf", str(other)], check=True)
    with pytest.raises(WorktreeError, match="already exists"):
        manager.create("n", "gadugi/new", other, base_sha=base, lock_reason="r")
    assert not git.branch_exists(repo, "gadugi/new")
    entry = [e for e in git.list_worktrees(repo) if e.path == other][0]
    assert entry.locked and entry.lock_reason == "other run"


def test_failure_after_registration_rolls_back(repo: Path, manager: WorktreeManager, monkeypatch: pytest.MonkeyPatch) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    before = refs(repo)

    real_add = git.add_worktree

    def broken(*args: Any, **kwargs: Any) -> None:
        real_add(*args, **kwargs)  # registered (and locked), then the command still fails
        raise git.GitError("add failed late")

    monkeypatch.setattr(git, "add_worktree", broken)
    path = repo / ".worktrees" / "lf"
    with pytest.raises(WorktreeError, match="add failed late"):
        manager.create("lf", "gadugi/lf", path, base_sha=base, lock_reason="r")
    assert refs(repo) == before and not path.exists()
    assert [e.path for e in git.list_worktrees(repo)] == [repo]


def test_delete_branch_if_at_keeps_moved_branch(repo: Path) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    moved = commit_on(repo, "gadugi/moved", base, {"w.txt": "work\n"})
    assert git.delete_branch_if_at(repo, "gadugi/moved", base) is False
    assert refs(repo)["refs/heads/gadugi/moved"] == moved
    assert git.delete_branch_if_at(repo, "gadugi/moved", moved) is True
    assert not git.branch_exists(repo, "gadugi/moved")


def test_a_half_recycled_worktree_of_the_same_task_is_cleared(repo: Path, manager: WorktreeManager) -> None:
    """Killed between moving a pooled checkout into place and switching it to the task's branch:
    a detached worktree at the task's path, locked by this task of this run."""
    path = repo / ".worktrees" / "t"
    base = sh(repo, "rev-parse", "HEAD")
    sh(repo, "worktree", "add", "--detach", str(path), base)
    sh(repo, "worktree", "lock", "--reason", "gadugi run=r1 task=t pid=1", str(path))
    with pytest.raises(WorktreeError, match="already exists"):  # not ours (another run): refused
        manager.create("t", "gadugi/t", path, base_sha=base, lock_reason="x", leftover_of="gadugi run=r2 task=t ")
    created = manager.create("t", "gadugi/t", path, base_sha=base, lock_reason="gadugi run=r1 task=t pid=2",
                             leftover_of="gadugi run=r1 task=t ")
    assert created.path == path and sh(path, "branch", "--show-current") == "gadugi/t"


def test_a_worktree_on_a_branch_is_never_cleared_as_a_leftover(repo: Path, manager: WorktreeManager) -> None:
    path = repo / ".worktrees" / "t"
    base = sh(repo, "rev-parse", "HEAD")
    sh(repo, "worktree", "add", "-b", "mine", str(path), base)
    sh(repo, "worktree", "lock", "--reason", "gadugi run=r1 task=t pid=1", str(path))
    with pytest.raises(WorktreeError, match="already exists"):
        manager.create("t", "gadugi/t", path, base_sha=base, lock_reason="x", leftover_of="gadugi run=r1 task=t ")
    assert sh(path, "branch", "--show-current") == "mine"


def test_reattach_removes_an_index_lock_a_killed_attempt_left(repo: Path, manager: WorktreeManager) -> None:
    path = repo / ".worktrees" / "t"
    base = sh(repo, "rev-parse", "HEAD")
    manager.create("t", "gadugi/t", path, base_sha=base, lock_reason="gadugi run=r task=t pid=1")
    manager.finish(path)
    git_dir = Path(sh(path, "rev-parse", "--absolute-git-dir"))
    (git_dir / "index.lock").write_text("")
    manager.reattach("t", "gadugi/t", path, lock_reason="gadugi run=r task=t pid=2")
    (path / "new.txt").write_text("x\n")
    assert git.commit_all(path, "after the kill") is not None


def test_reattach_takes_back_the_branch_a_killed_pool_release_let_go(repo: Path, manager: WorktreeManager) -> None:
    path = repo / ".worktrees" / "t"
    base = sh(repo, "rev-parse", "HEAD")
    manager.create("t", "gadugi/t", path, base_sha=base, lock_reason="gadugi run=r task=t pid=1")
    sh(path, "switch", "--quiet", "--detach")  # where a kill inside WorktreePool.release leaves it
    manager.reattach("t", "gadugi/t", path, lock_reason="gadugi run=r task=t pid=2")
    assert sh(path, "branch", "--show-current") == "gadugi/t"
    (path / "dirty.txt").write_text("x")
    sh(path, "switch", "--quiet", "--detach")
    with pytest.raises(WorktreeError, match="detached HEAD"):  # with uncommitted work: never touched
        manager.reattach("t", "gadugi/t", path, lock_reason="gadugi run=r task=t pid=3")


def test_create_removes_the_ref_lock_a_killed_attempt_of_the_task_left(repo: Path, manager: WorktreeManager) -> None:
    base = sh(repo, "rev-parse", "HEAD")
    lock = git.git_common_dir(repo) / "refs" / "heads" / "gadugi" / "t.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(base + "\n")
    path = repo / ".worktrees" / "t"
    created = manager.create("t", "gadugi/t", path, base_sha=base, lock_reason="gadugi run=r task=t pid=2",
                             leftover_of="gadugi run=r task=t ")
    assert created.branch == "gadugi/t" and not lock.exists()
