"""The scheduler itself, on a virtual clock: order, slots, retries, the breaker, the budget,
cancelling, the run timeout, Ctrl-C and adoption on resume, each with exact times."""
from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from benchmarks.virtual import START, Attempt, Script, Simulation, VirtualBackend, VirtualClock, iso_at, virtual_time
from orchestrator.agents.failures import PERMANENT
from orchestrator.models import Edge, EdgeKind, FailureClass, Plan, PlannedTask, TaskResult, TaskSpec, TaskStatus
from orchestrator.observe.events import (
    BreakerTripped,
    CancelRequested,
    Interrupted,
    Killing,
    RunTimedOut,
    TaskCancelled,
    Waiting,
)
from orchestrator.run import engine as engine_mod
from orchestrator.run.engine import Attached, EngineSettings, ExecutionEngine, Requeued

from test_e2e import peak_concurrency

DEP, CONFLICT = EdgeKind.DEPENDENCY, EdgeKind.CONFLICT


def make_plan(tmp_path: Path, ids: Sequence[str], edges: Sequence[tuple[str, str, EdgeKind]] = (),
              priorities: dict[str, int] | None = None) -> Plan:
    tasks = [
        PlannedTask(spec=TaskSpec(id=t, title=t, prompt_file=tmp_path / f"{t}.md", prompt_text=t, index=i,
                                  priority=(priorities or {}).get(t, 5)),
                    branch=f"gadugi/{t}", worktree=tmp_path / "wt" / t, agent_command=["agent"])
        for i, t in enumerate(ids)
    ]
    return Plan(tasks=tasks, edges=[Edge(before=b, after=a, kind=k, reason="test") for b, a, k in edges],
                base_sha="base")


def simulation(tmp_path: Path, scripts: dict[str, Script], edges: Sequence[tuple[str, str, EdgeKind]] = (),
               priorities: dict[str, int] | None = None) -> Simulation:
    plan = make_plan(tmp_path, list(scripts), edges, priorities)
    # No test here needs more than an hour of virtual time: a scheduler that never ends fails.
    return Simulation(plan, VirtualBackend(VirtualClock(limit=3600), scripts), tmp_path / "run")


def settings(**overrides: Any) -> EngineSettings:
    return EngineSettings(**{"max_parallel": 2, "launch_stagger": 0, "retries": 0, **overrides})


def run(tmp_path: Path, scripts: dict[str, Script], edges: Sequence[tuple[str, str, EdgeKind]] = (),
        **overrides: Any) -> tuple[ExecutionEngine, dict[str, TaskResult], Simulation]:
    sim = simulation(tmp_path, scripts, edges)
    engine, results = sim.run(settings(**overrides))
    return engine, results, sim


def statuses(results: dict[str, TaskResult]) -> dict[str, str]:
    return {tid: r.status.value for tid, r in results.items()}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# -- order and slots -------------------------------------------------------------------------------


def test_conflict_partner_runs_first_when_the_preferred_one_is_not_ready(tmp_path: Path) -> None:
    # a must wait for x; c conflicts with a (planned a -> c). A fixed order would leave a slot idle
    # until x and a are done; mutual exclusion lets c run beside x, then a stacks on c's work.
    sim = simulation(tmp_path, {"x": 40, "a": 10, "c": 10}, [("x", "a", DEP), ("a", "c", CONFLICT)])
    _, results = sim.run(settings())
    spans = sim.backend.spans
    assert spans == {"x": (START, START + 40), "c": (START, START + 10), "a": (START + 40, START + 50)}
    assert [p.task_id for p in sim.backend.requests["a"].predecessors] == ["x", "c"]
    assert statuses(results) == dict.fromkeys("xac", "completed")


def test_planned_order_holds_when_both_are_ready_and_slots_are_never_exceeded(tmp_path: Path) -> None:
    ids = [f"t{i}" for i in range(10)]
    edges = [("t0", "t1", CONFLICT), ("t2", "t3", DEP), ("t3", "t4", DEP)]
    engine, _, sim = run(tmp_path, {t: 5 + 2 * i for i, t in enumerate(ids)}, edges, max_parallel=3)
    spans = sim.backend.spans
    assert spans["t1"][0] >= spans["t0"][1] and [p.task_id for p in sim.backend.requests["t1"].predecessors] == ["t0"]
    assert spans["t4"][0] >= spans["t3"][1] >= spans["t2"][1]
    assert peak_concurrency(spans) == 3


def test_priority_then_longest_remaining_path_then_input_order(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"plain": 10, "urgent": 10, "chain": 10, "tail": 10, "last": 10}
    sim = simulation(tmp_path, scripts, [("chain", "tail", DEP)], priorities={"urgent": 1})
    sim.run(settings(max_parallel=1), remaining_path={"chain": 2, "tail": 1})
    assert [x.task_id for x in sim.backend.launches] == ["urgent", "chain", "plain", "tail", "last"]


