"""ExecutionEngine: a list scheduler over the plan's DAG.

Whenever a slot is free, the best ready task starts (priority, then longest remaining path, then
input order); nothing waits for a whole "wave" to finish. A task whose dependency failed ends
`cancelled` with the reason; a conflict-only predecessor never blocks, it only orders.
"""
from __future__ import annotations

import heapq
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.atomic import read_json
from orchestrator.backends.base import Backend, BackendEvent
from orchestrator.errors import StateError
from orchestrator.models import EdgeKind, Plan, PlannedTask, TaskResult, TaskStatus, iso
from orchestrator.registry import ProcessRegistry
from orchestrator.wire import Predecessor, TaskRequest

RESOURCE_SAMPLE_INTERVAL = 2.0  # seconds between psutil samples of running agents
BREAKER_THRESHOLD = 3  # same permanent failure this many times in a row stops new launches

# Failures that no retry or other task will fix by itself. Not being logged in holds for the whole
# account, so it stops the run at the first occurrence.
PERMANENT_FAILURES = frozenset({"auth", "max_turns", "budget", "verify_failed"})
ACCOUNT_WIDE_FAILURES = frozenset({"auth"})

MakeRequest = Callable[[PlannedTask, list[Predecessor], int], TaskRequest]
Observer = Callable[[str, str, dict[str, Any]], None]


@dataclass
class _TaskState:
    planned: PlannedTask
    preds: dict[str, EdgeKind] = field(default_factory=dict)
    succs: dict[str, EdgeKind] = field(default_factory=dict)
    waiting: int = 0
    result: TaskResult | None = None
    request: TaskRequest | None = None


