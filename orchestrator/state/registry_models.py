"""Shapes of the monitoring files in `.gadugi/monitoring/`, the contract editors and dashboards read.

Key names are Gadugi's; we only add fields. Timestamps are `models.iso` strings (ISO-8601 with a
timezone) rather than datetimes so that what we write is exactly what readers get back. Also here:
how the derived files are computed from the entries, and how entries are replayed from the journal.
"""
from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.models import (
    SCHEMA_VERSION,
    CancelCause,
    FailureClass,
    Phase,
    ResourceUsage,
    TaskStatus,
    Tokens,
    ValidationResult,
    iso,
    sum_costs,
    utcnow,
)

log = logging.getLogger(__name__)


class RetryWait(BaseModel):
    """A queued task waiting out the backoff before its next attempt: enough for another process
    (`orchestrator status`, an editor) to say "retry 2/3 in 4s (why)" from the file alone."""

    model_config = ConfigDict(extra="allow")

    retry_at: str = Field(description="When the next attempt may start (ISO-8601); it may wait longer for a slot.")
    retry: int = Field(description="Which retry this is, from 1; attempts that an interrupt cut short do not count.")
    retries: int = Field(description="Retries the run allows a task (`--retries`).")
    failure: FailureClass = Field(description="Failure class of the attempt that failed.")

    @classmethod
    def starting_in(cls, seconds: float, *, retry: int, retries: int, failure: FailureClass) -> RetryWait:
        return cls(retry_at=iso(utcnow() + timedelta(seconds=seconds)), retry=retry, retries=retries, failure=failure)


class ProcessInfo(BaseModel):
    """One task's entry in `process_registry.json` (Gadugi's keys first, then ours)."""

    # Fields written by a newer version survive a read-modify-write by this one.
    model_config = ConfigDict(extra="allow")

    task_id: str
    task_name: str
    status: TaskStatus = TaskStatus.QUEUED
    command: str = Field(default="", description="shlex-joined agent_command.")
    working_directory: str = ""
    created_at: str
    prompt_file: str | None = None
    pid: int | None = Field(default=None, description="The agent process.")
    started_at: str | None = None
    completed_at: str | None = None
    last_heartbeat: str | None = None
    exit_code: int | None = None
    error_message: str | None = None
    resource_usage: ResourceUsage | None = None

    run_id: str = ""
    attempt: int = 1
    branch: str = ""
    base_sha: str = ""
    worktree: str = ""
    session_id: str | None = None
    phase: Phase = Phase.QUEUED
    cost_usd: float | None = None
    tokens: Tokens = Field(default_factory=Tokens)
    pid_create_time: float | None = Field(
        default=None, description="psutil create_time of `pid`, so a reused pid is never trusted."
    )
    wm_pid: int | None = Field(default=None, description="The WorkflowManager subprocess.")
    wm_create_time: float | None = None
    agent_command: list[str] = Field(default_factory=list)
    sandbox: str = Field(default="", description="The boundary its agent runs in: bubblewrap, claude-sandbox, none.")
    last_event_at: str | None = None
    last_event: str | None = Field(default=None, description='Short text, e.g. "tool_use: Edit".')
    turns: int = 0
    priority: int = 5
    duration_seconds: float | None = None
    cancelled_by: CancelCause | None = Field(
        default=None, description="Who cancelled it; `interrupt` is the only cause `resume` re-queues."
    )
    fix_rounds: int = Field(default=0, description="Fix-up rounds the running attempt has started so far.")
    fixing: str | None = Field(default=None, description='Why the last fix-up round started, e.g. "verify failed".')
    validation: ValidationResult | None = Field(default=None, description="The checkpoint's findings, once final.")
    retry_wait: RetryWait | None = Field(
        default=None, description="Set while a queued task waits to retry; cleared by its next transition."
    )


class ProcessRegistryFile(BaseModel):
    """`process_registry.json`."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    timestamp: str
    processes: dict[str, ProcessInfo] = Field(description="Keyed by task id.")


class HeartbeatEntry(BaseModel):
    task_id: str
    task_name: str
    status: TaskStatus
    pid: int | None = None
    last_heartbeat: str | None = None
    last_event_at: str | None = None
    last_event: str | None = None
    phase: Phase = Phase.QUEUED
    attempt: int = 1
    resource_usage: ResourceUsage | None = None


class HeartbeatsFile(BaseModel):
    """`heartbeats.json`: queued and running tasks only."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    timestamp: str
    active_processes: list[HeartbeatEntry]


