"""Which result branches merge cleanly, in what order, and the integration branch built from them.

Everything is done with `git merge-tree --write-tree` and `git commit-tree`, i.e. on objects only:
no ref, index or working tree is touched until `integrate` creates exactly one new branch (with
`update-ref <ref> <new> ""`, which refuses when the ref already exists, so it never moves one).
Virtual merge commits left behind are unreachable objects that `git gc` drops.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from orchestrator.cmd import run_cmd, which
from orchestrator.errors import GitError, InputError, StateError
from orchestrator.gitops import git
from orchestrator.models import SCHEMA_VERSION
from orchestrator.state.atomic import read_json

_VIRTUAL_MESSAGE = "gadugi merge-check (virtual merge)"
# Exact maximum-clean-set search is exponential; past this many conflicting branches the greedy
# orders alone are used (a run with 16+ mutually conflicting branches needs a human anyway).
_EXACT_LIMIT = 16


class BranchCheck(BaseModel):
    """One completed task's branch against the base."""

    task_id: str
    branch: str
    sha: str | None = Field(description="The branch tip when checked; null when the branch is gone.")
    status: Literal["clean", "conflict", "missing", "empty"] = Field(
        description="empty: no commits beyond the base; conflict: does not merge into the base."
    )
    conflicted_files: list[str] = Field(default_factory=list)


class PairConflict(BaseModel):
    """Two branches that each merge into the base but not with each other."""

    a: str
    b: str
    branch_a: str
    branch_b: str
    files: list[str]


class Rejected(BaseModel):
    """A branch left out of the merge order, and why."""

    task_id: str
    branch: str
    reason: str
    conflicts_with: list[str] = Field(default_factory=list, description="Task ids already in the order.")
    files: list[str] = Field(default_factory=list)


class MergeReport(BaseModel):
    """`orchestrator merge-check --json`: the base check, the pairwise check and a merge order."""

    schema_version: int = SCHEMA_VERSION
    run_id: str | None = None
    base_sha: str
    branches: list[BranchCheck]
    conflicts: list[PairConflict]
    merge_order: list[str] = Field(description="Task ids; merging them in this order is clean.")
    rejected: list[Rejected]
    tree: str | None = Field(default=None, description="Tree of the cumulative virtual merge.")

    @property
    def clean(self) -> bool:
        return not self.rejected and not self.conflicts


class IntegrationResult(BaseModel):
    branch: str
    head: str
    merged: list[str] = Field(description="Task ids, in merge order.")
    rejected: list[Rejected]


class PullRequestResult(BaseModel):
    task_id: str
    branch: str
    url: str | None = None
    error: str | None = None


# -- reading a run ---------------------------------------------------------------------------------


def completed_branches(run_dir: Path) -> tuple[str, str, list[tuple[str, str]]]:
    """(run_id, base_sha, [(task_id, branch)]) of the completed tasks of a run, in plan order;
    InputError until the run has finished, since only its report says which branches completed."""
    if not (run_dir / "report.json").is_file():
        raise InputError(f"run {run_dir.name} has not finished (no report.json yet): wait for it, or name a finished run")
    data = read_json(run_dir / "report.json")
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise StateError(f"{run_dir / 'report.json'} is not a run report")
    branches = [
        (str(t["task_id"]), str(t["branch"]))
        for t in data["tasks"]
        if isinstance(t, dict) and t.get("status") == "completed" and t.get("branch")
    ]
    return str(data.get("run_id") or run_dir.name), str(data.get("base_sha") or ""), branches


def task_titles(run_dir: Path) -> dict[str, str]:
    data = read_json(run_dir / "report.json") or {}
    return {str(t.get("task_id")): str(t.get("title") or "") for t in data.get("tasks", []) if isinstance(t, dict)}


# -- the check ------------------------------------------------------------------------------------


