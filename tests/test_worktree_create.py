"""WorktreeManager.create: locked from the first moment, and a parallel checkout identical to git's own."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from orchestrator.gitops import git
from orchestrator.worktrees.manager import WorktreeManager

MakeRepo = Callable[..., Path]


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_worktree_is_locked_with_our_reason_while_files_are_written(make_repo: MakeRepo, tmp_path: Path) -> None:
    # A smudge filter runs in the middle of the checkout: what it sees of the worktree list is
    # what a crash at that moment would leave behind.
    seen = tmp_path / "seen.txt"
    repo = make_repo({".gitattributes": "*.probe filter=probe\n", "a.probe": "payload\n"}).resolve()
    sh(repo, "config", "filter.probe.smudge", f"git -C {repo} worktree list --porcelain >> {seen}; cat")
    path = repo / ".worktrees" / "locked"
    WorktreeManager(repo).create("locked", "gadugi/locked", path, base_sha="HEAD", lock_reason="gadugi run=r1 task=t")
    during = seen.read_text().split("\n\n")
    entry = next(block for block in during if block.startswith(f"worktree {path}"))
    assert "locked gadugi run=r1 task=t" in entry
    assert (path / "a.probe").read_text() == "payload\n"


def test_parallel_checkout_matches_a_plain_worktree_add(make_repo: MakeRepo) -> None:
    # Past git's parallel-checkout threshold (100 files), with modes and a symlink, which parallel
    # workers write by a different path than the sequential checkout.
    files = {f"d{i % 7}/f{i}.txt": f"line {i}\n" for i in range(300)}
    files["run.sh"] = "#!/bin/sh\necho hi\n"
    repo = make_repo(files).resolve()
    os.chmod(repo / "run.sh", 0o755)
    os.symlink("d0/f0.txt", repo / "link")
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "mode and link")
    head = sh(repo, "rev-parse", "HEAD")
    ours = repo / ".worktrees" / "ours"
    WorktreeManager(repo).create("ours", "gadugi/ours", ours, base_sha=head, lock_reason="r")
    plain = repo.parent / "plain"
    sh(repo, "worktree", "add", "-q", "-b", "plain", str(plain), head)
    assert not git.is_dirty(ours)
    assert sh(ours, "ls-files", "-s") == sh(plain, "ls-files", "-s")
    assert sorted(p.relative_to(ours).as_posix() for p in ours.rglob("*") if ".git" not in p.parts) == sorted(
        p.relative_to(plain).as_posix() for p in plain.rglob("*") if ".git" not in p.parts)
    assert os.access(ours / "run.sh", os.X_OK)
    assert os.readlink(ours / "link") == "d0/f0.txt"