class RegistryStatsFile(BaseModel):
    """`registry_stats.json`."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    timestamp: str
    total_processes: int
    queued_count: int
    running_count: int
    completed_count: int
    failed_count: int
    timeout_count: int
    cancelled_count: int
    average_execution_time: float | None = Field(description="Seconds, completed tasks only.")
    total_cpu_usage: float = Field(description="Percent, running tasks only.")
    total_memory_usage: float | None = Field(description="MB, running tasks only; null if 0.")
    total_cost_usd: float


class StatusBreakdown(BaseModel):
    """Every status is always present (Gadugi listed only those with tasks)."""

    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    timeout: int = 0
    cancelled: int = 0


class ActiveProcess(BaseModel):
    task_id: str
    task_name: str
    status: TaskStatus
    runtime_seconds: float = Field(description="Since started_at; 0 if not started.")
    phase: Phase
    attempt: int


class RunStatusFile(BaseModel):
    """`<run_id>_status.json`, rewritten on every status change and at the end."""

    schema_version: int = SCHEMA_VERSION
    orchestration_id: str
    run_id: str
    timestamp: str
    total_processes: int
    status_breakdown: StatusBreakdown
    active_processes: list[ActiveProcess]
    finished: bool


class FinalFile(BaseModel):
    """`<run_id>_final.json`, written once by `finalize()`."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    timestamp: str
    processes: dict[str, ProcessInfo]


# The derived files are built as plain dicts rather than through the models above: they are
# rewritten on every status change, and with 1000 tasks model construction would dominate.
# tests/test_registry.py validates what these produce against the models.


def seconds_since(stamp: str | None, now: datetime) -> float:
    if not stamp:
        return 0.0
    return max(0.0, (now - datetime.fromisoformat(stamp)).total_seconds())


def heartbeat_entry(e: ProcessInfo) -> dict[str, Any]:
    """One `heartbeats.json` row (a HeartbeatEntry)."""
    return {
        "task_id": e.task_id,
        "task_name": e.task_name,
        "status": e.status.value,
        "pid": e.pid,
        "last_heartbeat": e.last_heartbeat,
        "last_event_at": e.last_event_at,
        "last_event": e.last_event,
        "phase": e.phase.value,
        "attempt": e.attempt,
        "resource_usage": None if e.resource_usage is None else e.resource_usage.model_dump(),
    }


def run_status(
    run_id: str, entries: Collection[ProcessInfo], now: datetime, finished: bool
) -> dict[str, Any]:
    """`<run_id>_status.json` (a RunStatusFile)."""
    breakdown = {s.value: 0 for s in TaskStatus}
    active = []
    for e in entries:
        breakdown[e.status.value] += 1
        if not e.status.terminal:
            active.append(
                {
                    "task_id": e.task_id,
                    "task_name": e.task_name,
                    "status": e.status.value,
                    "runtime_seconds": round(seconds_since(e.started_at, now), 3),
                    "phase": e.phase.value,
                    "attempt": e.attempt,
                }
            )
    return {
        "schema_version": SCHEMA_VERSION,
        "orchestration_id": run_id,
        "run_id": run_id,
        "timestamp": iso(now),
        "total_processes": len(entries),
        "status_breakdown": breakdown,
        "active_processes": active,
        "finished": finished,
    }


def registry_stats(run_id: str, entries: Collection[ProcessInfo], stamp: str) -> dict[str, Any]:
    """`registry_stats.json` (a RegistryStatsFile)."""
    counts = {s: 0 for s in TaskStatus}
    durations: list[float] = []
    cpu = memory = 0.0
    for e in entries:
        counts[e.status] += 1
        if e.status is TaskStatus.COMPLETED and e.duration_seconds is not None:
            durations.append(e.duration_seconds)
        if e.status is TaskStatus.RUNNING and e.resource_usage is not None:
            cpu += e.resource_usage.cpu_percent
            memory += e.resource_usage.memory_mb
    stats: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "timestamp": stamp}
    stats["total_processes"] = len(entries)
    stats.update({f"{s.value}_count": n for s, n in counts.items()})
    stats["average_execution_time"] = sum(durations) / len(durations) if durations else None
    stats["total_cpu_usage"] = round(cpu, 2)
    stats["total_memory_usage"] = round(memory, 2) or None
    stats["total_cost_usd"] = sum_costs(e.cost_usd for e in entries) or 0.0
    return stats


def replay(records: Iterable[Mapping[str, Any]], run_id: str) -> dict[str, ProcessInfo]:
    """Rebuild the registry entries of `run_id` from its journal records.

    `register` records carry the whole entry, `transition` and `update` records the fields they
    changed, so applying them in order gives back everything but heartbeat chatter.
    """
    raw: dict[str, dict[str, Any]] = {}
    for record in records:
        task_id, changes = record.get("task_id"), record.get("changes")
        if record.get("run_id") != run_id or not isinstance(task_id, str) or not isinstance(changes, dict):
            continue
        if record.get("event") == "register":
            raw[task_id] = dict(changes)
        elif record.get("event") in ("transition", "update") and task_id in raw:
            raw[task_id].update(changes)
    entries: dict[str, ProcessInfo] = {}
    for task_id, data in raw.items():
        try:
            entries[task_id] = ProcessInfo.model_validate(data)
        except ValueError as exc:
            log.warning("journal replay: dropping unreadable entry %s: %s", task_id, exc)
    return entries
