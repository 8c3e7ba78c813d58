"""Which failures are worth another attempt, and how long to wait before it.

Transient failures (the API overloaded or rate limited, the agent killed, stalled or crashed
without a result) usually go away; permanent ones (not logged in, flags refused, turn or budget
limit, verify failed) repeat identically and only cost money, so they are never retried.
"""
from __future__ import annotations

import random
from datetime import UTC, datetime

from orchestrator.models import FailureClass, TaskResult, TaskStatus

# "lost": the WorkflowManager (or the cluster worker running it) died without leaving a result.
# "session_lost": a resume found no session and the fresh start was not possible (another agent).
TRANSIENT: frozenset[str] = frozenset({"api_error", "rate_limited", "killed", "stalled", "crashed", "no_result", "lost",
                                       "session_lost"})
# "validation": the work left placeholders, missed outputs or requirements after its fix-up
# rounds; the same agent on the same task would leave the same.
PERMANENT: frozenset[str] = frozenset({"auth", "max_turns", "budget", "verify_failed", "agent_error", "setup_failed",
                                       "validation"})

BACKOFF_BASE = 5.0  # seconds before the first retry (before jitter)
BACKOFF_CAP = 300.0  # no retry waits longer than this, except until a known rate-limit reset
RATE_LIMIT_WAIT_CAP = 6 * 3600.0  # a reset further away than this is treated as permanent


def is_transient(failure: FailureClass | str) -> bool:
    return failure in TRANSIENT


def backoff_delay(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                  rng: random.Random | None = None) -> float:
    """Capped exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))].

    Full jitter spreads retries of many tasks that failed together (one overloaded API) instead of
    sending them back in lockstep. `attempt` is the attempt that just failed (1-based).
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap, base * (2 ** min(attempt - 1, 32)))
    return (rng or random).uniform(0.0, ceiling)


def retry_delay(result: TaskResult, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
                now: datetime | None = None, rng: random.Random | None = None) -> float | None:
    """Seconds to wait before retrying `result`, or None when it must not be retried."""
    if result.status not in (TaskStatus.FAILED,):
        return None
    failure = result.outcome.failure
    if not is_transient(failure):
        return None
    resets_at = result.outcome.rate_limit_resets_at
    if failure == "rate_limited" and resets_at is not None:
        wait = resets_at - (now or datetime.now(UTC)).timestamp()
        if wait > RATE_LIMIT_WAIT_CAP:
            return None
        # Waiting past the reset is pointless; a little jitter avoids a thundering herd at it.
        return max(0.0, wait) + (rng or random).uniform(0.0, min(base, 5.0))
    return backoff_delay(result.attempt, base=base, cap=cap, rng=rng)
