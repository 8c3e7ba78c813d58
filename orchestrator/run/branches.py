"""`orchestrator clean --branches`: this tool's branches of finished runs, deleted only when that
loses nothing.

A branch goes when it is merged into the run's base ref (its work is there) or holds no commits
of its own. A branch with unmerged work stays unless forced; then its tip is first kept under
`refs/gadugi/trash/`, so the commits stay reachable (`git branch NAME refs/gadugi/trash/...`
brings them back). Each delete is a compare-and-delete: a branch that moved meanwhile stays.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import InputError
from orchestrator.gitops import git
from orchestrator.run.lifecycle import is_finished, saved_plan
from orchestrator.run.project import Project
from orchestrator.state.runlock import RunLock
from orchestrator.state.runs import RunPaths, run_dirs

TRASH_PREFIX = "refs/gadugi/trash/"


@dataclass
class BranchOutcome:
    deleted: list[tuple[str, str]] = field(default_factory=list)  # (branch, why it could go)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (branch, why it stays)
    trashed: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (branch, trash ref, dropped commits)


def clean_branches(project: Project, run_id: str | None, *, all_runs: bool, force: bool) -> BranchOutcome:
    root = project.root
    lock = RunLock(root / ".gadugi")
    active = lock.holder().get("run_id") if lock.held_by_other() else None
    if all_runs:
        runs = [RunPaths(root, p, project.monitoring_dir) for p in run_dirs(root)]
    else:
        runs = [project.find_run(run_id)]
        if runs[0].run_id == active:
            raise InputError(f"run {runs[0].run_id} is still active; its branches are in use")
    checked_out = {e.branch: e.path for e in git.list_worktrees(root) if e.branch}
    outcome = BranchOutcome()
    for run in runs:
        plan = saved_plan(run.run_dir)
        branches = [t.get("branch") for t in plan.get("tasks", []) if isinstance(t, dict)]
        present = [b for b in branches if isinstance(b, str) and b and git.branch_exists(root, b)]
        if not present:
            continue
        if run.run_id == active or not is_finished(run.run_dir):
            why = "its run is active" if run.run_id == active else \
                f"run {run.run_id} is not finished (`orchestrator resume {run.run_id}` continues it)"
            outcome.kept += [(b, why) for b in present]
            continue
        target = str(plan.get("base_ref") or "HEAD")
        base_sha = str(plan.get("base_sha") or "")
        for branch in present:
            _judge(root, branch, target, base_sha, checked_out, force, outcome)
    return outcome


def _judge(root: Path, branch: str, target: str, base_sha: str, checked_out: dict[str, Path], force: bool,
           outcome: BranchOutcome) -> None:
    tip = git.rev_parse(root, f"refs/heads/{branch}")
    if tip is None:
        return
    if branch in checked_out:
        outcome.kept.append((branch, f"checked out in {checked_out[branch]} (`orchestrator clean` removes "
                                     "finished runs' worktrees first)"))
        return
    target_sha = git.rev_parse(root, target)
    if base_sha and git.is_ancestor(root, tip, base_sha):
        why = "no commits of its own"
    elif target_sha is not None and git.is_ancestor(root, tip, target_sha):
        why = f"merged into {target}"
    else:
        dropped = git.commits_between(root, target_sha or base_sha, tip) if (target_sha or base_sha) else [tip]
        if not force:
            outcome.kept.append((branch, f"{len(dropped)} commit(s) not in {target} (--force deletes it, keeping "
                                         f"them under {TRASH_PREFIX})"))
            return
        ref = f"{TRASH_PREFIX}{branch}@{time.strftime('%Y%m%d-%H%M%S')}"
        git.keep_ref(root, ref, tip, reflog_message=f"orchestrator clean --branches --force: {branch}")
        if git.delete_branch_if_at(root, branch, tip):
            outcome.trashed.append((branch, ref, dropped))
        else:
            outcome.kept.append((branch, "it moved while being cleaned"))
        return
    if git.delete_branch_if_at(root, branch, tip):
        outcome.deleted.append((branch, why))
    else:
        outcome.kept.append((branch, "it moved while being cleaned"))

