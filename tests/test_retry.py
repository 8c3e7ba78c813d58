"""The retry policy: which failures retry (the failure table), and the backoff (full jitter, capped, growing)."""
from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orchestrator.agents.failures import FAILURES, PERMANENT, TRANSIENT
from orchestrator.models import AgentOutcome, FailureClass, TaskResult, TaskStatus
from orchestrator.run.retry import BACKOFF_BASE, BACKOFF_CAP, RATE_LIMIT_WAIT_CAP, backoff_delay, retry_delay


@given(attempt=st.integers(min_value=1, max_value=200), base=st.floats(0.001, 100), cap=st.floats(0.001, 10_000),
       seed=st.integers())
def test_backoff_is_within_jittered_capped_bounds(attempt: int, base: float, cap: float, seed: int) -> None:
    delay = backoff_delay(attempt, base=base, cap=cap, rng=random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2 ** (attempt - 1)) + 1e-9


@settings(max_examples=50)
@given(attempt=st.integers(min_value=1, max_value=20), seed=st.integers())
def test_backoff_ceiling_grows_until_capped(attempt: int, seed: int) -> None:
    # The expected delay (half the ceiling under full jitter) doubles each attempt until the cap.
    samples = [backoff_delay(attempt, base=1.0, cap=60.0, rng=random.Random(seed + i)) for i in range(200)]
    ceiling = min(60.0, 2.0 ** (attempt - 1))
    assert max(samples) <= ceiling
    assert sum(samples) / len(samples) > ceiling * 0.3


def failed(failure: str, *, attempt: int = 1, resets_at: float | None = None) -> TaskResult:
    return TaskResult(task_id="t", status=TaskStatus.FAILED, attempt=attempt,
                      outcome=AgentOutcome(failure=failure, rate_limit_resets_at=resets_at))  # type: ignore[arg-type]


def test_every_failure_class_is_in_the_table_once() -> None:
    assert sorted(FAILURES) == sorted(get_args(FailureClass))
    assert all(f.wording for f in FAILURES.values())
    # Stopped on purpose or not a failure at all: neither retried nor counted by the breaker.
    assert set(FAILURES) - TRANSIENT - PERMANENT == {"none", "timeout", "cancelled", "validation"}


@given(st.sampled_from(sorted(FAILURES)))
def test_only_transient_failures_retry(failure: FailureClass) -> None:
    assert (retry_delay(failed(failure), base=1.0, cap=30.0) is not None) == (failure in TRANSIENT)


@given(st.sampled_from(sorted(PERMANENT)))
def test_permanent_failures_never_retry(failure: str) -> None:
    assert retry_delay(failed(failure)) is None


@given(st.sampled_from(sorted(TRANSIENT - {"rate_limited"})), st.integers(min_value=1, max_value=10))
def test_transient_failures_retry(failure: str, attempt: int) -> None:
    delay = retry_delay(failed(failure, attempt=attempt), base=1.0, cap=30.0)
    assert delay is not None and 0 <= delay <= 30.0


def test_rate_limit_waits_until_the_reset() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    reset = (now + timedelta(minutes=20)).timestamp()
    delay = retry_delay(failed("rate_limited", resets_at=reset), now=now, rng=random.Random(1))
    assert delay is not None and 1200 <= delay <= 1205
    far = (now + timedelta(days=3)).timestamp()
    assert retry_delay(failed("rate_limited", resets_at=far), now=now) is None


def test_only_failed_status_retries() -> None:
    for status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.TIMEOUT):
        result = failed("crashed")
        result.status = status
        assert retry_delay(result) is None


class Extreme(random.Random):
    """Jitter pinned to one end of its range, so delays are exact."""

    def __init__(self, top: bool) -> None:
        super().__init__(0)
        self.top = top
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b if self.top else a


@pytest.mark.parametrize(
    ("attempt", "base", "cap", "ceiling"),
    [(1, 5.0, 300.0, 5.0), (2, 5.0, 300.0, 10.0), (3, 5.0, 300.0, 20.0), (7, 5.0, 300.0, 300.0),
     (6, 5.0, 300.0, 160.0), (40, 1.0, float("inf"), 2.0**32), (10**6, 1.0, 60.0, 60.0)],
)
def test_backoff_ceiling_is_exact(attempt: int, base: float, cap: float, ceiling: float) -> None:
    assert backoff_delay(attempt, base=base, cap=cap, rng=Extreme(top=True)) == ceiling
    assert backoff_delay(attempt, base=base, cap=cap, rng=Extreme(top=False)) == 0.0


