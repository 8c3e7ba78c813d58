"""The retry policy: which failures retry (the failure table), and the backoff (full jitter, capped, growing)."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st
from orchestrator.agents.failures import FAILURES, PERMANENT, TRANSIENT
from orchestrator.models import AgentOutcome, FailureClass, TaskResult, TaskStatus
from orchestrator.run.retry import backoff_delay, retry_delay


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