@pytest.mark.parametrize("stagger", [0.5, 2.0])
def test_launches_are_paced_by_the_stagger(tmp_path: Path, stagger: float) -> None:
    _, _, sim = run(tmp_path, dict.fromkeys("abc", 100.0), max_parallel=3, launch_stagger=stagger)
    starts = [x.start - START for x in sim.backend.launches]
    # Jittered spacing of 0.5x..1.5x the stagger, drawn from the engine's random source.
    jitter = random.Random(0)
    expected = [0.0, stagger * jitter.uniform(0.5, 1.5)]
    expected.append(expected[1] + stagger * jitter.uniform(0.5, 1.5))
    assert starts == pytest.approx(expected)


def test_a_ready_task_blocked_by_its_running_partner_leaves_the_slot_to_the_next_one(tmp_path: Path) -> None:
    # a is preferred over c but conflicts with the running x: c takes the free slot at once.
    sim = simulation(tmp_path, {"x": 40, "a": 10, "c": 10}, [("x", "a", CONFLICT)])
    sim.run(settings())
    assert sim.backend.spans == {"x": (START, START + 40), "c": (START, START + 10), "a": (START + 40, START + 50)}


def test_a_task_with_two_dependencies_starts_when_the_last_one_ends(tmp_path: Path) -> None:
    _, _, sim = run(tmp_path, {"x": 10, "y": 30, "z": 5}, [("x", "z", DEP), ("y", "z", DEP)], max_parallel=3)
    assert sim.backend.spans["z"] == (START + 30, START + 35)


def test_free_slots_fill_at_the_same_moment_without_a_stagger(tmp_path: Path) -> None:
    _, _, sim = run(tmp_path, dict.fromkeys("abcd", 10.0), max_parallel=3)
    assert [x.start - START for x in sim.backend.launches] == [0, 0, 0, 10]


def test_a_dequeued_task_does_not_delay_the_next_launch(tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.mkdir()
    sim = simulation(tmp_path, {"a": 10, "b": 10, "c": 10})
    sim.backend.at(START + 5, lambda: (control / "cancel-b").write_text(""))
    sim.run(settings(max_parallel=1, control_dir=control))
    assert {x.task_id: x.start - START for x in sim.backend.launches} == {"a": 0, "c": 10}


def test_at_least_one_slot(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"a": 1})
    with pytest.raises(ValueError, match="^max_parallel must be at least 1$"):
        sim.engine(settings(max_parallel=0))


def test_tasks_that_can_never_become_ready_end_cancelled(tmp_path: Path) -> None:
    # A dependency cycle (the planner refuses one; the engine still must not hang or lose them).
    engine, results, sim = run(tmp_path, {"a": 1, "b": 1, "free": 1}, [("a", "b", DEP), ("b", "a", DEP)])
    assert statuses(results) == {"a": "cancelled", "b": "cancelled", "free": "completed"}
    assert results["a"].error_message == "not started" and results["a"].cancelled_by == "dependency"
    assert [x.task_id for x in sim.backend.launches] == ["free"] and engine.abort_reason is None


def test_a_failed_dependency_cancels_its_chain_and_a_conflict_partner_still_runs(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"a": Attempt(5, failure="agent_error"), "b": 5, "c": 5, "d": 5, "e": 5}
    edges = [("a", "b", DEP), ("b", "c", DEP), ("a", "d", CONFLICT)]
    _, results, sim = run(tmp_path, scripts, edges)
    assert statuses(results) == {"a": "failed", "b": "cancelled", "c": "cancelled", "d": "completed",
                                 "e": "completed"}
    assert results["b"].error_message == "dependency 'a' failed" and results["b"].cancelled_by == "dependency"
    assert results["c"].error_message == "dependency 'b' cancelled" and results["c"].cancelled_by == "dependency"
    assert {x.task_id for x in sim.backend.launches} == {"a", "d", "e"}
    assert sim.registry.get("c").status == TaskStatus.CANCELLED  # type: ignore[union-attr]


# -- retries ---------------------------------------------------------------------------------------


def test_transient_failures_retry_after_the_recorded_backoff(tmp_path: Path) -> None:
    crash = Attempt(10, failure="crashed", cost_usd=0.5)
    _, results, sim = run(tmp_path, {"t": [crash, crash, Attempt(10, cost_usd=0.25)]}, retries=2, backoff_base=8,
                          backoff_cap=12)
    launches = sim.backend.started("t")
    assert [x.attempt for x in launches] == [1, 2, 3]
    result = results["t"]
    assert result.status == TaskStatus.COMPLETED and result.attempt == 3
    assert [a.failure for a in result.attempts] == ["crashed", "crashed"]
    delays = [a.retry_delay_seconds or 0.0 for a in result.attempts]
    # Full jitter under a ceiling that doubles up to the cap (8, then 12 not 16), drawn from the
    # engine's random source.
    jitter = random.Random(0)
    assert delays == [round(jitter.uniform(0, 8), 3), round(jitter.uniform(0, 12), 3)]
    for before, after, delay in zip(launches, launches[1:], delays, strict=False):
        # Exact but for the engine's shortest wait (10 ms).
        assert before.end is not None and after.start == pytest.approx(before.end + delay, abs=0.011)
    entry = sim.registry.get("t")
    assert entry is not None and entry.status == TaskStatus.COMPLETED and entry.attempt == 3
    assert entry.cost_usd == 1.25  # every attempt's cost counts


