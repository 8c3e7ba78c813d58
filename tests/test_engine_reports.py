"""What the scheduler records, on a virtual clock: the registry entry and the run's events through
a task's life, what a dependent starts from, what a resumed run adopts, and liveness."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from benchmarks.virtual import START, Attempt, Script, Simulation, virtual_time
from orchestrator.backends.base import BackendEvent
from orchestrator.models import TaskResult, TaskStatus, ValidationResult
from orchestrator.observe.events import (
    FixupStarted,
    Heartbeat,
    Interrupted,
    Killing,
    PhaseChanged,
    Retrying,
    Stalled,
    TaskAttached,
    TaskFinished,
    TaskLog,
    TaskStarted,
)
from orchestrator.run.engine import Attached
from orchestrator.state.journal import read_journal
from orchestrator.state.registry_models import ProcessInfo

from test_engine import CONFLICT, DEP, run, settings, simulation, statuses


def registry_at(sim: Simulation, when: float, task_id: str) -> list[ProcessInfo]:
    """The task's registry entry as it is at virtual time `when` (filled in once the run got there)."""
    seen: list[ProcessInfo] = []
    sim.backend.at(when, lambda: seen.append(sim.registry.get(task_id)))  # type: ignore[arg-type]
    return seen


def of_type(sim: Simulation, kind: type) -> list[Any]:
    return [e for e in sim.events if isinstance(e, kind)]


# -- what a WorkflowManager reports while it runs --------------------------------------------------

REPORTS = (
    (1, "phase", {"phase": "agent"}),
    (2, "agent_started", {"pid": 4321, "create_time": 5.0}),
    (3, "heartbeat", {"summary": "tool_use: Edit", "session_id": "s-1", "turns": 3, "cost_usd": 0.02,
                      "tokens": {"input": 10, "output": 5}, "events": 7}),
    (4, "stalled", {"reason": "no output for 10m"}),
    (5, "log", {"message": "verify: 2 failed"}),
    (6, "fixup", {"round": 1, "rounds": 2, "reason": "verify failed"}),
)


def test_what_a_running_task_reports_reaches_the_registry_and_the_run_log(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"t": Attempt(20, events=REPORTS)})
    seen = registry_at(sim, START + 10, "t")
    sim.run(settings())
    (entry,) = seen
    assert (entry.status, entry.phase.value, entry.pid, entry.pid_create_time) == (TaskStatus.RUNNING, "agent", 4321, 5.0)
    assert (entry.last_event, entry.session_id, entry.turns, entry.cost_usd) == ("tool_use: Edit", "s-1", 3, 0.02)
    assert (entry.tokens.input, entry.tokens.output) == (10, 5) and entry.last_event_at is not None
    assert (entry.fix_rounds, entry.fixing) == (1, "verify failed")
    reported = [e for e in sim.events if isinstance(e, (PhaseChanged, Heartbeat, Stalled, TaskLog, FixupStarted))]
    assert reported == [
        PhaseChanged(task_id="t", phase="agent"),
        Heartbeat(task_id="t", summary="tool_use: Edit", session_id="s-1", turns=3, cost_usd=0.02,
                  tokens={"input": 10, "output": 5}, events=7),
        Stalled(task_id="t", reason="no output for 10m"),
        TaskLog(task_id="t", message="verify: 2 failed"),
        FixupStarted(task_id="t", round=1, rounds=2, reason="verify failed"),
    ]


def test_reports_with_fields_missing_read_as_empty(tmp_path: Path) -> None:
    # An older WorkflowManager may leave fields out, or send null for what it does not know yet.
    bare = ((1, "phase", {}), (2, "heartbeat", {"turns": None, "events": None}), (3, "stalled", {}),
            (4, "log", {}), (5, "fixup", {}), (6, "something new", {"phase": "verify"}))
    sim = simulation(tmp_path, {"t": Attempt(20, events=bare)})
    seen = registry_at(sim, START + 10, "t")
    engine, _ = sim.run(settings())
    reported = [e for e in sim.events if isinstance(e, (PhaseChanged, Heartbeat, Stalled, TaskLog, FixupStarted))]
    assert reported == [Heartbeat(task_id="t"), Stalled(task_id="t", reason=""), TaskLog(task_id="t", message=""),
                        FixupStarted(task_id="t", round=0, rounds=0, reason="")]
    (entry,) = seen
    assert (entry.phase.value, entry.fix_rounds, entry.fixing) == ("setup", 0, "")
    assert entry.last_event_at is not None  # a heartbeat with no summary is still news of the task
    assert engine.spent_usd() == 0