def merge_check(
    repo: Path, base_sha: str, branches: list[tuple[str, str]], *, run_id: str | None = None
) -> MergeReport:
    """Check every branch against `base_sha` and against each other, and find a merge order that
    takes the largest set of branches merging cleanly together (cumulative virtual merges)."""
    base = git.rev_parse(repo, base_sha)
    if base is None:
        raise InputError(f"base {base_sha!r} names no commit in {repo}")
    checks: list[BranchCheck] = []
    for task_id, branch in branches:
        sha = git.rev_parse(repo, f"refs/heads/{branch}")
        if sha is None:
            checks.append(BranchCheck(task_id=task_id, branch=branch, sha=None, status="missing"))
        elif git.is_ancestor(repo, sha, base):
            checks.append(BranchCheck(task_id=task_id, branch=branch, sha=sha, status="empty"))
        else:
            result = git.merge_tree(repo, base, sha)
            checks.append(
                BranchCheck(
                    task_id=task_id,
                    branch=branch,
                    sha=sha,
                    status="clean" if result.clean else "conflict",
                    conflicted_files=list(result.conflicted_files),
                )
            )
    candidates = [c for c in checks if c.status == "clean"]
    conflicts = _pairwise(repo, base, candidates)
    order, rejected, tree = _best_order(repo, base, candidates, conflicts)
    for c in checks:
        if c.status == "conflict":
            rejected.append(Rejected(task_id=c.task_id, branch=c.branch, reason="conflicts with the base",
                                     files=c.conflicted_files))
        elif c.status == "missing":
            rejected.append(Rejected(task_id=c.task_id, branch=c.branch, reason="branch no longer exists"))
    return MergeReport(run_id=run_id, base_sha=base, branches=checks, conflicts=conflicts,
                       merge_order=[c.task_id for c in order], rejected=rejected, tree=tree)


def _pairwise(repo: Path, base: str, candidates: list[BranchCheck]) -> list[PairConflict]:
    # Two branches that change disjoint paths (no path equal to, or a directory of, the other's)
    # always merge; only pairs that overlap pay for a merge-tree. With independent tasks this turns
    # N*(N-1)/2 merges into N diffs.
    touched = {c.task_id: _touched(repo, base, c.sha) for c in candidates if c.sha is not None}
    conflicts = []
    for x, y in itertools.combinations(candidates, 2):
        assert x.sha is not None and y.sha is not None
        if not _may_conflict(touched[x.task_id], touched[y.task_id]):
            continue
        result = git.merge_tree(repo, x.sha, y.sha)
        if not result.clean:
            conflicts.append(PairConflict(a=x.task_id, b=y.task_id, branch_a=x.branch, branch_b=y.branch,
                                          files=list(result.conflicted_files)))
    return conflicts


