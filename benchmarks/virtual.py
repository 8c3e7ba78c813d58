"""The real ExecutionEngine on a virtual clock, with a fake Backend whose tasks take known times.

The engine's `time` module is swapped for a VirtualClock and its event queue is a VirtualQueue:
waiting on the queue jumps the clock to the next due event (or to the end of the wait), so a
schedule of hours runs in milliseconds and every start and end time is exact. The schedule
benchmark and the engine's unit tests both drive the engine through this one module.

Each task follows a script of attempts (how long, how it ends, what it costs); the backend writes
the result a WorkflowManager would write and delivers the `exit` event at the attempt's end time.
Cancelling ends an attempt at once with a cancelled (or timed-out) result; killing ends it with
none, as a SIGKILLed WorkflowManager leaves none. A simulation that never ends (a scheduler that
forgot a task, or kept waiting) fails when its clock passes the clock's `limit` instead of hanging.
"""
from __future__ import annotations

import heapq
import queue
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.backends.base import BackendEvent
from orchestrator.models import AgentOutcome, Plan, PlannedTask, TaskResult, TaskStatus, iso
from orchestrator.observe.events import EngineEvent
from orchestrator.run import engine as engine_mod
from orchestrator.run.engine import EngineSettings, ExecutionEngine
from orchestrator.state.journal import Journal
from orchestrator.state.registry import ProcessRegistry
from orchestrator.task.wire import Predecessor, TaskRequest

START = 1000.0  # virtual time at which every simulation starts


class VirtualClock:
    """Stands in for the `time` module: only `sleep` and the event queue move it, never past `limit`
    seconds of virtual time (None: no limit)."""

    def __init__(self, limit: float | None = None) -> None:
        self.now = START
        self.limit = limit

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def time_ns(self) -> int:
        return int(self.now * 1_000_000_000)

    def sleep(self, seconds: float) -> None:
        self.advance(self.now + max(0.0, seconds))

    def advance(self, when: float) -> None:
        if self.limit is not None and when - START > self.limit:
            raise RuntimeError(f"the simulation ran past its limit of {self.limit:g} virtual seconds")
        self.now = max(self.now, when)