def test_late_reports_of_an_earlier_attempt_change_nothing(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"t": [Attempt(10, failure="crashed"), Attempt(30)]})
    late = [BackendEvent("event", "t", 1, "phase", {"phase": "verify"}), BackendEvent("exit", "t", 1, "exit", {}),
            BackendEvent("event", "ghost", 1, "phase", {"phase": "verify"})]
    sim.backend.at(START + 25, lambda: [sim.backend.events.put(e) for e in late])
    seen = registry_at(sim, START + 26, "t")
    _, results = sim.run(settings(retries=1, backoff_base=1))
    (second,) = [x for x in sim.backend.launches if x.attempt == 2]
    assert second.end == second.start + 30 and results["t"].status == TaskStatus.COMPLETED
    assert seen[0].phase.value == "setup" and not of_type(sim, PhaseChanged)


# -- the registry and the run log through a task's life -------------------------------------------


def test_each_attempt_starts_from_a_clean_entry(tmp_path: Path) -> None:
    fixing = Attempt(10, failure="crashed", events=((5, "fixup", {"round": 2, "rounds": 2, "reason": "checks"}),))
    sim = simulation(tmp_path, {"t": [fixing, Attempt(10)]})
    seen = registry_at(sim, START + 6, "t")
    sim.backend.at(START + 12, lambda: seen.append(sim.registry.get("t")))  # type: ignore[arg-type]
    sim.run(settings(retries=1, backoff_base=0))
    during, retried = seen
    assert (during.fix_rounds, during.fixing) == (2, "checks")
    assert (retried.status, retried.phase.value, retried.attempt) == (TaskStatus.RUNNING, "setup", 2)
    assert (retried.fix_rounds, retried.fixing) == (0, None)


def test_a_task_waiting_to_retry_shows_as_queued_with_its_wait(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"t": [Attempt(10, failure="api_error", message="529 overloaded"), Attempt(10)]})
    seen = registry_at(sim, START + 11, "t")
    sim.run(settings(retries=2, backoff_base=100))
    (entry,) = seen
    assert (entry.status, entry.attempt) == (TaskStatus.QUEUED, 2)
    wait = entry.retry_wait
    assert wait is not None and (wait.retry, wait.retries, wait.failure) == (1, 2, "api_error")
    (requeued,) = [r for r in read_journal(sim.registry.journal.path)  # type: ignore[union-attr]
                   if r.get("event") == "transition" and r.get("to") == "queued"]
    assert requeued["reason"].startswith("attempt 1 failed (api_error): 529 overloaded; retrying in ")
    (retrying,) = of_type(sim, Retrying)
    assert (retrying.task_id, retrying.attempt, retrying.error, retrying.failure) == ("t", 1, "529 overloaded",
                                                                                       "api_error")
    first, second = sim.backend.started("t")
    assert first.end is not None and retrying.delay == pytest.approx(second.start - first.end, abs=0.011)


def test_a_finished_task_leaves_its_outcome_in_the_registry_and_the_run_log(tmp_path: Path) -> None:
    outcome = {"num_turns": 4, "tokens": {"input": 100, "output": 20}, "exit_code": 0}
    sim = simulation(tmp_path, {"t": [Attempt(5, failure="crashed", cost_usd=0.1), Attempt(5, cost_usd=0.3,
                                                                                          outcome=outcome)]})
    sim.backend.wm_pid = 4242
    _, results = sim.run(settings(retries=1, backoff_base=0))
    entry = sim.registry.get("t")
    assert entry is not None and (entry.status, entry.phase.value) == (TaskStatus.COMPLETED, "done")
    assert (entry.wm_pid, entry.wm_create_time) == (4242, START + 5)  # the second attempt's
    assert (entry.session_id, entry.turns, entry.exit_code) == ("session-t-2", 4, 0)
    assert entry.cost_usd == pytest.approx(0.4) and (entry.tokens.input, entry.tokens.output) == (100, 20)
    assert of_type(sim, TaskFinished) == [TaskFinished(task_id="t", result=results["t"])]
    assert results["t"].cancelled_by is None and results["t"].error_message is None
    assert of_type(sim, TaskStarted) == [TaskStarted(task_id="t", branch="gadugi/t", predecessors=(), attempt=1),
                                         TaskStarted(task_id="t", branch="gadugi/t", predecessors=(), attempt=2)]


