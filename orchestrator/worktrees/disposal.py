"""The end of a task's worktree, done one way by the run's clean-up and by `orchestrator clean`:
the user's teardown hook, the task's port released, and the directory removed (its branch stays).
Uncommitted work is never lost: it is committed to the branch first when asked, else kept."""
from __future__ import annotations

from pathlib import Path

from orchestrator.gitops import git
from orchestrator.worktrees.manager import WorktreeManager
from orchestrator.worktrees.provision import release_port, teardown_worktree


def dispose_worktree(manager: WorktreeManager, worktree: Path, *, task_id: str, branch: str, base_sha: str,
                     teardown: str | None, log_path: Path, save_work_as: str | None = None) -> bool:
    """True when the worktree is gone. A worktree with uncommitted changes stays (its port is
    released all the same) unless `save_work_as` is a commit message to save them under."""
    root = manager.project_root
    if git.is_dirty(worktree):
        if save_work_as is None:
            release_port(root, task_id)
            return False
        git.commit_all(worktree, save_work_as)
    teardown_worktree(root, worktree, task_id=task_id, branch=branch, base_sha=base_sha, teardown=teardown,
                      log_path=log_path)
    return manager.remove(worktree)
