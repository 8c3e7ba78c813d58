"""ExecutionEngine: a list scheduler over the plan's DAG.

Whenever a slot is free, the best ready task starts (priority, then longest remaining path, then
input order); nothing waits for a whole "wave" to finish. A task whose dependency failed ends
`cancelled` with the reason; a conflict-only predecessor never blocks, it only orders. Transient
failures go back to the queue after a backoff; the registry never sees them as terminal.
"""
from __future__ import annotations

import heapq
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from orchestrator.agents.failures import PERMANENT, describe_failure, failure_kind
from orchestrator.backends.base import Backend, BackendEvent
from orchestrator.config.durations import format_duration
from orchestrator.models import (
    AttemptRecord,
    CancelCause,
    EdgeKind,
    Plan,
    PlannedTask,
    TaskResult,
    TaskStatus,
    cancel_message,
    iso,
)
from orchestrator.observe.events import (
    BreakerTripped,
    CancelRequested,
    FixupStarted,
    Heartbeat,
    Interrupted,
    Killing,
    Observer,
    PhaseChanged,
    Retrying,
    RunTimedOut,
    Stalled,
    TaskAttached,
    TaskCancelled,
    TaskFinished,
    TaskLog,
    TaskStarted,
    Waiting,
)
from orchestrator.process import stops_deferred
from orchestrator.proctree import is_alive
from orchestrator.run.admission import shortage
from orchestrator.run.results import load_task_result
from orchestrator.run.retry import BACKOFF_BASE, BACKOFF_CAP, retry_delay
from orchestrator.state.registry import ProcessRegistry
from orchestrator.state.registry_models import RetryWait
from orchestrator.task.wire import Predecessor, TaskRequest

# Seconds between housekeeping passes (control files, timers, Ctrl-C) while waiting on events.
TICK = 0.25
LIVENESS_INTERVAL = 5.0  # seconds between liveness heartbeats and resource samples
BREAKER_THRESHOLD = 3  # same permanent failure this many times in a row stops new launches

MakeRequest = Callable[[PlannedTask, list[Predecessor], int, "TaskResult | None"], TaskRequest]


@dataclass
class EngineSettings:
    max_parallel: int = 4
    retries: int = 2
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    run_timeout: float | None = None
    launch_stagger: float = 0.5
    min_free_memory: int = 0
    min_free_disk: int = 0
    disk_path: Path = Path(".")
    control_dir: Path | None = None
    breaker_threshold: int = BREAKER_THRESHOLD
    run_budget_usd: float | None = None


@dataclass
class Attached:
    """A WorkflowManager from an earlier orchestrator process that is still running (resume)."""

    request: TaskRequest
    wm_pid: int
    wm_create_time: float
    agent_pid: int | None = None  # as the registry last recorded it, so a second Ctrl-C reaches it
    agent_create_time: float | None = None


@dataclass
class Requeued:
    """A task `resume` puts back in the queue: `attempts_used` attempts already ran (or were
    recorded), the next one continues from `previous` when it left work behind."""

    attempts_used: int
    previous: TaskResult | None = None


@dataclass
class _TaskState:
    planned: PlannedTask
    preds: dict[str, EdgeKind] = field(default_factory=dict)  # dependencies only
    succs: dict[str, EdgeKind] = field(default_factory=dict)  # dependents only
    exclusive: set[str] = field(default_factory=set)  # conflict partners: never at the same time
    scopes: list[frozenset[str]] = field(default_factory=list)  # groups of the plan's shared scopes it is in
    waiting: int = 0
    attempt: int = 0
    result: TaskResult | None = None
    request: TaskRequest | None = None
    previous: TaskResult | None = None
    history: list[AttemptRecord] = field(default_factory=list)
    cancel_cause: CancelCause | None = None  # why we asked its running attempt to stop