def test_a_failed_task_leaves_why_in_the_registry(tmp_path: Path) -> None:
    _, _, sim = run(tmp_path, {"t": Attempt(5, failure="max_turns", message="turn limit",
                                            outcome={"exit_code": 1})})
    entry = sim.registry.get("t")
    assert entry is not None and (entry.status, entry.error_message, entry.exit_code) == (TaskStatus.FAILED,
                                                                                       "turn limit", 1)
    assert (entry.phase.value, entry.session_id) == ("done", "session-t-1")


# -- what a dependent starts from ------------------------------------------------------------------


def test_a_dependent_starts_from_its_predecessors_work_in_short(tmp_path: Path) -> None:
    files = [f"f{i}.py" for i in range(60)]
    scripts: dict[str, Script] = {"base": Attempt(5, final_message="x" * 2000, changed_files=files), "next": 5}
    _, _, sim = run(tmp_path, scripts, [("base", "next", DEP)])
    (pred,) = sim.backend.requests["next"].predecessors
    assert (pred.task_id, pred.branch, pred.head_sha, pred.title) == ("base", "gadugi/base", "sha-base-1", "base")
    assert pred.final_message == "x" * 1200 and pred.changed_files == files[:50]
    assert of_type(sim, TaskStarted)[-1] == TaskStarted(task_id="next", branch="gadugi/next", predecessors=("base",),
                                                        attempt=1)


def test_finished_conflict_partners_come_in_plan_order_and_failed_ones_not_at_all(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {"alpha": 1, "zeta": 1, "bad": Attempt(1, failure="agent_error"), "last": 1}
    edges = [("alpha", "last", CONFLICT), ("zeta", "last", CONFLICT), ("bad", "last", CONFLICT)]
    sim = simulation(tmp_path, scripts, edges, priorities={"zeta": 1, "alpha": 2})
    sim.run(settings(max_parallel=3))
    assert [p.task_id for p in sim.backend.requests["last"].predecessors] == ["zeta", "alpha"]


# -- resume ----------------------------------------------------------------------------------------


def test_an_attached_task_is_announced_and_its_agent_pid_kept(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"a": 10, "b": 10, "after": 10}, [("a", "after", DEP), ("b", "after", DEP)])
    plan = {p.spec.id: p for p in sim.plan.tasks}
    for tid in ("a", "b"):
        sim.registry.transition(tid, TaskStatus.RUNNING, attempt=2)
    sim.registry.update("b", pid=777, pid_create_time=7.0)
    attached = {"a": Attached(sim.request(plan["a"], [], 2), wm_pid=11, wm_create_time=1.0, agent_pid=4321,
                              agent_create_time=5.0),
                "b": Attached(sim.request(plan["b"], [], 2), wm_pid=12, wm_create_time=1.0)}
    seen = {tid: registry_at(sim, START + 1, tid) for tid in ("a", "b")}
    _, results = sim.run(settings(), attached=attached)
    assert (seen["a"][0].pid, seen["a"][0].pid_create_time) == (4321, 5.0)
    assert (seen["b"][0].pid, seen["b"][0].pid_create_time) == (777, 7.0)
    assert of_type(sim, TaskAttached) == [TaskAttached(task_id="a", pid=11, attempt=2),
                                          TaskAttached(task_id="b", pid=12, attempt=2)]
    assert sim.backend.attached == {"a": (11, 1.0), "b": (12, 1.0)}
    assert [x.task_id for x in sim.backend.launches] == ["a", "b", "after"]
    assert statuses(results) == dict.fromkeys(["a", "b", "after"], "completed")


def test_ctrl_c_stops_attached_tasks_too(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"adopted": Attempt(hang=True), "new": Attempt(hang=True)})
    sim.registry.transition("adopted", TaskStatus.RUNNING, attempt=1)
    request = sim.request(sim.plan.tasks[0], [], 1)
    sim.backend.at(START + 5, lambda: os.kill(os.getpid(), signal.SIGINT))
    _, results = sim.run(settings(), attached={"adopted": Attached(request, wm_pid=1, wm_create_time=1.0)})
    assert sim.backend.cancels == [("new", False), ("adopted", False)]
    assert {r.cancelled_by for r in results.values()} == {"interrupt"}


