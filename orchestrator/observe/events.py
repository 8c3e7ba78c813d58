"""What the engine and the coordinator tell observers as a run goes: one frozen class per event.

Observers `match` on the class, so a misspelled event or field is an error mypy reports, not a
branch that silently never runs. `name` is the event's word in the run log (`orchestrator.jsonl`)
and `record` the one place an event becomes that log's JSON `data`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from orchestrator.models import FailureClass, OrchestrationResult, TaskResult
from orchestrator.state.registry import ProcessRegistry


@dataclass(frozen=True, kw_only=True)
class RunEvent:
    """An event of the whole run, of no one task."""

    name: ClassVar[str]

    @property
    def task_id(self) -> str:
        return ""


@dataclass(frozen=True, kw_only=True)
class TaskEvent:
    """An event of one task."""

    name: ClassVar[str]
    task_id: str


# -- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunStarted(RunEvent):
    name: ClassVar[str] = "run_started"
    run_id: str
    run_dir: Path
    monitoring_dir: Path
    registry: ProcessRegistry  # live: observers take snapshots of it (it also knows the queued)
    max_parallel: int
    total: int


@dataclass(frozen=True, kw_only=True)
class RunFinished(RunEvent):
    name: ClassVar[str] = "run_finished"
    result: OrchestrationResult


@dataclass(frozen=True, kw_only=True)
class Waiting(RunEvent):
    """Launches wait for free memory or disk; sent when the reason changes."""

    name: ClassVar[str] = "waiting"
    reason: str


@dataclass(frozen=True, kw_only=True)
class CancelRequested(RunEvent):
    """`orchestrator cancel` asked for these tasks to stop."""

    name: ClassVar[str] = "cancel_request"
    tasks: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class RunTimedOut(RunEvent):
    name: ClassVar[str] = "run_timeout"
    reason: str
    running: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Interrupted(RunEvent):
    """The first Ctrl-C or SIGTERM: running tasks are asked to stop."""

    name: ClassVar[str] = "interrupt"
    running: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Killing(RunEvent):
    """A further Ctrl-C: running tasks are killed at once."""

    name: ClassVar[str] = "kill"
    running: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class BreakerTripped(TaskEvent):
    """No new launches: the same permanent failure repeated (`task_id` is the last task that
    failed so), or the run budget is spent (`task_id` is empty)."""

    name: ClassVar[str] = "breaker"
    task_id: str = ""
    reason: str


# -- one task ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TaskStarted(TaskEvent):
    name: ClassVar[str] = "started"
    branch: str
    predecessors: tuple[str, ...]  # the tasks whose work it starts from
    attempt: int
    # Wall clock (ns) just before its WorkflowManager was started: the attempt's span begins here,
    # since that process's own spans may begin before this event reaches an observer. Not part of
    # the event's identity, nor of the run log (each line has its own time).
    launched_ns: int | None = field(default=None, compare=False, metadata={"logged": False})


@dataclass(frozen=True, kw_only=True)
class TaskAttached(TaskEvent):
    """Resume found the task's WorkflowManager still running and watches it again."""

    name: ClassVar[str] = "attached"
    pid: int
    attempt: int


@dataclass(frozen=True, kw_only=True)
class PhaseChanged(TaskEvent):
    name: ClassVar[str] = "phase"
    phase: str


@dataclass(frozen=True, kw_only=True)
class Heartbeat(TaskEvent):
    """The agent's progress so far, as its WorkflowManager last reported it."""

    name: ClassVar[str] = "heartbeat"
    summary: str | None = None
    session_id: str | None = None
    turns: int = 0
    cost_usd: float | None = None
    tokens: dict[str, int] | None = None
    events: int = 0


@dataclass(frozen=True, kw_only=True)
class TaskLog(TaskEvent):
    """A line of the task's WorkflowManager log (shown with --verbose)."""

    name: ClassVar[str] = "log"
    message: str


@dataclass(frozen=True, kw_only=True)
class Stalled(TaskEvent):
    """The agent made no progress for the stall timeout; its WorkflowManager stops it."""

    name: ClassVar[str] = "stalled"
    reason: str


@dataclass(frozen=True, kw_only=True)
class FixupStarted(TaskEvent):
    """The validation checkpoint failed and the agent gets fix-up round `round` of `rounds`."""

    name: ClassVar[str] = "fixup"
    round: int
    rounds: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class Retrying(TaskEvent):
    name: ClassVar[str] = "retry"
    attempt: int  # the attempt that failed; the next one is queued
    delay: float
    error: str | None
    failure: FailureClass


@dataclass(frozen=True, kw_only=True)
class TaskFinished(TaskEvent):
    """The task's final result: no more attempts follow."""

    name: ClassVar[str] = "finished"
    result: TaskResult


@dataclass(frozen=True, kw_only=True)
class TaskCancelled(TaskEvent):
    """A task that was not running ended cancelled (its dependency failed, an interrupt, ...)."""

    name: ClassVar[str] = "cancelled"
    reason: str


EngineEvent = (
    RunStarted | RunFinished | Waiting | CancelRequested | RunTimedOut | Interrupted | Killing | BreakerTripped
    | TaskStarted | TaskAttached | PhaseChanged | Heartbeat | TaskLog | Stalled | FixupStarted | Retrying | TaskFinished
    | TaskCancelled
)
Observer = Callable[[EngineEvent], None]
# After these a task's status differs: views that cache registry snapshots take a fresh one.
STATUS_CHANGES = (TaskStarted, TaskFinished, TaskCancelled, Retrying)


def record(event: EngineEvent) -> dict[str, Any]:
    """The event's fields as the run log keeps them (JSON values; no live objects)."""
    match event:
        case TaskFinished(result=r):
            return {"status": r.status.value, "attempt": r.attempt, "failure": r.outcome.failure,
                    "error": r.error_message, "duration_seconds": r.duration_seconds, "cost_usd": r.outcome.cost_usd,
                    "commits": len(r.commits), "branch": r.branch}
        case RunStarted():
            return {"run_id": event.run_id, "run_dir": str(event.run_dir), "monitoring_dir": str(event.monitoring_dir),
                    "max_parallel": event.max_parallel, "total": event.total}
        case RunFinished(result=result):
            keys = ("total_tasks", "successful_tasks", "failed_tasks", "cancelled_tasks", "execution_time_seconds",
                    "total_cost_usd", "interrupted", "abort_reason")
            return {k: getattr(result, k) for k in keys}
    return {f.name: _json(getattr(event, f.name)) for f in fields(event)
            if f.name != "task_id" and f.metadata.get("logged", True)}


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
