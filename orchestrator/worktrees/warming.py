"""Fill the worktree pool in the background while a run starts, so its first wave recycles.

The first tasks of a run all start from the base commit; checking it out for them in threads of
the orchestrator, from the moment the run knows its base, overlaps the checkouts with everything
else a run does before a task reaches `acquire` (recording the plan, spawning WorkflowManagers,
launch spacing). A task that arrives while its entry is still being written claims it and waits
for the rest, instead of starting a checkout of its own from nothing (pool.py explains how).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from orchestrator.errors import OrchestratorError
from orchestrator.worktrees.pool import WorktreePool

log = logging.getLogger(__name__)


@dataclass
class PoolWarming:
    """The warmer threads of one run; `join` before the run ends so none outlives it."""

    threads: list[threading.Thread] = field(default_factory=list)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


def start_warming(pool: WorktreePool, start_sha: str, wanted: int) -> PoolWarming:
    """Start checkouts of `start_sha` until the pool holds `wanted` entries (ready or warming).

    Nothing starts when the pool is off or already holds enough: then this costs one read of the
    pool list."""
    warming = PoolWarming()
    if pool.size == 0 or wanted <= 0:
        return warming
    missing = min(wanted, pool.size) - len(pool.entries())
    for n in range(max(0, missing)):
        thread = threading.Thread(target=_warm, args=(pool, start_sha), name=f"pool-warm-{n}", daemon=True)
        thread.start()
        warming.threads.append(thread)
    return warming


def _warm(pool: WorktreePool, start_sha: str) -> None:
    try:
        pool.warm_one(start_sha)
    except (OrchestratorError, OSError) as exc:
        # Only a head start is lost: the task that would have taken it creates its own worktree.
        log.warning("warming a pooled worktree failed: %s", exc)
