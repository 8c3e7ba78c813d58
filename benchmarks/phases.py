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
from dataclasses import dataclass
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

    def medians(self) -> dict[str, float]:
        return {phase: statistics.median(values) for phase in PHASES
                if (values := [t[phase] for t in self.per_task.values() if phase in t])}

    def time_to_first_agent(self, started_at: float) -> float | None:
        return None if self.first_agent_at is None else self.first_agent_at - started_at


def read_phases(run_dir: Path) -> RunPhases:
    marks: dict[str, dict[str, float]] = {}
    open_phase: dict[str, tuple[str, float]] = {}
    per_task: dict[str, dict[str, float]] = {}
    first_agent: float | None = None
    for record in read_journal(run_dir / "events.jsonl"):
        task = record.get("task_id")
        if task is None:
            continue
        at = _ts(record)
        changes = record.get("changes") or {}
        event = record.get("event")
        if event == "register" or (event == "transition" and record.get("to") == "queued"):
            marks[task] = {"queued": at}
            per_task[task] = {}
            open_phase.pop(task, None)
        elif event == "transition" and record.get("to") == "running":
            _close(per_task, marks, task, "queued", at)
            marks.setdefault(task, {})["running"] = at
        elif event == "transition" and record.get("to") in TERMINAL:
            _end_open_phase(per_task, open_phase, task, at)
            if "done" in marks.get(task, {}):
                per_task.setdefault(task, {})["adopt"] = at - marks[task]["done"]
        if "wm_pid" in changes and "running" in marks.get(task, {}):
            per_task.setdefault(task, {})["spawn"] = at - marks[task]["running"]
            marks[task]["spawned"] = at
        if changes.get("pid") and first_agent is None:
            first_agent = at
        phase = changes.get("phase")
        if phase is None or event == "transition":
            continue
        _end_open_phase(per_task, open_phase, task, at)
        if phase == "agent" and "spawned" in marks.get(task, {}) and "setup" not in per_task.get(task, {}):
            per_task.setdefault(task, {})["setup"] = at - marks[task]["spawned"]
        if phase == "done":
            marks.setdefault(task, {})["done"] = at
        elif phase in _WM_PHASE:
            open_phase[task] = (_WM_PHASE[phase], at)
    return RunPhases(per_task=per_task, first_agent_at=first_agent)


def _close(per_task: dict[str, dict[str, float]], marks: dict[str, dict[str, float]], task: str, name: str,
           at: float) -> None:
    if name in marks.get(task, {}):
        per_task.setdefault(task, {})[name] = at - marks[task][name]


def _end_open_phase(per_task: dict[str, dict[str, float]], open_phase: dict[str, tuple[str, float]], task: str,
                    at: float) -> None:
    if task in open_phase:
        name, since = open_phase.pop(task)
        # A fix-up round re-enters a phase: its time adds up.
        per_task.setdefault(task, {})[name] = per_task.get(task, {}).get(name, 0.0) + at - since


def describe(phases: RunPhases) -> str:
    """`queued 0.00 · spawn 0.02 · setup 0.31 · …` (medians over the run's tasks, seconds)."""
    return " · ".join(f"{name} {value:.2f}" for name, value in phases.medians().items())