def test_backoff_defaults_and_the_shared_random() -> None:
    assert backoff_delay(1, rng=Extreme(top=True)) == BACKOFF_BASE == 5.0
    assert backoff_delay(30, rng=Extreme(top=True)) == BACKOFF_CAP == 300.0
    random.seed(7)
    delays = [backoff_delay(3, base=1.0, cap=60.0) for _ in range(50)]
    assert all(0.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 1


def test_attempts_are_counted_from_one() -> None:
    with pytest.raises(ValueError, match="^attempt is 1-based$"):
        backoff_delay(0)
    assert backoff_delay(1, base=3.0, rng=Extreme(top=True)) == 3.0


def test_the_policy_table() -> None:
    assert TRANSIENT == {"api_error", "rate_limited", "killed", "stalled", "crashed", "no_result", "lost",
                         "session_lost"}
    assert PERMANENT == {"auth", "max_turns", "budget", "verify_failed", "agent_error", "setup_failed"}
    # Every failure class is judged: retried, never retried, or not a failure of the agent at all.
    assert set(get_args(FailureClass)) - TRANSIENT - PERMANENT == {"none", "timeout", "cancelled", "validation"}
    for other in ("none", "cancelled", "timeout", "validation"):
        assert retry_delay(failed(other)) is None


def test_transient_failures_back_off_by_attempt_with_the_given_base_and_cap() -> None:
    assert retry_delay(failed("crashed", attempt=1), rng=Extreme(top=True)) == 5.0
    assert retry_delay(failed("crashed", attempt=3), base=2.0, cap=100.0, rng=Extreme(top=True)) == 8.0
    assert retry_delay(failed("stalled", attempt=9), base=2.0, cap=100.0, rng=Extreme(top=True)) == 100.0
    assert retry_delay(failed("lost", attempt=2), rng=Extreme(top=False)) == 0.0


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_rate_limit_without_a_reset_time_backs_off_like_any_transient_failure() -> None:
    assert retry_delay(failed("rate_limited", attempt=3), base=2.0, cap=100.0, now=NOW, rng=Extreme(top=True)) == 8.0


@pytest.mark.parametrize(("base", "jitter"), [(2.0, 2.0), (5.0, 5.0), (30.0, 5.0)])
def test_a_rate_limit_waits_exactly_until_the_reset_plus_a_little_jitter(base: float, jitter: float) -> None:
    reset = NOW.timestamp() + 600
    top = Extreme(top=True)
    assert retry_delay(failed("rate_limited", attempt=4, resets_at=reset), base=base, now=NOW, rng=top) == 600 + jitter
    assert top.ranges == [(0.0, jitter)]
    bottom = retry_delay(failed("rate_limited", attempt=4, resets_at=reset), base=base, now=NOW, rng=Extreme(top=False))
    assert bottom == 600.0


def test_a_reset_already_past_retries_at_once_with_jitter_only() -> None:
    past = NOW.timestamp() - 3600
    assert retry_delay(failed("rate_limited", resets_at=past), now=NOW, rng=Extreme(top=False)) == 0.0
    assert retry_delay(failed("rate_limited", resets_at=past), base=3.0, now=NOW, rng=Extreme(top=True)) == 3.0


def test_a_reset_up_to_six_hours_away_is_waited_for_and_further_is_permanent() -> None:
    at_cap = NOW.timestamp() + RATE_LIMIT_WAIT_CAP
    assert RATE_LIMIT_WAIT_CAP == 6 * 3600
    assert retry_delay(failed("rate_limited", resets_at=at_cap), now=NOW, rng=Extreme(top=False)) == RATE_LIMIT_WAIT_CAP
    assert retry_delay(failed("rate_limited", resets_at=at_cap + 1), now=NOW) is None


def test_the_reset_is_compared_with_the_current_time_by_default() -> None:
    delay = retry_delay(failed("rate_limited", resets_at=time.time() + 100), rng=Extreme(top=False))
    assert delay is not None and 98 <= delay <= 100


def test_a_reset_time_only_matters_for_rate_limits() -> None:
    far = NOW.timestamp() + 10 * RATE_LIMIT_WAIT_CAP
    assert retry_delay(failed("api_error", resets_at=far), now=NOW, rng=Extreme(top=True)) == 5.0
