"""`--sparse`: a task's worktree holds only the `files:` scopes its prompt declares.

What the agent sees: every file of the repository's top level (README, build files, `.gitignore`,
`.gitattributes`: what tools and the agent look for first), and everything under its scopes. Other
files are absent from disk but still tracked: `git ls-files` lists them (marked skip-worktree),
`git status` does not report them deleted, and committing with `git add -A` records no deletion
of them (tests/test_worktree_sparse.py). A file the agent writes outside its scopes is committed
like any other (the WorkflowManager stages with `--sparse`), so scopes stay advisory, as they are
for conflict detection.

Only directory scopes: cone mode (git's fast path, whole directories plus the files of the
directories above them). Any file or glob scope: non-cone patterns, anchored at the root with
gitignore syntax, which match a glob as the planner's own scope matching does (`*` stops at `/`,
`**/` crosses directories). A prompt without `files:`, or with a scope covering the whole
repository, gets a full checkout. Sparse worktrees are never pooled (pool.py refuses per-worktree
settings), and a sparse task never takes a pooled full checkout, so no sparse setting ever
reaches another task.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.gitops import git
from orchestrator.plan.scopes import Scope, normalize_path, parse_scope

# Non-cone patterns keeping the top level's files and none of its directories.
_TOP_LEVEL_FILES = ("/*", "!/*/")


@dataclass(frozen=True)
class SparseCheckout:
    patterns: tuple[str, ...]
    cone: bool


def sparse_checkout_for(repo: Path, commit: str, declared: Sequence[str]) -> SparseCheckout | None:
    """The sparse checkout of `declared` scopes at `commit`; None for a full checkout."""
    names = [normal[0] for raw in declared if (normal := normalize_path(raw)) is not None]
    tracked_dirs = git.directories_among(repo, commit, [n for n in names if n])
    scopes = [s for raw in declared if (s := parse_scope(raw, tracked_dirs)) is not None]
    if not scopes or any(s.kind == "dir" and not s.path for s in scopes):
        return None
    if all(s.kind == "dir" for s in scopes):
        return SparseCheckout(patterns=tuple(sorted({s.path for s in scopes})), cone=True)
    return SparseCheckout(patterns=_TOP_LEVEL_FILES + tuple(_pattern(s) for s in scopes), cone=False)


def _pattern(scope: Scope) -> str:
    return f"/{scope.path}/" if scope.kind == "dir" else f"/{scope.path}"