def test_each_retry_keeps_the_record_of_the_attempt_before_it_and_continues_from_it(tmp_path: Path) -> None:
    crash = Attempt(10, failure="crashed", cost_usd=0.5, message="boom")
    sim = simulation(tmp_path, {"t": [crash, Attempt(10)]})
    _, results = sim.run(settings(retries=1, backoff_base=8))
    delay = round(random.Random(0).uniform(0, 8), 3)
    (record,) = results["t"].attempts
    assert record.model_dump() == {
        "attempt": 1, "status": TaskStatus.FAILED, "failure": "crashed", "error_message": "boom",
        "session_id": "session-t-1", "duration_seconds": 10.0, "cost_usd": 0.5, "retry_delay_seconds": delay,
        "started_at": iso_at(START), "completed_at": iso_at(START + 10),
    }
    first = sim.continued_from["t", 1]
    retried = sim.continued_from["t", 2]
    assert first is None and retried is not None and (retried.attempt, retried.error_message) == (1, "boom")


def test_a_zero_backoff_retries_the_moment_the_attempt_ends(tmp_path: Path) -> None:
    _, _, sim = run(tmp_path, {"t": [Attempt(10, failure="crashed"), Attempt(10)]}, retries=1, backoff_base=0)
    assert [(x.start, x.end) for x in sim.backend.started("t")] == [(START, START + 10), (START + 10, START + 20)]


def test_retries_run_out(tmp_path: Path) -> None:
    _, results, sim = run(tmp_path, {"t": Attempt(1, failure="api_error", message="529 overloaded")}, retries=1,
                          backoff_base=1)
    assert len(sim.backend.started("t")) == 2
    result = results["t"]
    assert result.status == TaskStatus.FAILED and result.attempt == 2 and len(result.attempts) == 1
    assert result.error_message == "529 overloaded"


@pytest.mark.parametrize("failure", ["max_turns", "verify_failed", "agent_error"])
def test_permanent_failures_run_once(tmp_path: Path, failure: str) -> None:
    _, results, sim = run(tmp_path, {"t": Attempt(1, failure=failure)}, retries=3)
    assert len(sim.backend.started("t")) == 1
    assert results["t"].status == TaskStatus.FAILED and results["t"].attempts == []


def test_a_workflow_manager_gone_without_a_result_is_lost_and_retried(tmp_path: Path) -> None:
    _, results, sim = run(tmp_path, {"t": [Attempt(3, leaves_result=False), Attempt(3)]}, retries=1)
    assert [x.attempt for x in sim.backend.started("t")] == [1, 2]
    assert results["t"].status == TaskStatus.COMPLETED
    (lost,) = results["t"].attempts
    assert lost.failure == "lost" and "without a result" in (lost.error_message or "")


def test_a_lost_retry_is_reported_as_the_attempt_it_was(tmp_path: Path) -> None:
    _, results, _ = run(tmp_path, {"t": [Attempt(3, failure="crashed"), Attempt(3, leaves_result=False)]}, retries=1)
    result = results["t"]
    assert (result.status, result.attempt, result.outcome.failure) == (TaskStatus.FAILED, 2, "lost")


def test_a_rate_limit_waits_for_its_reset(tmp_path: Path) -> None:
    resets = time.time() + 600  # the retry policy compares resets with the wall clock
    limited = Attempt(1, failure="rate_limited", resets_at=resets)
    _, results, sim = run(tmp_path, {"t": [limited, Attempt(1)]}, retries=1, backoff_base=2)
    first, second = sim.backend.started("t")
    assert first.end is not None and 598 <= second.start - first.end <= 603
    assert results["t"].status == TaskStatus.COMPLETED