class ExecutionEngine:
    """Runs a Plan through a Backend under a concurrency limit and records every transition."""

    def __init__(
        self,
        plan: Plan,
        *,
        max_parallel: int,
        backend: Backend,
        registry: ProcessRegistry,
        make_request: MakeRequest,
        remaining_path: dict[str, int] | None = None,
        observer: Observer | None = None,
    ) -> None:
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.plan = plan
        self.max_parallel = max_parallel
        self.backend = backend
        self.registry = registry
        self.make_request = make_request
        self.observer = observer or (lambda task_id, what, data: None)
        self.tasks: dict[str, _TaskState] = {p.spec.id: _TaskState(p) for p in plan.tasks}
        for edge in plan.edges:
            self.tasks[edge.after].preds[edge.before] = edge.kind
            self.tasks[edge.before].succs[edge.after] = edge.kind
        for state in self.tasks.values():
            state.waiting = len(state.preds)
        lrp = remaining_path or {}
        self._rank = {
            tid: (s.planned.spec.priority, -lrp.get(tid, 1), s.planned.spec.index) for tid, s in self.tasks.items()
        }
        self._ready: list[tuple[tuple[int, int, int], str]] = []
        self.running: set[str] = set()
        self.stopping = False  # interrupted: running tasks are being stopped
        self.halted = False  # no new launches (interrupt or circuit breaker)
        self.interrupted = False
        self.peak_parallel = 0
        self.abort_reason: str | None = None
        self.breaker_threshold = BREAKER_THRESHOLD
        self._failure_streak: tuple[str, int] = ("", 0)

    # -- public ----------------------------------------------------------------------------------

    def run(self) -> dict[str, TaskResult]:
        """Run every task to a terminal state; Ctrl-C once stops gracefully, twice kills."""
        for tid, state in self.tasks.items():
            if state.waiting == 0:
                heapq.heappush(self._ready, (self._rank[tid], tid))
        last_sample = time.monotonic()
        while True:
            try:
                self._launch_ready()
                if not self.running:
                    break
                try:
                    event = self.backend.events.get(timeout=RESOURCE_SAMPLE_INTERVAL)
                except queue.Empty:
                    event = None
                if event is not None:
                    self._handle(event)
                if time.monotonic() - last_sample >= RESOURCE_SAMPLE_INTERVAL:
                    last_sample = time.monotonic()
                    self.registry.sample_resources()
            except KeyboardInterrupt:
                self._interrupt()
        self._cancel_unstarted(self.abort_reason or ("run interrupted" if self.interrupted else "not started"))
        return {tid: s.result for tid, s in self.tasks.items() if s.result is not None}

    # -- scheduling ------------------------------------------------------------------------------

    def _launch_ready(self) -> None:
        while self._ready and len(self.running) < self.max_parallel and not self.halted:
            _, tid = heapq.heappop(self._ready)
            state = self.tasks[tid]
            if state.result is not None:  # cancelled while waiting
                continue
            preds = [
                Predecessor(task_id=p, branch=self.tasks[p].planned.branch, head_sha=r.head_sha)
                for p in state.preds
                if (r := self.tasks[p].result) is not None and r.status == TaskStatus.COMPLETED and r.head_sha
            ]
            request = self.make_request(state.planned, preds, 1)
            state.request = request
            self.backend.submit(request)
            self.running.add(tid)
            self.peak_parallel = max(self.peak_parallel, len(self.running))
            self.registry.transition(tid, TaskStatus.RUNNING, phase="setup", attempt=request.attempt)
            self.observer(tid, "started", {"branch": state.planned.branch, "predecessors": [p.task_id for p in preds]})

    def _handle(self, event: BackendEvent) -> None:
        tid = event.task_id
        state = self.tasks.get(tid)
        if state is None:
            return
        if event.kind == "exit":
            self._finish(state, event.data.get("returncode"))
            return
        data = event.data
        if event.name == "phase" and data.get("phase"):
            self.registry.update(tid, phase=data["phase"])
            self.observer(tid, "phase", data)
        elif event.name == "agent_started":
            self.registry.update(tid, pid=data.get("pid"), pid_create_time=data.get("create_time"))
        elif event.name == "heartbeat":
            self.registry.heartbeat(
                tid,
                last_event_at=iso(),
                last_event=data.get("summary"),
                session_id=data.get("session_id"),
                turns=data.get("turns") or 0,
                cost_usd=data.get("cost_usd"),
                tokens=data.get("tokens"),
            )
            self.observer(tid, "heartbeat", data)
        elif event.name == "log":
            self.observer(tid, "log", data)

    def _finish(self, state: _TaskState, returncode: int | None) -> None:
        tid = state.planned.spec.id
        self.running.discard(tid)
        result = self._read_result(state, returncode)
        state.result = result
        self.registry.transition(
            tid,
            result.status,
            exit_code=result.outcome.exit_code,
            error_message=result.error_message,
            session_id=result.outcome.session_id,
            cost_usd=result.outcome.cost_usd,
            tokens=result.outcome.tokens.model_dump(),
            turns=result.outcome.num_turns,
            phase="done",
        )
        self.observer(tid, "finished", {"result": result})
        self._check_breaker(result)
        for succ, kind in state.succs.items():
            succ_state = self.tasks[succ]
            succ_state.waiting -= 1
            if kind == EdgeKind.DEPENDENCY and result.status != TaskStatus.COMPLETED:
                self._cancel(succ, f"dependency '{tid}' {result.status.value}")
            elif succ_state.waiting == 0 and succ_state.result is None:
                heapq.heappush(self._ready, (self._rank[succ], succ))

    def _check_breaker(self, result: TaskResult) -> None:
        """Stop launching when the same permanent failure keeps happening (e.g. not logged in):
        the remaining tasks would only fail the same way and cost money doing it."""
        failure = result.outcome.failure
        if result.status == TaskStatus.COMPLETED or failure not in PERMANENT_FAILURES:
            self._failure_streak = ("", 0)
            return
        last, count = self._failure_streak
        count = count + 1 if failure == last else 1
        self._failure_streak = (failure, count)
        if self.abort_reason is None and (failure in ACCOUNT_WIDE_FAILURES or count >= self.breaker_threshold):
            message = result.error_message or result.outcome.message or failure
            self.abort_reason = f"stopped launching after {count} task(s) failed the same way: {message}"
            self.halted = True
            self.observer(result.task_id, "breaker", {"reason": self.abort_reason})
            self._cancel_unstarted(self.abort_reason)

    def _read_result(self, state: _TaskState, returncode: int | None) -> TaskResult:
        assert state.request is not None
        try:
            data = read_json(state.request.result_path)
        except StateError:  # a torn result.json (kept aside by read_json) counts as no result
            data = None
        if isinstance(data, dict):
            try:
                return TaskResult.model_validate(data)
            except ValueError:
                pass
        status = TaskStatus.CANCELLED if self.stopping else TaskStatus.FAILED
        return TaskResult(
            task_id=state.planned.spec.id,
            status=status,
            attempt=state.request.attempt,
            branch=state.planned.branch,
            worktree=str(state.planned.worktree),
            base_sha=self.plan.base_sha,
            error_message=f"WorkflowManager exited {returncode} without a result "
            f"(see {state.request.task_dir / 'workflow_manager.stderr.log'})",
        )

    def _cancel(self, tid: str, reason: str) -> None:
        """End a task that never started, and, through dependency edges, everything after it."""
        state = self.tasks[tid]
        if state.result is not None or tid in self.running:
            return
        state.result = TaskResult(
            task_id=tid,
            status=TaskStatus.CANCELLED,
            attempt=0,
            branch=state.planned.branch,
            worktree=str(state.planned.worktree),
            base_sha=self.plan.base_sha,
            error_message=reason,
        )
        self.registry.transition(tid, TaskStatus.CANCELLED, error_message=reason)
        self.observer(tid, "cancelled", {"reason": reason})
        for succ, kind in state.succs.items():
            self.tasks[succ].waiting -= 1
            if kind == EdgeKind.DEPENDENCY:
                self._cancel(succ, f"dependency '{tid}' cancelled")
            elif self.tasks[succ].waiting == 0 and self.tasks[succ].result is None and not self.halted:
                heapq.heappush(self._ready, (self._rank[succ], succ))

    def _cancel_unstarted(self, reason: str) -> None:
        for tid, state in self.tasks.items():
            if state.result is None and tid not in self.running:
                self._cancel(tid, reason)

    def _interrupt(self) -> None:
        if not self.stopping:
            self.stopping = self.halted = True
            self.interrupted = True
            self.observer("", "interrupt", {"running": sorted(self.running)})
            self._cancel_unstarted("run interrupted")
            # Reverse launch order, as tox does: the newest work has the least to lose.
            for tid in reversed(sorted(self.running, key=lambda t: self._rank[t])):
                self.backend.cancel(tid)
        else:
            self.observer("", "kill", {"running": sorted(self.running)})
            for tid in list(self.running):
                self.backend.kill(tid)
