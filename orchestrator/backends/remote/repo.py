"""A worker's own copy of the repository: filled from bundles or a shared remote, one worktree per task.

The copy is a regular (non-bare) repository with an empty main checkout, not a bare mirror: the
WorktreeManager the WorkflowManager uses resolves its repository with `git rev-parse
--show-toplevel`, which bare repositories do not have, and the same code path as a local run is
worth more than the few kilobytes of an empty checkout. Everything here is disposable: the
orchestrator's repository is the only record, so a stale branch or worktree left by a killed
task is simply removed.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from orchestrator.errors import GitError
from orchestrator.gitops import git
from orchestrator.gitops.bundles import (
    OUTGOING,
    create_bundle,
    delete_ref,
    fetch_bundle,
    fetch_commits,
    has_commit,
    prerequisites,
    verify_bundle,
)
from orchestrator.gitops.git import run_git
from orchestrator.state.locks import file_lock

SCRATCH = "refs/gadugi/scratch"  # where a bundle's refs land for the moment of a fetch


class WorkerRepo:
    """The copy of one project's repository under a worker's local directory."""

    def __init__(self, root: Path, repo_key: str) -> None:
        self.path = root / "repos" / repo_key
        self.lock_path = root / "repos" / f"{repo_key}.lock"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the copy (created on first use) for fetches and ref changes, one task at a time.

        The second lock is the one WorkflowManagers' WorktreeManager takes around `worktree add`
        and `remove`: while git sets up a worktree its HEAD is briefly a placeholder, and a
        concurrent `bundle verify` or fetch walking all refs fails on it ("bad object")."""
        with file_lock(self.lock_path):
            self.ensure()
            with file_lock(self.path / ".git" / "gadugi-git.lock"):
                yield

    def ensure(self) -> None:
        if (self.path / ".git").is_dir():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        run_git(self.path, "init", "--quiet")

    def missing(self, shas: Sequence[str]) -> list[str]:
        return [sha for sha in dict.fromkeys(shas) if sha and not has_commit(self.path, sha)]

    def ingest(self, bundle: bytes, scratch: Path, *, url: str | None) -> None:
        """Fetch a bundle's commits, first fetching any prerequisite commits it assumes from the
        shared remote. No ref keeps them: git's own gc drops them weeks after the last task used
        them, so the copy does not grow without bound."""
        scratch.parent.mkdir(parents=True, exist_ok=True)
        scratch.write_bytes(bundle)
        try:
            needed = self.missing(prerequisites(scratch))
            if needed:
                if url is None:
                    raise GitError(f"bundle needs {len(needed)} commit(s) this worker lacks and no remote was given")
                fetch_commits(self.path, url, needed)
            verify_bundle(self.path, scratch)
            fetch_bundle(self.path, scratch, [f"+{OUTGOING}/*:{SCRATCH}/{scratch.name}/*"])
        finally:
            scratch.unlink(missing_ok=True)
            out = run_git(self.path, "for-each-ref", "--format=%(refname)", f"{SCRATCH}/{scratch.name}/", check=False)[1]
            for ref in out.split():
                delete_ref(self.path, ref)

    def fetch_from(self, url: str, shas: Sequence[str]) -> None:
        need = self.missing(shas)
        if need:
            fetch_commits(self.path, url, need)

    def reset_branch(self, branch: str, tip: str | None) -> None:
        """Drop whatever an earlier task left of `branch` here; recreate it at `tip` if given."""
        for entry in git.list_worktrees(self.path):
            if entry.branch == branch and os.path.realpath(entry.path) != os.path.realpath(self.path):
                self.remove_worktree(Path(entry.path))
        ref = f"refs/heads/{branch}"
        if tip:
            run_git(self.path, "update-ref", ref, tip)
        else:
            run_git(self.path, "update-ref", "-d", ref, check=False)

    def remove_worktree(self, path: Path) -> None:
        run_git(self.path, "worktree", "unlock", str(path), check=False)
        run_git(self.path, "worktree", "remove", "--force", "--force", str(path), check=False)
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        run_git(self.path, "worktree", "prune")

    def branch_bundle(self, branch: str, out: Path, known: Sequence[str]) -> bool:
        """Bundle the task branch's commits the orchestrator does not have; False when none."""
        if git.rev_parse(self.path, f"refs/heads/{branch}") is None:
            return False
        have = [sha for sha in dict.fromkeys(known) if sha and has_commit(self.path, sha)]
        return create_bundle(self.path, out, [f"refs/heads/{branch}"], have)
