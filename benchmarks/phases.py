"""Where a task's time goes, read from a run's journal (events.jsonl).

Every step of a task is journaled with a timestamp as the orchestrator learns of it, so the
phases need no instrumentation of their own:

    queued     register (or re-queue) → the engine records it `running`
    spawn      `running` → the WorkflowManager's pid is recorded (fork or exec)
    setup      pid recorded → phase `agent` (worktree ready, setup hooks run)
    agent      phase `agent` → the phase after it (the agent's own run)
    commit     phase `commit` → the next phase
    checks     phase `verify` → the next phase (verify commands, validation)
    report     phase `report` → phase `done` (result written)
    adopt      phase `done` → the terminal transition (the engine judged the result)

A phase a task never entered (no verify command, say) is absent for it, not zero. Retried
tasks count their last attempt. `time_to_first_agent` is from a moment the caller measured (the
CLI's start) to the first agent process recorded.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.state.journal import read_journal

PHASES = ("queued", "spawn", "setup", "agent", "commit", "checks", "report", "adopt")
_WM_PHASE = {"agent": "agent", "verify": "checks", "commit": "commit", "report": "report"}
TERMINAL = {"completed", "failed", "timeout", "cancelled"}


def _ts(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["ts"]).timestamp()


@dataclass
class RunPhases:
    per_task: dict[str, dict[str, float]]
    first_agent_at: float | None  # epoch seconds
    # Per task, its last attempt's hold on a slot: `running` → terminal (epoch seconds).
    slots: dict[str, tuple[float, float]] = field(default_factory=dict)
    run_started_at: float | None = None

    def medians(self) -> dict[str, float]:
        return {phase: statistics.median(values) for phase in PHASES
                if (values := [t[phase] for t in self.per_task.values() if phase in t])}

    def time_to_first_agent(self, started_at: float) -> float | None:
        return None if self.first_agent_at is None else self.first_agent_at - started_at


@dataclass
class _Attempt:
    """One task's latest attempt, as the journal goes by."""

    marks: dict[str, float] = field(default_factory=dict)  # queued, running, spawned, done: when
    spent: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    inside: tuple[str, float] | None = None  # the WorkflowManager phase under way, since when

    def since(self, mark: str, phase: str, at: float) -> None:
        if mark in self.marks:
            self.spent[phase] = at - self.marks[mark]

    def leave_phase(self, at: float) -> None:
        if self.inside is not None:
            name, since = self.inside
            # A fix-up round re-enters a phase: its time adds up.
            self.spent[name] = self.spent.get(name, 0.0) + at - since
            self.inside = None


def read_phases(run_dir: Path) -> RunPhases:
    attempts: dict[str, _Attempt] = {}
    first_agent: float | None = None
    run_started: float | None = None
    slots: dict[str, tuple[float, float]] = {}
    for record in read_journal(run_dir / "events.jsonl"):
        task = record.get("task_id")
        if task is None:
            if record.get("event") == "run_started" and run_started is None:
                run_started = _ts(record)
            continue
        at = _ts(record)
        changes = record.get("changes") or {}
        event, to = record.get("event"), record.get("to")
        if event == "register" or (event == "transition" and to == "queued"):
            attempts[task] = _Attempt(marks={"queued": at})  # a retry counts its last attempt
            continue
        attempt = attempts.setdefault(task, _Attempt())
        if event == "transition" and to == "running":
            attempt.since("queued", "queued", at)
            attempt.marks["running"] = at
        elif event == "transition" and to in TERMINAL:
            attempt.leave_phase(at)
            attempt.since("done", "adopt", at)
            if "running" in attempt.marks:
                slots[task] = (attempt.marks["running"], at)
        if "wm_pid" in changes and "running" in attempt.marks:
            attempt.since("running", "spawn", at)
            attempt.marks["spawned"] = at
        if changes.get("pid") and first_agent is None:
            first_agent = at
        phase = changes.get("phase")
        if phase is None or event == "transition":
            continue
        attempt.leave_phase(at)
        if phase == "agent" and "setup" not in attempt.spent:
            attempt.since("spawned", "setup", at)
        if phase == "done":
            attempt.marks["done"] = at
        elif phase in _WM_PHASE:
            attempt.inside = (_WM_PHASE[phase], at)
    return RunPhases(per_task={task: a.spent for task, a in attempts.items()}, first_agent_at=first_agent,
                     slots=slots, run_started_at=run_started)


def describe(phases: RunPhases) -> str:
    """`queued 0.00 · spawn 0.02 · setup 0.31 · …` (medians over the run's tasks, seconds)."""
    return " · ".join(f"{name} {value:.2f}" for name, value in phases.medians().items())
