"""--sparse: a worktree of the declared `files:` scopes plus the top level, whose commits record
only what the agent changed (never deletions of the files left out)."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from orchestrator.gitops import git
from orchestrator.worktrees.manager import WorktreeManager
from orchestrator.worktrees.pool import WorktreePool
from orchestrator.worktrees.sparse import SparseCheckout, sparse_checkout_for

from cli_in_process import run_in_process

MakeRepo = Callable[..., Path]
FILES = {
    "README.md": "# demo\n", ".gitignore": "build/\n", "pyproject.toml": "[project]\n",
    "src/app.py": "A = 1\n", "src/deep/util.py": "U = 1\n", "src/deep/data.json": "{}\n",
    "lib/core.py": "C = 1\n", "docs/guide.md": "guide\n", "docs/api.md": "api\n", "tests/test_app.py": "T = 1\n",
}


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def on_disk(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() and ".git" not in p.parts}


@pytest.fixture
def repo(make_repo: MakeRepo) -> Path:
    return make_repo(FILES).resolve()


def create(repo: Path, name: str, scopes: list[str]) -> Path:
    path = repo / ".worktrees" / name
    WorktreeManager(repo).create(name, f"gadugi/{name}", path, base_sha="HEAD", lock_reason="r", sparse_scopes=scopes)
    return path


def test_directory_scopes_give_a_cone_of_them_plus_the_top_level(repo: Path) -> None:
    # `lib` without a slash is a tracked directory, so it counts as one.
    assert sparse_checkout_for(repo, "HEAD", ["src/", "lib"]) == SparseCheckout(patterns=("lib", "src"), cone=True)
    path = create(repo, "cone", ["src/", "lib"])
    assert on_disk(path) == {"README.md", ".gitignore", "pyproject.toml", "src/app.py", "src/deep/util.py",
                             "src/deep/data.json", "lib/core.py"}
    assert not git.is_dirty(path)
    assert set(sh(path, "ls-files").splitlines()) == set(FILES)  # the rest is tracked, only absent


def test_file_and_glob_scopes_use_non_cone_patterns(repo: Path) -> None:
    path = create(repo, "globs", ["docs/guide.md", "src/**/*.py"])
    assert on_disk(path) == {"README.md", ".gitignore", "pyproject.toml", "docs/guide.md", "src/app.py",
                             "src/deep/util.py"}
    assert not git.is_dirty(path)


@pytest.mark.parametrize("scopes", [["./"], ["**"], ["src/", "**/*"]])
def test_a_scope_covering_everything_gives_a_full_checkout(repo: Path, scopes: list[str]) -> None:
    path = create(repo, "full", scopes)
    assert on_disk(path) == set(FILES) and not git.is_sparse(path)


def test_a_commit_records_the_agents_changes_and_no_deletion_of_absent_files(repo: Path) -> None:
    path = create(repo, "commit", ["src/"])
    (path / "src" / "app.py").write_text("A = 2\n")
    (path / "src" / "new.py").write_text("N = 1\n")
    (path / "docs").mkdir()
    (path / "docs" / "outside.md").write_text("written outside the scopes\n")
    sha = git.commit_all(path, "agent work")
    assert sha is not None
    changed = sh(path, "diff", "--name-status", "HEAD~1", "HEAD").splitlines()
    assert sorted(changed) == ["A\tdocs/outside.md", "A\tsrc/new.py", "M\tsrc/app.py"]
    assert set(sh(path, "ls-tree", "-r", "--name-only", "HEAD").splitlines()) == set(FILES) | {
        "src/new.py", "docs/outside.md"}


def test_a_sparse_worktree_is_not_pooled(repo: Path) -> None:
    path = create(repo, "pooled", ["src/"])
    manager = WorktreeManager(repo)
    manager.finish(path)
    assert not WorktreePool(manager, size=2).release(path)
    assert path.is_dir() and WorktreePool(manager, size=2).entries() == []


def test_a_run_with_sparse_gives_declared_scopes_only_and_never_a_pooled_full_checkout(
        repo: Path, tmp_path: Path) -> None:
    # The agent commits the list of files it saw. `full` runs first (k=1) and its worktree is
    # pooled; `scoped` comes after it and must still get its own sparse checkout.
    agent = tmp_path / "agent.sh"
    agent.write_text('#!/bin/sh\nfind . -path ./.git -prune -o -type f -print | sort > "seen-$1.txt"\n')
    agent.chmod(0o755)
    (repo / "prompts").mkdir()
    (repo / "prompts" / "full.md").write_text("---\nid: full\n---\n# Full\n")
    (repo / "prompts" / "scoped.md").write_text("---\nid: scoped\nfiles: [src/]\ndepends_on: [full]\n---\n# Scoped\n")
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "prompts")
    proc = run_in_process(
        repo, ["run", "full", "scoped", "--sparse", "--max-parallel", "1", "--launch-stagger", "0",
               "--agent-cmd", f"{agent} {{task_id}}", "--json"], {})
    assert proc.returncode == 0, proc.stderr
    tasks = {t["task_id"]: t for t in json.loads(proc.stdout)["tasks"]}
    seen = {tid: sh(repo, "show", f"{t['branch']}:seen-{tid}.txt").splitlines() for tid, t in tasks.items()}
    assert "./docs/guide.md" in seen["full"]
    assert "./docs/guide.md" not in seen["scoped"] and "./src/deep/util.py" in seen["scoped"]
    assert "./README.md" in seen["scoped"]