def test_a_task_both_released_and_attached_on_resume_runs_once(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"done": 1, "live": 10}, [("done", "live", DEP)])
    plan = {p.spec.id: p for p in sim.plan.tasks}
    sim.registry.transition("live", TaskStatus.RUNNING, attempt=1)
    finished = TaskResult(task_id="done", status=TaskStatus.COMPLETED, head_sha="sha")
    _, results = sim.run(settings(), finished={"done": finished},
                         attached={"live": Attached(sim.request(plan["live"], [], 1), wm_pid=1, wm_create_time=1.0)})
    assert [(x.task_id, x.attached) for x in sim.backend.launches] == [("live", True)]
    assert statuses(results) == {"done": "completed", "live": "completed"}


def test_adopted_results_are_not_recorded_again_nor_counted_by_the_breaker(tmp_path: Path) -> None:
    scripts: dict[str, Script] = {t: Attempt(1, failure="max_turns") for t in ("old1", "old2", "old3", "new")}
    scripts["last"] = 1
    sim = simulation(tmp_path, scripts)
    finished = {}
    for tid in ("old1", "old2", "old3"):
        finished[tid] = TaskResult(task_id=tid, status=TaskStatus.FAILED, error_message="turn limit")
        finished[tid].outcome.failure = "max_turns"
    engine, results = sim.run(settings(max_parallel=1), finished=finished)
    assert engine.abort_reason is None and [x.task_id for x in sim.backend.launches] == ["new", "last"]
    assert [e.task_id for e in of_type(sim, TaskFinished)] == ["new", "last"]
    entry = sim.registry.get("old1")
    assert entry is not None and entry.status == TaskStatus.QUEUED  # the registry had it already
    assert results["old1"] is finished["old1"]


def test_dependents_of_an_interrupted_task_are_interrupted_too(tmp_path: Path) -> None:
    # So that `resume` runs them, where a dependency's failure would have cancelled them for good.
    sim = simulation(tmp_path, {"cut": 1, "after": 1, "after-after": 1, "failed": 1, "after-failed": 1},
                     [("cut", "after", DEP), ("after", "after-after", DEP), ("failed", "after-failed", DEP)])
    cut = TaskResult(task_id="cut", status=TaskStatus.CANCELLED, cancelled_by="interrupt")
    failed = TaskResult(task_id="failed", status=TaskStatus.FAILED)
    _, results = sim.run(settings(), finished={"cut": cut, "failed": failed})
    assert results["after"].cancelled_by == "interrupt" and results["after-after"].cancelled_by == "interrupt"
    assert results["after-failed"].cancelled_by == "dependency"
    assert results["after-failed"].error_message == "dependency 'failed' failed"
    assert sim.backend.launches == []


def test_an_attempt_that_failed_unwatched_retries_after_its_backoff(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"t": 5})
    crashed = TaskResult(task_id="t", status=TaskStatus.FAILED, attempt=1)
    crashed.outcome.failure = "crashed"
    sim.registry.transition("t", TaskStatus.RUNNING, attempt=1)
    _, results = sim.run(settings(retries=1, backoff_base=50), ended={"t": (sim.request(sim.plan.tasks[0], [], 1),
                                                                             crashed)})
    (retry,) = sim.backend.launches
    delay = results["t"].attempts[0].retry_delay_seconds
    assert delay is not None and delay > 1 and retry.start - START == pytest.approx(delay, abs=0.011)


def test_an_attempt_that_ended_unwatched_leaves_its_checks_in_the_registry(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"t": 5})
    done = TaskResult(task_id="t", status=TaskStatus.COMPLETED, head_sha="sha",
                      validation=ValidationResult(verify_passed=True, fix_rounds=1))
    sim.registry.transition("t", TaskStatus.RUNNING, attempt=1)
    sim.run(settings(), ended={"t": (sim.request(sim.plan.tasks[0], [], 1), done)})
    entry = sim.registry.get("t")
    assert entry is not None and entry.validation == ValidationResult(verify_passed=True, fix_rounds=1)


# -- liveness --------------------------------------------------------------------------------------