def _touched(repo: Path, base: str, sha: str) -> tuple[set[str], set[str]]:
    """Files changed from the base, and the directories above them (for file/directory clashes)."""
    files = git.changed_files(repo, base, sha)
    dirs = {"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)}
    return files, dirs


def _may_conflict(x: tuple[set[str], set[str]], y: tuple[set[str], set[str]]) -> bool:
    return bool(x[0] & y[0] or x[0] & y[1] or y[0] & x[1])


def _best_order(
    repo: Path, base: str, candidates: list[BranchCheck], conflicts: list[PairConflict]
) -> tuple[list[BranchCheck], list[Rejected], str | None]:
    """Try a few sensible orders and keep the one whose cumulative merge takes the most branches.

    Pairwise conflicts say which branches cannot go together; the cumulative merge is the proof
    (three branches can conflict only together). Orders tried: an exact largest conflict-free set
    first (small graphs), fewest conflicts first, and the plan order.
    """
    degree = {c.task_id: 0 for c in candidates}
    for pc in conflicts:
        degree[pc.a] += 1
        degree[pc.b] += 1
    by_degree = sorted(candidates, key=lambda c: degree[c.task_id])  # stable: plan order breaks ties
    orders = [by_degree, candidates]
    exact = _largest_independent_set([c.task_id for c in candidates if degree[c.task_id]], conflicts)
    if exact is not None:
        orders.insert(0, sorted(candidates, key=lambda c: (c.task_id not in exact and degree[c.task_id] > 0,
                                                           degree[c.task_id])))
    best: tuple[list[BranchCheck], list[Rejected], str | None] | None = None
    tried: set[tuple[str, ...]] = set()
    for order in orders:
        key = tuple(c.task_id for c in order)
        if key in tried:
            continue
        tried.add(key)
        outcome = _cumulative(repo, base, order, conflicts)
        if best is None or len(outcome[0]) > len(best[0]):
            best = outcome
    return best if best is not None else ([], [], None)


def _largest_independent_set(nodes: list[str], conflicts: list[PairConflict]) -> set[str] | None:
    if len(nodes) > _EXACT_LIMIT:
        return None
    edges = {frozenset((pc.a, pc.b)) for pc in conflicts}
    for size in range(len(nodes), 0, -1):
        for subset in itertools.combinations(nodes, size):
            if not any(frozenset(pair) in edges for pair in itertools.combinations(subset, 2)):
                return set(subset)
    return set()


def _cumulative(
    repo: Path, base: str, order: list[BranchCheck], conflicts: list[PairConflict]
) -> tuple[list[BranchCheck], list[Rejected], str | None]:
    head = base
    taken: list[BranchCheck] = []
    rejected: list[Rejected] = []
    for check in order:
        assert check.sha is not None
        step = _merge_step(repo, head, check.sha, _VIRTUAL_MESSAGE)
        if isinstance(step, tuple):
            accepted = {c.task_id for c in taken}
            partners = sorted(
                {pc.b if pc.a == check.task_id else pc.a for pc in conflicts if check.task_id in (pc.a, pc.b)}
                & accepted
            )
            reason = (f"conflicts with {', '.join(partners)}" if partners
                      else "conflicts with the combination of the branches merged before it")
            rejected.append(Rejected(task_id=check.task_id, branch=check.branch, reason=reason,
                                     conflicts_with=partners, files=list(step)))
            continue
        head = step
        taken.append(check)
    return taken, rejected, git.tree_of(repo, head) if taken else None


def _merge_step(repo: Path, head: str, sha: str, message: str) -> str | tuple[str, ...]:
    """Merge `sha` into `head` in memory: the new commit, or the conflicted files.

    Already contained → `head` unchanged; `head` contained in `sha` → `sha` itself (a fast
    forward, so stacked branches do not get empty merge commits).
    """
    if git.is_ancestor(repo, sha, head):
        return head
    if git.is_ancestor(repo, head, sha):
        return sha
    result = git.merge_tree(repo, head, sha)
    if not result.clean:
        return result.conflicted_files
    return git.commit_tree(repo, result.tree, [head, sha], message)


# -- integration ----------------------------------------------------------------------------------


def integrate(repo: Path, report: MergeReport, into_branch: str) -> IntegrationResult:
    """Create `into_branch` holding the base plus every branch of `report.merge_order`, merged in
    that order (the SHAs the check saw). Refuses when the branch exists; touches no worktree."""
    if not git.check_ref_format_branch(into_branch):
        raise InputError(f"{into_branch!r} is not a valid branch name")
    if git.branch_exists(repo, into_branch):
        raise InputError(f"branch {into_branch!r} already exists; choose a new name for the integration branch")
    shas = {c.task_id: c for c in report.branches}
    head = report.base_sha
    merged: list[str] = []
    for task_id in report.merge_order:
        check = shas[task_id]
        assert check.sha is not None
        step = _merge_step(repo, head, check.sha, f"Merge branch '{check.branch}' (task {task_id})")
        if isinstance(step, tuple):
            # The check said this merges; it can only fail if objects changed underneath us.
            raise GitError(f"merging {check.branch} no longer merges cleanly: {', '.join(step)}; run merge-check again")
        head = step
        merged.append(task_id)
    git.create_branch(repo, into_branch, head, reflog_message="gadugi integrate")
    return IntegrationResult(branch=into_branch, head=head, merged=merged, rejected=report.rejected)


# -- pull requests --------------------------------------------------------------------------------


def gh_unavailable_reason(repo: Path, path: str | None = None) -> str | None:
    """Why `gh` cannot open pull requests here (not installed, not logged in), or None."""
    env = git.no_git_env()
    if path is not None:
        env["PATH"] = path
    if which("gh", env.get("PATH")) is None:
        return "gh (GitHub CLI) is not installed: no pull requests opened"
    rc, out, err = run_cmd(["gh", "auth", "status"], cwd=repo, env=env, check=False)
    if rc != 0:
        detail = (err.strip() or out.strip()).splitlines()
        return f"gh is not authenticated (`gh auth login`): {detail[-1] if detail else 'gh auth status failed'}"
    return None


def open_pull_requests(
    repo: Path,
    branches: list[tuple[str, str]],
    *,
    base_branch: str,
    titles: dict[str, str],
    remote: str = "origin",
    path: str | None = None,
) -> list[PullRequestResult]:
    """Push each branch to `remote` and open one pull request per branch with `gh pr create`."""
    env = git.no_git_env()
    if path is not None:
        env["PATH"] = path
    results = []
    for task_id, branch in branches:
        push_error = git.push_branch(repo, remote, branch, path=path)
        if push_error is not None:
            results.append(PullRequestResult(task_id=task_id, branch=branch, error=f"push failed: {_last(push_error)}"))
            continue
        title = titles.get(task_id) or task_id
        body = f"Task `{task_id}` of a gadugi-orchestrator run (branch `{branch}`)."
        rc, out, err = run_cmd(
            ["gh", "pr", "create", "--head", branch, "--base", base_branch, "--title", title, "--body", body],
            cwd=repo, env=env, check=False,
        )
        if rc != 0:
            results.append(PullRequestResult(task_id=task_id, branch=branch, error=f"gh pr create: {_last(err or out)}"))
        else:
            results.append(PullRequestResult(task_id=task_id, branch=branch, url=_last(out)))
    return results


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
