"""Is an attempt's WorkflowManager alive? Answered by the kernel, not by pids or a time window.

Before it spawns a WorkflowManager the orchestrator takes an exclusive flock on
`tasks/<id>/wm-<attempt>.lock` and hands that descriptor to the child; then it closes its own
copy. An flock belongs to the open file description, so it is held exactly as long as some
process of that attempt keeps the descriptor open: the WorkflowManager, from the moment it is
forked until it exits. So at any later moment — after a kill -9 of the orchestrator at any point
of a launch — "the lock is held" means "that WorkflowManager is running (or still starting)",
and "the lock is free" means it never started or has ended, in which case its result.json is
final. A resume therefore never starts a second WorkflowManager next to a slow-starting first.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from orchestrator.state.locks import is_held

__all__ = ["LOCK_FD_ENV", "is_held", "keep_inherited", "lock_path", "take", "wait_released"]

LOCK_FD_ENV = "GADUGI_ATTEMPT_LOCK_FD"  # the inherited descriptor number, for the WorkflowManager


def lock_path(task_dir: Path, attempt: int) -> Path:
    return task_dir / f"wm-{attempt}.lock"


def take(path: Path) -> int:
    """Open and lock `path` for a child about to be spawned; returns the descriptor, which the
    caller passes to the child (pass_fds) and then closes. Raises BlockingIOError when some live
    process already holds it: that attempt is running and must not be started twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def wait_released(path: Path) -> None:
    """Block until no process holds the lock (the WorkflowManager exited); no polling."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


def keep_inherited() -> None:
    """In the WorkflowManager: keep the inherited descriptor open for our whole life, but out of
    every process we start, so an agent's leftover daemon cannot make us look alive."""
    raw = os.environ.pop(LOCK_FD_ENV, None)
    if raw is None:
        return
    try:
        os.set_inheritable(int(raw), False)
    except (ValueError, OSError):
        pass
