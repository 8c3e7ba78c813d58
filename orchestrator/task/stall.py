"""Telling a stalled agent from a quiet one.

An agent is stalled only when, for the whole stall window, it produced no event, changed nothing
in its worktree, and its process tree used no CPU: a silent agent running a long test suite keeps
its children busy and is left alone (a false kill costs more than a late one).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import OrchestratorError
from orchestrator.gitops import git
from orchestrator.proctree import tree_cpu_seconds

CPU_EPSILON = 0.05  # seconds of CPU between checks that still count as idle (psutil bookkeeping)


def worktree_fingerprint(worktree: Path) -> tuple[object, ...]:
    """HEAD plus every changed path with its mtime: moves when the agent edits or commits."""
    try:
        head = git.head_sha(worktree)
        paths = git.status_paths(worktree)
    except OrchestratorError:
        return ("unreadable",)
    stamped: list[tuple[str, int | None]] = []
    for rel in sorted(paths):
        try:
            stamped.append((rel, os.stat(worktree / rel).st_mtime_ns))
        except OSError:
            stamped.append((rel, None))
    return (head, tuple(stamped))


class StallWatch:
    """Call `check()` periodically; it returns a reason once the agent has been idle too long."""

    def __init__(self, pid: int, worktree: Path, stall_timeout: float, *,
                 last_event: Callable[[], float], clock: Callable[[], float] = time.monotonic) -> None:
        self.pid = pid
        self.worktree = worktree
        self.stall_timeout = stall_timeout
        self.last_event = last_event
        self.clock = clock
        self._cpu = tree_cpu_seconds(pid)
        self._fingerprint = worktree_fingerprint(worktree)
        self._last_activity = clock()

    def check(self) -> str | None:
        now = self.clock()
        cpu = tree_cpu_seconds(self.pid)
        fingerprint = worktree_fingerprint(self.worktree)
        # CPU counts from the last activity, not from the last check: on a loaded machine a busy
        # tree may get less than CPU_EPSILON between two checks, yet plenty over the window.
        if cpu - self._cpu > CPU_EPSILON or fingerprint != self._fingerprint:
            self._last_activity = now
            self._cpu = cpu
        self._cpu = min(self._cpu, cpu)  # a child that exited takes its CPU time out of the sum
        self._fingerprint = fingerprint
        idle_since = max(self._last_activity, self.last_event())
        if now - idle_since >= self.stall_timeout:
            return (f"stalled: no agent event, no change in the worktree and no CPU use for "
                    f"{now - idle_since:.0f}s (--stall-timeout {self.stall_timeout:g}s)")
        return None