def test_cancelling_a_task_waiting_to_retry_ends_the_run_without_waiting_out_the_backoff(tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.mkdir()
    sim = simulation(tmp_path, {"t": [Attempt(10, failure="crashed", cost_usd=0.5), Attempt(10)]})
    sim.backend.at(START + 20, lambda: (control / "cancel-t").write_text(""))
    _, results = sim.run(settings(retries=1, backoff_base=1000, control_dir=control))
    assert len(sim.backend.launches) == 1 and sim.clock.now == START + 20
    result = results["t"]
    assert (result.status, result.cancelled_by, result.attempt) == (TaskStatus.CANCELLED, "user", 1)
    assert [a.failure for a in result.attempts] == ["crashed"] and result.total_cost_usd() == 0.5


def test_retries_of_a_task_do_not_hold_its_slot(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"flaky": [Attempt(1, failure="api_error"), Attempt(1)], "b": 1, "c": 1}
    _, _, sim = run(tmp_path, scripts, max_parallel=1, retries=1, backoff_base=1000)
    assert [x.task_id for x in sim.backend.launches] == ["flaky", "b", "c", "flaky"]


# -- the circuit breaker and the budget ------------------------------------------------------------


def test_the_same_permanent_failure_three_times_stops_new_launches(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {t: Attempt(1, failure="max_turns", message="turn limit") for t in "abcd"}
    scripts["e"] = 1
    engine, results, sim = run(tmp_path, scripts, max_parallel=1, retries=2)
    assert [x.task_id for x in sim.backend.launches] == ["a", "b", "c"]
    assert engine.abort_reason == "stopped launching after 3 task(s) failed the same way: turn limit"
    assert statuses(results) == {"a": "failed", "b": "failed", "c": "failed", "d": "cancelled", "e": "cancelled"}
    assert {results[t].cancelled_by for t in "de"} == {"breaker"}


def test_a_different_outcome_between_failures_resets_the_breaker(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {
        "a": Attempt(1, failure="max_turns"), "b": Attempt(1, failure="max_turns"), "ok": 1,
        "c": Attempt(1, failure="max_turns"), "d": Attempt(1, failure="verify_failed"),
        "e": Attempt(1, failure="max_turns"), "f": 1,
    }
    engine, results, _ = run(tmp_path, scripts, max_parallel=1)
    assert engine.abort_reason is None
    assert statuses(results)["f"] == "completed"


def test_a_transient_failure_between_permanent_ones_resets_the_breaker(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"a": Attempt(1, failure="max_turns"), "b": Attempt(1, failure="max_turns"),
                                  "flaky": Attempt(1, failure="api_error"), "c": Attempt(1, failure="max_turns"),
                                  "d": Attempt(1, failure="max_turns"), "e": 1}
    engine, results, _ = run(tmp_path, scripts, max_parallel=1)
    assert engine.abort_reason is None and statuses(results)["e"] == "completed"


def test_once_the_breaker_trips_a_running_task_that_fails_is_not_retried(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"flaky": Attempt(100, failure="api_error")}
    scripts |= {t: Attempt(1, failure="max_turns", message="turn limit") for t in ("a", "b", "c")}
    engine, results, sim = run(tmp_path, scripts, retries=2)
    assert [x.task_id for x in sim.backend.launches] == ["flaky", "a", "b", "c"]
    assert results["flaky"].status == TaskStatus.FAILED and results["flaky"].attempts == []
    assert engine.abort_reason == "stopped launching after 3 task(s) failed the same way: turn limit"


def test_the_breaker_is_announced_with_the_task_that_tripped_it(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {t: Attempt(1, failure="max_turns", message="turn limit") for t in "abc"}
    engine, _, sim = run(tmp_path, scripts, max_parallel=1)
    (tripped,) = [e for e in sim.events if isinstance(e, BreakerTripped)]
    assert tripped == BreakerTripped(task_id="c", reason=engine.abort_reason or "")


@pytest.mark.parametrize(("error", "said", "quoted"), [
    (None, "", "the agent reached its turn limit"),  # nothing left: the failure in words
    ("WorkflowManager: turn limit", "", "WorkflowManager: turn limit"),
    ("WorkflowManager: turn limit", "Reached max turns (30)", "WorkflowManager: turn limit"),
])
def test_the_breaker_says_what_failed(tmp_path: Path, error: str | None, said: str, quoted: str) -> None:
    # Attempts that ended unwatched (resume) are judged like any other, with whatever they left.
    sim = simulation(tmp_path, dict.fromkeys(["a", "b", "c", "d"], 1.0))
    plan = {p.spec.id: p for p in sim.plan.tasks}
    ended = {}
    for tid in ("a", "b", "c"):
        result = TaskResult(task_id=tid, status=TaskStatus.FAILED, attempt=1, error_message=error)
        result.outcome.failure, result.outcome.message = "max_turns", said
        sim.registry.transition(tid, TaskStatus.RUNNING, attempt=1)
        ended[tid] = (sim.request(plan[tid], [], 1), result)
    engine, results = sim.run(settings(), ended=ended)
    assert engine.abort_reason == f"stopped launching after 3 task(s) failed the same way: {quoted}"
    assert sim.backend.launches == [] and results["d"].cancelled_by == "breaker"


def test_the_breaker_quotes_the_agent_when_the_result_has_no_error_message(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"a": 1.0, "b": 1.0})
    plan = {p.spec.id: p for p in sim.plan.tasks}
    result = TaskResult(task_id="a", status=TaskStatus.FAILED, attempt=1)
    result.outcome.failure, result.outcome.message = "auth", "Invalid API key"
    sim.registry.transition("a", TaskStatus.RUNNING, attempt=1)
    engine, _ = sim.run(settings(), ended={"a": (sim.request(plan["a"], [], 1), result)})
    assert engine.abort_reason == "stopped launching after 1 task(s) failed the same way: Invalid API key"


def test_not_logged_in_stops_the_run_at_the_first_failure(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {t: Attempt(1, failure="auth", message="not logged in") for t in "abc"}
    engine, results, sim = run(tmp_path, scripts, max_parallel=1, breaker_threshold=3)
    assert [x.task_id for x in sim.backend.launches] == ["a"]
    assert engine.abort_reason == "stopped launching after 1 task(s) failed the same way: not logged in"
    assert statuses(results) == {"a": "failed", "b": "cancelled", "c": "cancelled"}


@pytest.mark.parametrize("budget", [0.1, 0.12])  # reaching the budget exactly spends it too
def test_the_run_budget_counts_finished_attempts(tmp_path: Path, budget: float) -> None:
    scripts: dict[str, Script] = {t: Attempt(10, cost_usd=0.06) for t in ("b1", "b2", "b3", "b4")}
    engine, results, sim = run(tmp_path, scripts, max_parallel=1, run_budget_usd=budget)
    assert [x.task_id for x in sim.backend.launches] == ["b1", "b2"]
    assert engine.abort_reason == f"run budget of ${budget:.2f} spent ($0.12); no new task starts"
    assert [results[t].cancelled_by for t in ("b3", "b4")] == ["budget", "budget"]
    assert engine.spent_usd() == pytest.approx(0.12)


def test_the_run_budget_counts_failed_attempts_waiting_to_retry(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"flaky": [Attempt(10, failure="crashed", cost_usd=0.08), Attempt(10)],
                                  "b": Attempt(20, cost_usd=0.03), "c": 10}
    engine, results, sim = run(tmp_path, scripts, retries=1, backoff_base=1000, run_budget_usd=0.1)
    assert [x.task_id for x in sim.backend.launches] == ["flaky", "b", "c"]
    assert engine.spent_usd() == pytest.approx(0.11)
    assert results["flaky"].cancelled_by == "budget" and [a.failure for a in results["flaky"].attempts] == ["crashed"]
    assert sim.events.count(BreakerTripped(reason=engine.abort_reason or "")) == 1


def test_a_finished_attempt_costs_once_not_again_for_its_heartbeat(tmp_path: Path) -> None:
    # ...and an attempt that reported no cost costs nothing, even while its task waits to retry.
    scripts: dict[str, Script] = {"a": Attempt(10, cost_usd=0.05, live_cost_usd=0.05), "b": 10, "c": 10,
                                  "flaky": [Attempt(1, failure="crashed"), Attempt(1)]}
    engine, results, sim = run(tmp_path, scripts, max_parallel=1, run_budget_usd=0.08, retries=1, backoff_base=5)
    assert engine.abort_reason is None and statuses(results) == dict.fromkeys(scripts, "completed")
    assert engine.spent_usd() == pytest.approx(0.05)


def test_once_the_budget_is_spent_a_running_task_that_fails_is_not_retried(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"flaky": Attempt(100, failure="api_error"), "dear": Attempt(10, cost_usd=1.0)}
    engine, results, sim = run(tmp_path, scripts, retries=2, run_budget_usd=0.5)
    assert len(sim.backend.started("flaky")) == 1 and results["flaky"].status == TaskStatus.FAILED
    assert engine.abort_reason is not None and engine.abort_reason.startswith("run budget of $0.50 spent")


def test_the_run_budget_counts_what_running_attempts_report(tmp_path: Path) -> None:
    # The long task reports $0.20 halfway (t=50); the short ones behind it must stop launching then.
    scripts: dict[str, Script] = {"long": Attempt(100, cost_usd=0.2, live_cost_usd=0.2)}
    scripts |= {f"s{i}": Attempt(10) for i in range(1, 9)}
    _, results, sim = run(tmp_path, scripts, max_parallel=2, run_budget_usd=0.1)
    assert [x.task_id for x in sim.backend.launches] == ["long", "s1", "s2", "s3", "s4", "s5"]
    assert statuses(results)["long"] == "completed" and statuses(results)["s5"] == "completed"
    assert {results[f"s{i}"].cancelled_by for i in range(6, 9)} == {"budget"}


# -- cancel, run timeout, Ctrl-C -------------------------------------------------------------------


def test_cancel_requests_stop_a_running_task_and_dequeue_a_queued_one(tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.mkdir()
    scripts: dict[str, Script] = {"a": Attempt(hang=True), "after-a": 1, "q": 5, "other": 50}
    sim = simulation(tmp_path, scripts, [("a", "after-a", DEP), ("other", "q", DEP)])
    sim.backend.at(START + 30, lambda: [(control / f"cancel-{t}").write_text("") for t in ("a", "q", "nope")])
    _, results = sim.run(settings(control_dir=control))
    assert sim.backend.cancels == [("a", False)]
    assert sim.backend.spans["a"] == (START, START + 30)
    assert statuses(results) == {"a": "cancelled", "after-a": "cancelled", "q": "cancelled", "other": "completed"}
    assert results["a"].cancelled_by == "user" and results["q"].cancelled_by == "user"
    user_cancelled = "cancelled by user (`orchestrator cancel`)"
    queued = results["q"]
    assert (queued.attempt, queued.branch, queued.worktree, queued.base_sha, queued.outcome.failure) == (
        0, "gadugi/q", str(tmp_path / "wt" / "q"), "base", "cancelled")
    for tid in ("a", "q"):
        entry = sim.registry.get(tid)
        assert entry is not None and (entry.status, entry.cancelled_by, entry.error_message) == (
            TaskStatus.CANCELLED, "user", user_cancelled)
    assert [(e.task_id, e.reason) for e in sim.events if isinstance(e, TaskCancelled)] == [
        ("q", user_cancelled), ("after-a", "dependency 'a' cancelled")]
    assert results["after-a"].cancelled_by == "dependency"
    assert [x.task_id for x in sim.backend.launches] == ["a", "other"]
    assert not list(control.iterdir()), "each request is acted on once, then removed"


def test_cancel_all(tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.mkdir()
    sim = simulation(tmp_path, {"b": Attempt(hang=True), "a": Attempt(hang=True), "c": 1})
    sim.backend.at(START + 5, lambda: (control / "cancel---all").write_text(""))
    engine, results = sim.run(settings(control_dir=control))
    assert statuses(results) == dict.fromkeys("abc", "cancelled")
    assert sim.backend.cancels == [("a", False), ("b", False)]
    assert [e for e in sim.events if isinstance(e, CancelRequested)] == [CancelRequested(tasks=("a", "b", "c"))]
    assert engine.abort_reason is None


def test_cancelling_unknown_tasks_cancels_the_known_ones_named_after_them(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"a": Attempt(hang=True), "q": 1}, [("a", "q", DEP)])
    with virtual_time(sim.clock):
        engine = sim.engine(settings())
        sim.backend.at(START + 5, lambda: engine.cancel_tasks(["nope", "q", "a"]))
        results = engine.run()
    assert statuses(results) == {"a": "cancelled", "q": "cancelled"}
    assert results["a"].cancelled_by == "user" and results["q"].cancelled_by == "user"
    assert results["q"].error_message == "cancelled by user (`orchestrator cancel`)"


def test_a_missing_control_directory_is_no_request(tmp_path: Path) -> None:
    _, results, _ = run(tmp_path, {"a": 1}, control_dir=tmp_path / "absent")
    assert statuses(results) == {"a": "completed"}


def test_a_workflow_manager_stopped_from_outside_counts_as_cancelled_by_the_user(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"a": Attempt(hang=True)})
    sim.backend.at(START + 5, lambda: sim.backend.cancel("a"))  # e.g. its process group got a SIGINT
    _, results = sim.run(settings())
    assert results["a"].status == TaskStatus.CANCELLED and results["a"].cancelled_by == "user"
    assert results["a"].error_message == "cancelled by user (`orchestrator cancel`)"


@pytest.mark.parametrize(("stop", "status", "cause"), [
    ("user", TaskStatus.CANCELLED, "user"), ("run_timeout", TaskStatus.TIMEOUT, None),
])
def test_a_workflow_manager_asked_to_stop_that_leaves_no_result_ended_as_asked(
        tmp_path: Path, stop: str, status: TaskStatus, cause: str | None) -> None:
    control = tmp_path / "control"
    control.mkdir()
    sim = simulation(tmp_path, {"a": Attempt(hang=True, leaves_result=False)})
    sim.backend.at(START + 30, lambda: (control / "cancel-a").write_text(""))
    _, results = sim.run(settings(control_dir=control, run_timeout=10 if stop == "run_timeout" else None,
                                  retries=2))
    result = results["a"]
    assert (result.status, result.cancelled_by, result.outcome.failure) == (status, cause, "lost")
    assert len(sim.backend.launches) == 1 and result.attempts == []
    if cause is None:
        stderr = sim.run_dir / "tasks" / "a" / "workflow_manager.stderr.log"
        assert result.error_message == f"WorkflowManager exited 0 without a result (see {stderr})"
    assert (result.branch, result.worktree, result.base_sha) == ("gadugi/a", str(tmp_path / "wt" / "a"), "base")


def test_a_run_timeout_with_nothing_left_waiting_says_nothing_of_waiting(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sim = simulation(tmp_path, {"a": Attempt(hang=True), "b": 1})
    looks: list[float] = []

    def shortage(**_: object) -> str | None:
        looks.append(sim.clock.now)
        return "free memory low" if sim.clock.now < START + 20 else None

    # Memory runs short for the first 20 s: launches wait, and say so once.
    monkeypatch.setattr(engine_mod, "shortage", shortage)
    engine, results = sim.run(settings(run_timeout=60))
    assert all(20 <= x.start - START <= 20 + engine_mod.TICK for x in sim.backend.launches)
    # Asked about once per tick while short, not in a tight loop.
    assert len([t for t in looks if t < START + 20]) <= 20 / engine_mod.TICK + 2
    assert [e for e in sim.events if isinstance(e, Waiting)] == [Waiting(reason="free memory low")]
    assert engine.abort_reason == "run timeout of 1m00s reached"
    assert statuses(results) == {"a": "timeout", "b": "completed"}


def test_run_timeout_times_out_running_tasks_and_cancels_the_rest(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"slow": Attempt(hang=True), "next": 1, "quick": 10, "later": 10,
                                  "also": Attempt(hang=True)}
    engine, results, sim = run(tmp_path, scripts, [("slow", "next", DEP), ("quick", "later", DEP)],
                               run_timeout=60, max_parallel=3)
    assert engine.abort_reason == "run timeout of 1m00s reached"
    assert statuses(results) == {"slow": "timeout", "next": "cancelled", "quick": "completed", "later": "completed",
                                 "also": "timeout"}
    assert results["next"].cancelled_by == "run_timeout"
    assert sorted(sim.backend.cancels) == [("also", True), ("slow", True)]
    # On the first tick at or past the deadline, which this schedule puts on the deadline itself.
    assert sim.backend.spans["slow"][1] == START + 60
    assert [e for e in sim.events if isinstance(e, RunTimedOut)] == [
        RunTimedOut(reason="run timeout of 1m00s reached", running=("also", "slow"))]


def test_run_timeout_while_launches_wait_for_disk_says_so(tmp_path: Path) -> None:
    engine, results, sim = run(tmp_path, {"a": 1}, run_timeout=30, min_free_disk=10**18, disk_path=tmp_path)
    assert sim.backend.launches == []
    assert engine.abort_reason is not None and engine.abort_reason.startswith("run timeout of 30.0s reached "
                                                                              "(launches were waiting: free disk")
    assert results["a"].status == TaskStatus.CANCELLED and results["a"].cancelled_by == "run_timeout"


def interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_stops_running_tasks_newest_first_and_cancels_the_queue(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"a": Attempt(hang=True), "b": Attempt(hang=True), "c": Attempt(hang=True), "d": 1})
    sim.backend.at(START + 20, interrupt)
    engine, results = sim.run(settings(max_parallel=3))
    assert engine.interrupted and engine.abort_reason is None
    assert sim.backend.cancels == [("c", False), ("b", False), ("a", False)]
    assert [e for e in sim.events if isinstance(e, Interrupted)] == [Interrupted(running=("a", "b", "c"))]
    assert statuses(results) == dict.fromkeys("abcd", "cancelled")
    assert {r.cancelled_by for r in results.values()} == {"interrupt"}
    assert [x.task_id for x in sim.backend.launches] == ["a", "b", "c"]


def test_after_ctrl_c_a_task_that_fails_is_not_retried(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"slow": Attempt(10, failure="api_error")})
    sim.backend.cancel = lambda task_id, timeout=False: None  # type: ignore[method-assign]  # ends on its own
    sim.backend.at(START + 5, interrupt)
    _, results = sim.run(settings(retries=2))
    assert len(sim.backend.launches) == 1 and results["slow"].status == TaskStatus.FAILED


def test_a_task_cancelled_by_the_user_while_the_run_stops_stays_cancelled_by_the_user(tmp_path: Path) -> None:
    # `resume` re-runs what an interrupt cut short, never what the user cancelled.
    control = tmp_path / "control"
    control.mkdir()
    sim = simulation(tmp_path, {"a": Attempt(hang=True)})
    stop = sim.backend.cancel
    sim.backend.cancel = lambda task_id, timeout=False: None  # type: ignore[method-assign]  # slow to stop

    def cancel_a() -> None:
        sim.backend.cancel = stop  # type: ignore[method-assign]
        (control / "cancel-a").write_text("")

    sim.backend.at(START + 5, interrupt)
    sim.backend.at(START + 10, cancel_a)
    _, results = sim.run(settings(control_dir=control))
    assert results["a"].status == TaskStatus.CANCELLED and results["a"].cancelled_by == "user"


def test_a_second_ctrl_c_kills(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"stubborn": Attempt(hang=True)})
    sim.backend.cancel = lambda task_id, timeout=False: None  # type: ignore[method-assign]  # ignores the stop
    sim.backend.at(START + 5, interrupt)
    sim.backend.at(START + 10, interrupt)
    _, results = sim.run(settings())
    (launch,) = sim.backend.launches
    assert (launch.how, launch.end) == ("kill", START + 10)
    assert [e for e in sim.events if isinstance(e, Killing)] == [Killing(running=("stubborn",))]
    assert results["stubborn"].status == TaskStatus.CANCELLED and results["stubborn"].cancelled_by == "interrupt"


# -- resume: adoption ------------------------------------------------------------------------------


def test_resume_adopts_finished_and_running_tasks_and_starts_only_the_rest(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"done": 1, "live": 40, "after-done": 10, "after-live": 10, "fresh": 10}
    edges = [("done", "after-done", DEP), ("live", "after-live", DEP)]
    sim = simulation(tmp_path, scripts, edges)
    plan = {p.spec.id: p for p in sim.plan.tasks}
    finished = TaskResult(task_id="done", status=TaskStatus.COMPLETED, attempt=1, head_sha="sha-done")
    live_request = sim.request(plan["live"], [], 2)
    sim.registry.transition("live", TaskStatus.RUNNING, attempt=2)
    _, results = sim.run(settings(max_parallel=3), finished={"done": finished},
                         attached={"live": Attached(live_request, wm_pid=1234, wm_create_time=1.0)})
    assert statuses(results) == dict.fromkeys(scripts, "completed")
    starts = {x.task_id: (x.start - START, x.attempt, x.attached) for x in sim.backend.launches}
    assert starts == {"live": (0, 2, True), "after-done": (0, 1, False), "fresh": (0, 1, False),
                      "after-live": (40, 1, False)}
    assert [p.task_id for p in sim.backend.requests["after-done"].predecessors] == ["done"]
    assert results["done"] is finished


def test_resume_judges_attempts_that_ended_unwatched_and_continues_requeued_ones(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"ended-ok": 1, "ended-crashed": 5, "requeued": 5, "blocked": 5},
                     [("ended-ok", "blocked", DEP)])
    plan = {p.spec.id: p for p in sim.plan.tasks}
    ok = TaskResult(task_id="ended-ok", status=TaskStatus.COMPLETED, attempt=1, head_sha="sha-ok")
    crashed = TaskResult(task_id="ended-crashed", status=TaskStatus.FAILED, attempt=1)
    crashed.outcome.failure = "crashed"
    for tid in ("ended-ok", "ended-crashed"):
        sim.registry.transition(tid, TaskStatus.RUNNING, attempt=1)
    ended = {"ended-ok": (sim.request(plan["ended-ok"], [], 1), ok),
             "ended-crashed": (sim.request(plan["ended-crashed"], [], 1), crashed)}
    left = TaskResult(task_id="requeued", status=TaskStatus.CANCELLED, attempt=2, head_sha="wip")
    _, results = sim.run(settings(max_parallel=3, retries=1, backoff_base=4), ended=ended,
                         requeued={"requeued": Requeued(attempts_used=2, previous=left)})
    assert sim.continued_from["requeued", 3] is left  # it continues the work the last attempt left
    assert statuses(results) == dict.fromkeys(["ended-ok", "ended-crashed", "requeued", "blocked"], "completed")
    launched = {x.task_id: x.attempt for x in sim.backend.launches}
    assert launched == {"ended-crashed": 2, "requeued": 3, "blocked": 1}
    assert [a.failure for a in results["ended-crashed"].attempts] == ["crashed"]
    assert sim.backend.started("blocked")[0].start == START


@pytest.mark.parametrize("failure", sorted(PERMANENT - {"auth"}))
def test_each_permanent_failure_repeated_stops_new_launches(tmp_path: Path, failure: FailureClass) -> None:
    """Every permanent class counts (agent_error and setup_failed too: every task runs the same CLI
    and the same setup, so they repeat)."""
    scripts: dict[str, Script] = {t: Attempt(1, failure=failure, message="the same") for t in "abcd"}
    engine, results, sim = run(tmp_path, scripts, max_parallel=1, retries=2)
    assert [x.task_id for x in sim.backend.launches] == ["a", "b", "c"]
    assert results["d"].cancelled_by == "breaker"


def test_validation_failures_never_stop_launches(tmp_path: Path) -> None:
    """One task's work falling short says nothing of the others'."""
    scripts: dict[str, Script] = {t: Attempt(1, failure="validation") for t in "abcd"}
    engine, results, sim = run(tmp_path, scripts, max_parallel=1, retries=2)
    assert engine.abort_reason is None and [x.task_id for x in sim.backend.launches] == list("abcd")
    assert set(statuses(results).values()) == {"failed"}