class ExecutionEngine:
    """Runs a Plan through a Backend under a concurrency limit and records every transition."""

    def __init__(
        self,
        plan: Plan,
        *,
        settings: EngineSettings,
        backend: Backend,
        registry: ProcessRegistry,
        make_request: MakeRequest,
        remaining_path: Mapping[str, int] | None = None,
        observer: Observer | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if settings.max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self.plan = plan
        self.settings = settings
        self.max_parallel = settings.max_parallel
        self.backend = backend
        self.registry = registry
        self.make_request = make_request
        self.observer: Observer = observer or (lambda event: None)
        self.rng = rng or random.Random()
        self.tasks: dict[str, _TaskState] = {p.spec.id: _TaskState(p) for p in plan.tasks}
        for edge in plan.edges:
            if edge.kind == EdgeKind.CONFLICT:
                self.tasks[edge.after].exclusive.add(edge.before)
                self.tasks[edge.before].exclusive.add(edge.after)
                continue
            self.tasks[edge.after].preds[edge.before] = edge.kind
            self.tasks[edge.before].succs[edge.after] = edge.kind
        # A shared scope's tasks are chained by conflict edges, one per neighbour, so the group
        # itself says who else must not run alongside; one set per scope, not one per pair.
        for members in plan.shared_scopes.values():
            group = frozenset(members)
            for tid in group:
                self.tasks[tid].scopes.append(group)
        for state in self.tasks.values():
            state.waiting = len(state.preds)
        lrp = remaining_path or {}
        self._rank = {
            tid: (s.planned.spec.priority, -lrp.get(tid, 1), s.planned.spec.index) for tid, s in self.tasks.items()
        }
        self._ready: list[tuple[tuple[int, int, int], str]] = []
        self._delayed: list[tuple[float, str]] = []
        self.running: set[str] = set()
        self._launch_order: list[str] = []
        self.stopping = False  # interrupted: running tasks are being stopped
        self.halted = False  # no new launches (interrupt, circuit breaker, run timeout)
        self.interrupted = False
        self._interrupts = 0  # interrupts acted on
        self._signals = 0  # Ctrl-C / SIGTERM received (or KeyboardInterrupt caught)
        self.abort_reason: str | None = None
        self._failure_streak: tuple[str, int] = ("", 0)
        self._next_launch_at = 0.0
        self._live_cost: dict[str, float] = {}  # cost of running attempts, from heartbeats
        self._deadline = time.monotonic() + settings.run_timeout if settings.run_timeout else None
        self._waiting_for: str | None = None

    # -- public ----------------------------------------------------------------------------------

    def run(
        self,
        *,
        finished: Mapping[str, TaskResult] | None = None,
        attached: Mapping[str, Attached] | None = None,
        requeued: Mapping[str, Requeued] | None = None,
        ended: Mapping[str, tuple[TaskRequest, TaskResult]] | None = None,
    ) -> dict[str, TaskResult]:
        """Run every task to a terminal state; Ctrl-C once stops gracefully, twice kills.

        On resume, `finished` holds final results adopted from the earlier run and `attached` the
        WorkflowManagers still running from it; neither is started again. `ended` holds attempts
        that ended while no orchestrator watched: they are judged now (completed, failed, or
        retried) exactly as if we had seen them end. `requeued` holds tasks that must run (again),
        continuing on their branch where an earlier attempt left work.
        """
        for tid, back in (requeued or {}).items():
            self.tasks[tid].attempt = back.attempts_used
            self.tasks[tid].previous = back.previous
        self._adopt(finished or {}, attached or {})
        for tid, (request, result) in (ended or {}).items():
            state = self.tasks[tid]
            state.request, state.attempt = request, request.attempt
            self._judge(state, result)
        queued = {tid for _, tid in self._ready} | {tid for _, tid in self._delayed}
        for tid, state in self.tasks.items():
            if state.waiting == 0 and state.result is None and tid not in self.running and tid not in queued:
                heapq.heappush(self._ready, (self._rank[tid], tid))
        last_liveness = time.monotonic()
        with self._signals_as_events():
            self._loop(last_liveness)
        reason = self.abort_reason or ("run interrupted" if self.interrupted else "not started")
        self._cancel_unstarted(reason, "interrupt" if self.interrupted else "dependency")
        return {tid: s.result for tid, s in self.tasks.items() if s.result is not None}

    @contextmanager
    def _signals_as_events(self) -> Iterator[None]:
        """While we run, Ctrl-C and SIGTERM only count (the loop acts on them within a tick)
        instead of raising KeyboardInterrupt wherever the main thread happens to be: mid-way
        through a state write or a spawn, an exception would leave a half-done step behind."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers belong to the main thread; elsewhere KeyboardInterrupt applies
            return

        def count(signum: int, frame: FrameType | None) -> None:
            self._signals += 1

        previous = {signum: signal.signal(signum, count) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _take_signals(self) -> None:
        while self._interrupts < self._signals:
            self._interrupt()

    def _loop(self, last_liveness: float) -> None:
        while True:
            try:
                self._take_signals()
                now = time.monotonic()
                self._housekeeping(now)
                self._launch_ready(now)
                if not self.running and not self._delayed and not (self._ready and not self.halted):
                    break
                try:
                    event = self.backend.events.get(timeout=self._wait_timeout(now))
                except queue.Empty:
                    event = None
                if event is not None:
                    self._handle(event)
                if time.monotonic() - last_liveness >= LIVENESS_INTERVAL:
                    last_liveness = time.monotonic()
                    self._liveness()
            except KeyboardInterrupt:
                self._signals += 1
                self._interrupt()

    # -- scheduling ------------------------------------------------------------------------------

    def _wait_timeout(self, now: float) -> float:
        timeout = TICK
        if self._delayed:
            timeout = min(timeout, self._delayed[0][0] - now)
        # Woken early only for the launch pacing: while a memory or disk shortage holds launches,
        # one look per tick is enough (it would otherwise be asked every 10 ms).
        if len(self.running) < self.max_parallel and self._waiting_for is None and self._launchable_waiting():
            timeout = min(timeout, self._next_launch_at - now)
        return max(0.01, timeout)

    def _housekeeping(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, tid = heapq.heappop(self._delayed)
            if self.tasks[tid].result is None:
                heapq.heappush(self._ready, (self._rank[tid], tid))
        if self._deadline is not None and now >= self._deadline and self.abort_reason is None:
            self._run_timeout()
        self._read_control()

    def spent_usd(self) -> float:
        """Cost so far: finished tasks (all attempts) plus what running attempts reported."""
        done = sum(s.result.total_cost_usd() or 0.0 for s in self.tasks.values() if s.result is not None)
        earlier = sum(a.cost_usd or 0.0 for s in self.tasks.values() if s.result is None for a in s.history)
        return done + earlier + sum(self._live_cost.values())

    def _check_budget(self) -> None:
        budget = self.settings.run_budget_usd
        if budget is None or self.abort_reason is not None or self.spent_usd() < budget:
            return
        self.abort_reason = f"run budget of ${budget:.2f} spent (${self.spent_usd():.2f}); no new task starts"
        self.halted = True
        self.observer(BreakerTripped(reason=self.abort_reason))
        self._cancel_unstarted(self.abort_reason, "budget")

    def _launch_ready(self, now: float) -> None:
        self._check_budget()
        while self._ready and len(self.running) < self.max_parallel and not self.halted:
            if now < self._next_launch_at:
                return
            why = shortage(
                min_free_memory=self.settings.min_free_memory,
                min_free_disk=self.settings.min_free_disk,
                disk_path=self.settings.disk_path,
            )
            if why is not None:
                if why != self._waiting_for:
                    self._waiting_for = why
                    self.observer(Waiting(reason=why))
                return
            self._waiting_for = None
            state = self._next_launchable()
            if state is None:
                return
            self._launch(state)
            # Jittered spacing: simultaneous `claude` starts are known to corrupt its settings files.
            stagger = self.settings.launch_stagger
            self._next_launch_at = time.monotonic() + (stagger * self.rng.uniform(0.5, 1.5) if stagger > 0 else 0)
            now = time.monotonic()

    def _launchable_waiting(self) -> bool:
        """A ready task could start but for the launch pacing (not one blocked by a partner)."""
        return not self.halted and any(
            self.tasks[tid].result is None and not self._partner_running(self.tasks[tid]) for _, tid in self._ready
        )

    def _next_launchable(self) -> _TaskState | None:
        """The best ready task none of whose conflict partners is running; the others stay queued."""
        blocked: list[tuple[tuple[int, int, int], str]] = []
        found = None
        while self._ready:
            item = heapq.heappop(self._ready)
            state = self.tasks[item[1]]
            # Finished (cancelled while waiting), or already running: a task can be pushed twice
            # (released by an adopted predecessor and found ready on resume), never launched twice.
            if state.result is not None or item[1] in self.running:
                continue
            if self._partner_running(state):
                blocked.append(item)
                continue
            found = state
            break
        for item in blocked:
            heapq.heappush(self._ready, item)
        return found

    def _partner_running(self, state: _TaskState) -> bool:
        """A task it conflicts with runs now (the running ones are few; the groups may be large)."""
        tid = state.planned.spec.id
        return any(other != tid and (other in state.exclusive or any(other in group for group in state.scopes))
                   for other in self.running)

    def _partners(self, state: _TaskState) -> set[str]:
        """Every task it may never run alongside."""
        return (state.exclusive | set().union(*state.scopes)) - {state.planned.spec.id}

    def _launch(self, state: _TaskState) -> None:
        tid = state.planned.spec.id
        # It starts from its dependencies' work and from whatever conflict partner finished first.
        preds = [
            Predecessor(task_id=p, branch=self.tasks[p].planned.branch, head_sha=r.head_sha,
                        title=self.tasks[p].planned.spec.title, final_message=r.outcome.final_message[:1200],
                        changed_files=r.changed_files[:50])
            for p in [*state.preds, *sorted(self._partners(state), key=lambda t: self._rank[t])]
            if (r := self.tasks[p].result) is not None and r.status == TaskStatus.COMPLETED and r.head_sha
        ]
        state.attempt += 1
        request = self.make_request(state.planned, preds, state.attempt, state.previous)
        state.request = request
        # Recorded before the spawn: if we die in between, resume sees a running task and looks
        # for its WorkflowManager (its attempt lock) instead of starting a second one. A Ctrl-C
        # waits until the spawned process is ours to stop, so none runs unknown to us.
        with stops_deferred():
            self.registry.transition(tid, TaskStatus.RUNNING, phase="setup", attempt=request.attempt,
                                     fix_rounds=0, fixing=None)
            launched_ns = time.time_ns()
            pid, created = self.backend.submit(request)
            self.running.add(tid)
            self._launch_order.append(tid)
        if pid is not None:
            self.registry.update(tid, wm_pid=pid, wm_create_time=created)
        self.observer(TaskStarted(task_id=tid, branch=state.planned.branch,
                                  predecessors=tuple(p.task_id for p in preds), attempt=state.attempt,
                                  launched_ns=launched_ns))

    def _handle(self, event: BackendEvent) -> None:
        tid = event.task_id
        state = self.tasks.get(tid)
        if state is None or state.request is None or event.attempt != state.request.attempt:
            return  # a late event of an earlier attempt
        if event.kind == "exit":
            self._finish(state, event.data.get("returncode"))
            return
        data = event.data
        if event.name == "phase" and data.get("phase"):
            self.registry.update(tid, phase=data["phase"])
            self.observer(PhaseChanged(task_id=tid, phase=str(data["phase"])))
        elif event.name == "agent_started":
            self.registry.update(tid, pid=data.get("pid"), pid_create_time=data.get("create_time"))
        elif event.name == "heartbeat":
            beat = _heartbeat(tid, data)
            if beat.cost_usd is not None:
                self._live_cost[tid] = beat.cost_usd
            self.registry.heartbeat(tid, last_event_at=iso(), last_event=beat.summary, session_id=beat.session_id,
                                    turns=beat.turns, cost_usd=beat.cost_usd, tokens=beat.tokens)
            self.observer(beat)
        elif event.name == "stalled":
            self.observer(Stalled(task_id=tid, reason=str(data.get("reason") or "")))
        elif event.name == "log":
            self.observer(TaskLog(task_id=tid, message=str(data.get("message") or "")))
        elif event.name == "fixup":
            # A durable change, so the journal holds one record per round.
            self.registry.update(tid, fix_rounds=int(data.get("round") or 0), fixing=str(data.get("reason") or ""))
            self.observer(FixupStarted(task_id=tid, round=int(data.get("round") or 0),
                                       rounds=int(data.get("rounds") or 0), reason=str(data.get("reason") or "")))

    def _finish(self, state: _TaskState, returncode: int | None) -> None:
        tid = state.planned.spec.id
        self.running.discard(tid)
        self._live_cost.pop(tid, None)
        self._judge(state, self._read_result(state, returncode))

    def _judge(self, state: _TaskState, result: TaskResult) -> None:
        """An attempt ended: retry it after a backoff, or record its final state."""
        delay = self._retry_delay(state, result)
        if delay is not None:
            self._schedule_retry(state, result, delay)
            return
        result.attempts = list(state.history)
        self._complete(state, result)

    def _retry_delay(self, state: _TaskState, result: TaskResult) -> float | None:
        # Retries are counted, not attempt numbers: attempts that an interrupt or a lost
        # orchestrator cut short (and resume continued) do not use up a task's retries.
        if self.halted or len(state.history) >= self.settings.retries:
            return None
        return retry_delay(result, base=self.settings.backoff_base, cap=self.settings.backoff_cap, rng=self.rng)

    def _schedule_retry(self, state: _TaskState, result: TaskResult, delay: float) -> None:
        tid = state.planned.spec.id
        state.history.append(AttemptRecord(
            attempt=result.attempt, status=result.status, failure=result.outcome.failure,
            error_message=result.error_message, session_id=result.outcome.session_id,
            duration_seconds=result.duration_seconds, cost_usd=result.outcome.cost_usd,
            retry_delay_seconds=round(delay, 3), started_at=result.started_at, completed_at=result.completed_at,
        ))
        state.previous = result
        self.registry.transition(
            tid, TaskStatus.QUEUED, attempt=result.attempt + 1,
            reason=f"attempt {result.attempt} failed ({result.outcome.failure}): {result.error_message}; "
                   f"retrying in {format_duration(delay)}",
            retry_wait=RetryWait.starting_in(delay, retry=len(state.history), retries=self.settings.retries,
                                             failure=result.outcome.failure),
        )
        heapq.heappush(self._delayed, (time.monotonic() + delay, tid))
        self.observer(Retrying(task_id=tid, attempt=result.attempt, delay=delay, error=result.error_message,
                               failure=result.outcome.failure))

    def _complete(self, state: _TaskState, result: TaskResult, *, adopted: bool = False) -> None:
        tid = state.planned.spec.id
        state.result = result
        if result.status == TaskStatus.CANCELLED and result.cancelled_by is None:
            cause = state.cancel_cause if state.cancel_cause != "run_timeout" else None
            result.cancelled_by = cause or ("interrupt" if self.stopping else "user")
            result.error_message = cancel_message(result.cancelled_by, result.error_message)
        if not adopted:
            self.registry.transition(
                tid,
                result.status,
                cancelled_by=result.cancelled_by,
                exit_code=result.outcome.exit_code,
                error_message=result.error_message,
                session_id=result.outcome.session_id,
                cost_usd=result.total_cost_usd(),
                tokens=result.outcome.tokens.model_dump(),
                turns=result.outcome.num_turns,
                phase="done",
                validation=result.validation.model_dump(mode="json") if result.validation is not None else None,
            )
            self.observer(TaskFinished(task_id=tid, result=result))
            self._check_breaker(result)
        for succ in state.succs:
            succ_state = self.tasks[succ]
            succ_state.waiting -= 1
            if result.status != TaskStatus.COMPLETED:
                after: CancelCause = "interrupt" if result.cancelled_by == "interrupt" else "dependency"
                self._cancel(succ, f"dependency '{tid}' {result.status.value}", after)
            elif succ_state.waiting == 0 and succ_state.result is None and succ not in self.running:
                heapq.heappush(self._ready, (self._rank[succ], succ))

    def _check_breaker(self, result: TaskResult) -> None:
        """Stop launching when the same permanent failure keeps happening (e.g. not logged in):
        the remaining tasks would only fail the same way and cost money doing it."""
        failure = result.outcome.failure
        if result.status == TaskStatus.COMPLETED or failure not in PERMANENT:
            self._failure_streak = ("", 0)
            return
        last, count = self._failure_streak
        count = count + 1 if failure == last else 1
        self._failure_streak = (failure, count)
        # What holds for the whole account (not logged in) stops the run at the first occurrence.
        account_wide = failure_kind(failure) == "account_wide"
        if self.abort_reason is None and (account_wide or count >= self.settings.breaker_threshold):
            message = result.error_message or result.outcome.message or describe_failure(failure)
            self.abort_reason = f"stopped launching after {count} task(s) failed the same way: {message}"
            self.halted = True
            self.observer(BreakerTripped(task_id=result.task_id, reason=self.abort_reason))
            self._cancel_unstarted(self.abort_reason, "breaker")

    def _read_result(self, state: _TaskState, returncode: int | None) -> TaskResult:
        assert state.request is not None
        found = load_task_result(state.request.result_path, state.request.attempt)
        if found is not None:
            return found
        # Gone without a result after we asked it to stop: what we asked for is what happened.
        status = TaskStatus.FAILED
        if state.cancel_cause == "run_timeout":
            status = TaskStatus.TIMEOUT
        elif self.stopping or state.cancel_cause is not None:
            status = TaskStatus.CANCELLED
        result = TaskResult(
            task_id=state.planned.spec.id,
            status=status,
            attempt=state.request.attempt,
            branch=state.planned.branch,
            worktree=str(state.request.worktree),
            base_sha=self.plan.base_sha,
            error_message=f"WorkflowManager exited {returncode} without a result "
            f"(see {state.request.task_dir / 'workflow_manager.stderr.log'})",
        )
        result.outcome.failure = "lost"
        return result

    # -- stopping --------------------------------------------------------------------------------

    def _cancel(self, tid: str, reason: str, cause: CancelCause) -> None:
        """End a task that is not running, and, through dependency edges, everything after it.
        Tasks after an interrupted one are interrupted too (resume runs them); otherwise they are
        cancelled for their dependency."""
        state = self.tasks[tid]
        if state.result is not None or tid in self.running:
            return
        reason = cancel_message(cause, reason)
        state.result = TaskResult(
            task_id=tid,
            status=TaskStatus.CANCELLED,
            attempt=state.attempt,
            branch=state.planned.branch,
            worktree=str(state.planned.worktree),
            base_sha=self.plan.base_sha,
            error_message=reason,
            attempts=list(state.history),
            cancelled_by=cause,
        )
        state.result.outcome.failure = "cancelled"
        self.registry.transition(tid, TaskStatus.CANCELLED, error_message=reason, cancelled_by=cause)
        self.observer(TaskCancelled(task_id=tid, reason=reason))
        for succ in state.succs:
            self.tasks[succ].waiting -= 1
            self._cancel(succ, f"dependency '{tid}' cancelled", "interrupt" if cause == "interrupt" else "dependency")

    def _cancel_unstarted(self, reason: str, cause: CancelCause) -> None:
        self._delayed.clear()
        for tid, state in self.tasks.items():
            if state.result is None and tid not in self.running:
                self._cancel(tid, reason, cause)

    def cancel_tasks(self, task_ids: list[str], reason: str = "cancelled by user") -> None:
        """Stop the named tasks (running ones gracefully) and dequeue queued ones; others go on."""
        for tid in task_ids:
            if tid not in self.tasks:
                continue
            if tid in self.running:
                self.tasks[tid].cancel_cause = "user"
                self.backend.cancel(tid)
            else:
                self._delayed = [(t, d) for t, d in self._delayed if d != tid]
                heapq.heapify(self._delayed)
                self._cancel(tid, reason, "user")

    def _read_control(self) -> None:
        """`orchestrator cancel` drops request files here; each is acted on once, then removed."""
        directory = self.settings.control_dir
        if directory is None or not directory.is_dir():
            return
        for path in sorted(directory.glob("cancel-*")):
            target = path.name.removeprefix("cancel-")
            path.unlink(missing_ok=True)
            ids = sorted(self.tasks) if target == "--all" else [target]
            self.observer(CancelRequested(tasks=tuple(ids)))
            self.cancel_tasks(ids)

    def _run_timeout(self) -> None:
        limit = self.settings.run_timeout or 0
        waiting = f" (launches were waiting: {self._waiting_for})" if self._waiting_for else ""
        self.abort_reason = f"run timeout of {format_duration(limit)} reached{waiting}"
        self.halted = True
        self.observer(RunTimedOut(reason=self.abort_reason, running=tuple(sorted(self.running))))
        self._cancel_unstarted(self.abort_reason, "run_timeout")
        for tid in list(self.running):
            self.tasks[tid].cancel_cause = "run_timeout"
            self.backend.cancel(tid, timeout=True)

    def _interrupt(self) -> None:
        """First Ctrl-C: stop gracefully. Any further one, even while the first is being handled:
        kill at once, so a second Ctrl-C can never escape the loop and leave agents running."""
        self._interrupts += 1
        while True:
            try:
                if self._interrupts == 1:
                    self._stop_gracefully()
                else:
                    self.observer(Killing(running=tuple(sorted(self.running))))
                    for tid in list(self.running):
                        self.tasks[tid].cancel_cause = "interrupt"
                        self.backend.kill(tid)
                return
            except KeyboardInterrupt:  # only where signals still raise (not the main thread's loop)
                self._signals += 1
                self._interrupts += 1

    def _stop_gracefully(self) -> None:
        self.stopping = self.halted = True
        self.interrupted = True
        self.observer(Interrupted(running=tuple(sorted(self.running))))
        self._cancel_unstarted("run interrupted", "interrupt")
        # Newest first, as tox does: the most recent work has the least to lose.
        for tid in reversed(self._launch_order):
            if tid in self.running:
                self.tasks[tid].cancel_cause = "interrupt"
                self.backend.cancel(tid)

    # -- resume and liveness ---------------------------------------------------------------------

    def _adopt(self, finished: Mapping[str, TaskResult], attached: Mapping[str, Attached]) -> None:
        order = [p.spec.id for p in self.plan.tasks]
        for tid in order:
            if tid in attached:
                info = attached[tid]
                state = self.tasks[tid]
                state.request = info.request
                state.attempt = info.request.attempt
                self.running.add(tid)
                self._launch_order.append(tid)
                self.backend.attach(info.request, info.wm_pid, info.wm_create_time)
                if info.agent_pid:
                    self.registry.update(tid, pid=info.agent_pid, pid_create_time=info.agent_create_time)
                self.observer(TaskAttached(task_id=tid, pid=info.wm_pid, attempt=state.attempt))
        # Adopted results release their successors in plan order, as if they had just finished.
        for tid in order:
            if tid in finished and self.tasks[tid].result is None:
                state = self.tasks[tid]
                state.attempt = finished[tid].attempt
                self._complete(state, finished[tid], adopted=True)

    def _liveness(self) -> None:
        """Heartbeats reflect real liveness: the agent's pid and create time still match."""
        snapshot = self.registry.snapshot()
        with self.registry.batch():
            for tid in list(self.running):
                info = snapshot.get(tid)
                if info is None:
                    continue
                pid, created = info.pid or info.wm_pid, info.pid_create_time or info.wm_create_time
                if pid and created and is_alive(pid, created):
                    self.registry.heartbeat(tid)
        self.registry.sample_resources()


def _heartbeat(task_id: str, data: Mapping[str, Any]) -> Heartbeat:
    """A WorkflowManager's heartbeat line (JSON it wrote, perhaps an older version of it), typed."""
    cost = data.get("cost_usd")
    return Heartbeat(task_id=task_id, summary=data.get("summary"), session_id=data.get("session_id"),
                     turns=int(data.get("turns") or 0), cost_usd=float(cost) if cost is not None else None,
                     tokens=data.get("tokens"), events=int(data.get("events") or 0))