class VirtualQueue:
    """The engine's event queue: `get` jumps the clock to the next due event (or the timeout).

    Entries are callbacks run when they fall due; one that returns None (an attempt that already
    ended another way) is dropped."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, int, Callable[[], BackendEvent | None]]] = []
        self.seq = 0

    def put(self, item: BackendEvent) -> None:
        self.at(self.clock.now, lambda: item)

    def at(self, when: float, make: Callable[[], BackendEvent | None]) -> None:
        self.seq += 1
        heapq.heappush(self.pending, (when, self.seq, make))

    def get(self, block: bool = True, timeout: float | None = None) -> BackendEvent:
        forever = block and timeout is None
        limit = float("inf") if forever else self.clock.now + (timeout or 0.0)
        while self.pending and self.pending[0][0] <= limit:
            when, _, make = heapq.heappop(self.pending)
            self.clock.advance(when)
            event = make()
            if event is not None:
                return event
        if forever:  # a real engine would block for ever
            raise RuntimeError("the engine waits without a timeout for an event that never comes")
        self.clock.advance(limit)
        raise queue.Empty

    def get_nowait(self) -> BackendEvent:
        return self.get(timeout=0.0)

    def empty(self) -> bool:
        return not self.pending


@dataclass(frozen=True)
class Attempt:
    """What one attempt of a task does: runs `seconds`, then completes or fails with `failure`;
    on the way, it reports `events` (seconds after its start, event name, data) as a WorkflowManager
    does (phase, heartbeat, fixup, log...)."""

    seconds: float = 1.0
    failure: str | None = None  # a FailureClass; None: the attempt completes
    cost_usd: float | None = None  # in the final result
    live_cost_usd: float | None = None  # reported by a heartbeat halfway through
    hang: bool = False  # never ends by itself: only a cancel or a kill ends it
    resets_at: float | None = None  # a rate limit's reset, in unix time
    message: str = ""
    leaves_result: bool = True  # False: the WorkflowManager dies without writing one, however it ends
    events: Sequence[tuple[float, str, Mapping[str, Any]]] = ()
    final_message: str = ""  # the agent's last words, in the result
    changed_files: Sequence[str] = ()
    outcome: Mapping[str, Any] | None = None  # more of the agent's outcome: num_turns, tokens, exit_code...


Script = float | Attempt | Sequence[Attempt]


@dataclass
class Launch:
    """One attempt the backend ran: when it started and (once it did) ended, and how."""

    task_id: str
    attempt: int
    start: float
    end: float | None = None
    how: str = ""  # "exit", "cancel", "timeout" or "kill"
    attached: bool = False


@dataclass
class _Live:
    request: TaskRequest
    launch: Launch
    plan: Attempt


class VirtualBackend:
    """A Backend (request -> handle -> events) whose attempts follow scripts on a virtual clock.

    `scripts` maps a task to its duration, one Attempt, or one Attempt per attempt number (the
    last repeats). Attempts not yet ended when the engine returns are still in `running()`."""

    def __init__(self, clock: VirtualClock, scripts: Mapping[str, Script]) -> None:
        self.clock = clock
        self.scripts = scripts
        self.events = VirtualQueue(clock)
        self.launches: list[Launch] = []
        self.requests: dict[str, TaskRequest] = {}  # each task's latest
        self.attached: dict[str, tuple[int, float]] = {}  # task -> the WorkflowManager's (pid, create time)
        self.cancels: list[tuple[str, bool]] = []  # (task, as a timeout) in the order asked
        self.wm_pid: int | None = None  # what `submit` reports as each WorkflowManager's pid (None: unknown)
        self._live: dict[str, _Live] = {}

    @property
    def spans(self) -> dict[str, tuple[float, float]]:
        """Each task's last finished attempt: (start, end)."""
        return {x.task_id: (x.start, x.end) for x in self.launches if x.end is not None}

    def started(self, task_id: str) -> list[Launch]:
        return [x for x in self.launches if x.task_id == task_id]

    def attempt_plan(self, task_id: str, attempt: int) -> Attempt:
        script = self.scripts[task_id]
        if isinstance(script, (int, float)):
            return Attempt(seconds=float(script))
        if isinstance(script, Attempt):
            return script
        return script[min(attempt, len(script)) - 1]

    def submit(self, request: TaskRequest) -> tuple[int | None, float | None]:
        self._begin(request, attached=False)
        return (None, None) if self.wm_pid is None else (self.wm_pid, self.clock.now)

    def attach(self, request: TaskRequest, pid: int, create_time: float) -> None:
        self.attached[request.task_id] = (pid, create_time)
        self._begin(request, attached=True)

    def _begin(self, request: TaskRequest, *, attached: bool) -> None:
        tid, plan = request.task_id, self.attempt_plan(request.task_id, request.attempt)
        self.requests[tid] = request
        launch = Launch(tid, request.attempt, self.clock.now, attached=attached)
        self.launches.append(launch)
        live = _Live(request, launch, plan)
        self._live[tid] = live
        reports = list(plan.events)
        if plan.live_cost_usd is not None:
            reports.append((plan.seconds / 2, "heartbeat", {"cost_usd": plan.live_cost_usd}))
        for offset, name, data in reports:
            self.events.at(self.clock.now + offset, self._report(live, name, data))
        if not plan.hang:
            self.events.at(self.clock.now + plan.seconds, lambda: self._end(live, "exit"))

    def _report(self, live: _Live, name: str, data: Mapping[str, Any]) -> Callable[[], BackendEvent | None]:
        """An event the attempt sends, unless it has ended by then."""
        event = BackendEvent("event", live.request.task_id, live.request.attempt, name, dict(data))
        return lambda: event if self._live.get(live.request.task_id) is live else None

    def _end(self, live: _Live, how: str) -> BackendEvent | None:
        tid = live.request.task_id
        if self._live.get(tid) is not live:
            return None  # already ended (cancelled or killed before its time was up)
        del self._live[tid]
        live.launch.end, live.launch.how = self.clock.now, how
        if how != "kill" and live.plan.leaves_result:
            _write_result(live.request, live.plan, live.launch, how)
        return BackendEvent("exit", tid, live.request.attempt, "exit", {"returncode": -9 if how == "kill" else 0})

    def at(self, when: float, action: Callable[[], object]) -> None:
        """Do `action` (write a control file, send a signal...) at virtual time `when`."""

        def run() -> None:
            action()

        self.events.at(when, run)

    def _stop(self, task_id: str, how: str) -> None:
        live = self._live.get(task_id)
        if live is not None:
            self.events.at(self.clock.now, lambda: self._end(live, how))

    def cancel(self, task_id: str, *, timeout: bool = False) -> None:
        self.cancels.append((task_id, timeout))
        self._stop(task_id, "timeout" if timeout else "cancel")

    def kill(self, task_id: str) -> None:
        self._stop(task_id, "kill")

    def running(self) -> list[str]:
        return sorted(self._live)

    def close(self) -> None:
        pass