def test_running_tasks_get_heartbeats_while_their_process_lives(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone_created = psutil.Process(gone.pid).create_time()
    gone.wait()
    sim = simulation(tmp_path, {"live": 12, "wm-only": 12, "dead": 12, "unknown": 12})
    plan = {p.spec.id: p for p in sim.plan.tasks}
    me = psutil.Process()
    for tid in plan:
        sim.registry.transition(tid, TaskStatus.RUNNING, attempt=1)
    sim.registry.update("wm-only", wm_pid=me.pid, wm_create_time=me.create_time())
    sim.registry.update("dead", pid=gone.pid, pid_create_time=gone_created)
    attached = {tid: Attached(sim.request(plan[tid], [], 1), wm_pid=1, wm_create_time=1.0) for tid in plan}
    # The live agent is another process than this one (our parent, started before us), so a check
    # of the wrong pid shows.
    agent = me.parent()
    assert agent is not None
    attached["live"].agent_pid, attached["live"].agent_create_time = agent.pid, agent.create_time()
    beats: list[str] = []
    sampled: list[float] = []
    heartbeat, sample = sim.registry.heartbeat, sim.registry.sample_resources
    sim.registry.heartbeat = lambda tid, **kw: beats.append(tid) or heartbeat(tid, **kw)  # type: ignore[method-assign]
    sim.registry.sample_resources = lambda: sampled.append(sim.clock.now) or sample()  # type: ignore[method-assign]
    with virtual_time(sim.clock, liveness_interval=5):
        engine = sim.engine(settings(max_parallel=4))
        engine.registry.snapshot = _without("unknown", engine.registry.snapshot)  # type: ignore[method-assign]
        engine.run(attached=attached)
    assert sorted(set(beats)) == ["live", "wm-only"] and beats.count("live") == 2
    assert [t - START for t in sampled] == [5, 10]


def _without(task_id: str, snapshot: Any) -> Any:
    """A registry snapshot that lacks `task_id` (another process rewrote the file meanwhile)."""
    return lambda: {k: v for k, v in snapshot().items() if k != task_id}


# -- signals ---------------------------------------------------------------------------------------


def test_the_signal_handlers_are_put_back_after_a_run(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run(tmp_path, {"a": 1})
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_sigterm_stops_gracefully_like_ctrl_c(tmp_path: Path) -> None:
    sim = simulation(tmp_path, {"a": Attempt(hang=True), "b": 1}, [("a", "b", DEP)])
    sim.backend.at(START + 5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    engine, results = sim.run(settings())
    assert engine.interrupted and sim.backend.cancels == [("a", False)]
    assert {r.cancelled_by for r in results.values()} == {"interrupt"}


def test_an_engine_in_another_thread_stops_gracefully_on_keyboard_interrupt(tmp_path: Path) -> None:
    # Signal handlers belong to the main thread: elsewhere the engine leaves them alone, and a
    # KeyboardInterrupt raised into its loop is its Ctrl-C.
    sim = simulation(tmp_path, {"a": Attempt(hang=True), "b": Attempt(hang=True), "c": 1})

    def interrupt() -> None:
        raise KeyboardInterrupt

    sim.backend.at(START + 5, interrupt)
    handler = signal.getsignal(signal.SIGINT)
    outcome: list[Any] = []
    with virtual_time(sim.clock):
        engine = sim.engine(settings())
        worker = threading.Thread(target=lambda: outcome.append(engine.run()))
        worker.start()
        worker.join()
    (results,) = outcome
    assert signal.getsignal(signal.SIGINT) is handler
    assert engine.interrupted and sorted(sim.backend.cancels) == [("a", False), ("b", False)]
    assert of_type(sim, Interrupted) == [Interrupted(running=("a", "b"))] and not of_type(sim, Killing)
    assert statuses(results) == dict.fromkeys("abc", "cancelled")


def test_a_second_interrupt_while_the_first_is_handled_kills(tmp_path: Path) -> None:
    # Outside the main thread a KeyboardInterrupt can land anywhere, even in the graceful stop.
    sim = simulation(tmp_path, {"a": Attempt(hang=True), "b": Attempt(hang=True)})
    graceful = sim.backend.cancel

    def cancel_interrupted(task_id: str, *, timeout: bool = False) -> None:
        sim.backend.cancel = graceful  # type: ignore[method-assign]
        raise KeyboardInterrupt

    def interrupt() -> None:
        sim.backend.cancel = cancel_interrupted  # type: ignore[method-assign]
        raise KeyboardInterrupt

    sim.backend.at(START + 5, interrupt)
    with virtual_time(sim.clock):
        engine = sim.engine(settings())
        worker = threading.Thread(target=engine.run)
        worker.start()
        worker.join()
    assert [(x.task_id, x.how, x.end) for x in sim.backend.launches] == [("a", "kill", START + 5),
                                                                       ("b", "kill", START + 5)]
    assert of_type(sim, Killing) == [Killing(running=("a", "b"))]