def _write_result(request: TaskRequest, plan: Attempt, launch: Launch, how: str) -> None:
    # As the WorkflowManager classifies an attempt it was asked to stop.
    stopped = {"cancel": (TaskStatus.CANCELLED, "cancelled"), "timeout": (TaskStatus.TIMEOUT, "timeout")}
    status, failure = stopped.get(how) or (
        (TaskStatus.COMPLETED, "none") if plan.failure is None else (TaskStatus.FAILED, plan.failure))
    completed = status == TaskStatus.COMPLETED
    outcome = AgentOutcome(success=completed, failure=failure,  # type: ignore[arg-type]
                           message=plan.message, cost_usd=plan.cost_usd, rate_limit_resets_at=plan.resets_at,
                           session_id=f"session-{request.task_id}-{request.attempt}",
                           final_message=plan.final_message, **(plan.outcome or {}))
    end = launch.end or launch.start
    result = TaskResult(task_id=request.task_id, status=status, attempt=request.attempt, branch=request.branch,
                        worktree=str(request.worktree), base_sha=request.base_sha,
                        head_sha=f"sha-{request.task_id}-{request.attempt}" if completed else "",
                        changed_files=list(plan.changed_files),
                        error_message=None if completed else plan.message or f"{how}: {failure}",
                        started_at=iso_at(launch.start), completed_at=iso_at(end),
                        duration_seconds=end - launch.start, outcome=outcome)
    request.task_dir.mkdir(parents=True, exist_ok=True)
    request.result_path.write_text(result.model_dump_json())


def iso_at(seconds: float) -> str:
    """A virtual time as the timestamps in results read."""
    return iso(datetime.fromtimestamp(seconds, UTC))


@contextmanager
def virtual_time(clock: VirtualClock, *, liveness_interval: float = 1e12) -> Iterator[None]:
    """The engine module reads this clock while inside; liveness checks (of real pids, every
    `liveness_interval` virtual seconds) are off unless asked for."""
    saved = engine_mod.time, engine_mod.LIVENESS_INTERVAL
    engine_mod.time = clock  # type: ignore[assignment]
    engine_mod.LIVENESS_INTERVAL = liveness_interval
    try:
        yield
    finally:
        engine_mod.time, engine_mod.LIVENESS_INTERVAL = saved


@dataclass
class Simulation:
    """One plan on one VirtualBackend: build it, then `run` the real engine (any number of times).

    `events` holds what the engine told its observer; `continued_from` what each attempt was
    asked to continue from (the engine's `previous`), by (task, attempt)."""

    plan: Plan
    backend: VirtualBackend
    run_dir: Path
    registry: ProcessRegistry = field(init=False)
    events: list[EngineEvent] = field(init=False, default_factory=list)
    continued_from: dict[tuple[str, int], TaskResult | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        monitoring = self.run_dir / "monitoring"
        self.registry = ProcessRegistry(monitoring, "sim", fsync=False, journal=Journal(monitoring / "events.jsonl", "sim"))
        with self.registry.batch():
            for p in self.plan.tasks:
                self.registry.register(p.spec.id, task_name=p.spec.title, command=["agent"],
                                       working_directory=str(p.worktree), prompt_file=str(p.spec.prompt_file),
                                       branch=p.branch, base_sha=self.plan.base_sha, worktree=str(p.worktree),
                                       priority=p.spec.priority)

    @property
    def clock(self) -> VirtualClock:
        return self.backend.clock

    def request(self, planned: PlannedTask, preds: list[Predecessor], attempt: int,
                previous: TaskResult | None = None) -> TaskRequest:
        """The engine's `make_request`: just what the fake backend needs."""
        self.continued_from[planned.spec.id, attempt] = previous
        return TaskRequest(run_id="sim", task_id=planned.spec.id, title=planned.spec.title, attempt=attempt,
                           project_root=self.run_dir, task_dir=self.run_dir / "tasks" / planned.spec.id,
                           prompt_path=planned.spec.prompt_file, branch=planned.branch, worktree=planned.worktree,
                           base_sha=self.plan.base_sha, predecessors=preds, agent_command=["agent"],
                           timeout_seconds=7200)

    def engine(self, settings: EngineSettings, *, remaining_path: Mapping[str, int] | None = None) -> ExecutionEngine:
        """An engine whose deadline is on the virtual clock (build and run it inside `virtual_time`)."""
        return ExecutionEngine(self.plan, settings=settings, backend=self.backend, registry=self.registry,
                               make_request=self.request, remaining_path=remaining_path, rng=random.Random(0),
                               observer=self.events.append)

    def run(self, settings: EngineSettings, *, remaining_path: Mapping[str, int] | None = None,
            **resume: Any) -> tuple[ExecutionEngine, dict[str, TaskResult]]:
        """Run the plan to the end on the virtual clock; `resume` goes to `ExecutionEngine.run`."""
        with virtual_time(self.clock):
            engine = self.engine(settings, remaining_path=remaining_path)
            return engine, engine.run(**resume)
