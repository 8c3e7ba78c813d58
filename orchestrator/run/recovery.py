"""Picking up a run whose orchestrator stopped: what finished, what still runs, what must run again.

Every state a kill -9 or an interrupt can leave has one answer here. The journal-backed registry
says which attempt each task was on and why it stopped; the attempt lock (attempt_lock.py) says,
without any time window, whether that attempt's WorkflowManager is alive; the task directory says
the rest: result.json (it ended), wm.json (which process it is), setup.json (the commit its branch
started from).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.gitops import git
from orchestrator.models import AgentOutcome, Plan, PlannedTask, TaskResult, TaskStatus
from orchestrator.run.engine import Attached, Requeued
from orchestrator.run.results import load_task_result
from orchestrator.state.registry import ProcessRegistry
from orchestrator.state.registry_models import ProcessInfo
from orchestrator.task import attempt_lock
from orchestrator.task.wire import AGENT_CHECKPOINT, AgentCheckpoint, TaskRequest

IDENTITY_POLL = 0.02  # seconds between looks for a starting WorkflowManager's wm.json


@dataclass
class Recovery:
    """What `resume` found, task by task (a task is in at most one of these)."""

    finished: dict[str, TaskResult] = field(default_factory=dict)  # final; released in plan order
    attached: dict[str, Attached] = field(default_factory=dict)  # still running: watched, not started
    ended: dict[str, tuple[TaskRequest, TaskResult]] = field(default_factory=dict)  # ended unwatched
    requeued: dict[str, Requeued] = field(default_factory=dict)  # to run (again)

    def describe(self) -> list[str]:
        """One line per task that is not simply waiting, for `resume --dry-run` and the log."""
        lines = [f"re-attach {tid} (attempt {a.request.attempt}, WorkflowManager pid {a.wm_pid})"
                 for tid, a in self.attached.items()]
        lines += [f"adopt {tid}: attempt {r.attempt} ended {r.status.value} while no orchestrator ran"
                  for tid, (_, r) in self.ended.items()]
        for tid, back in self.requeued.items():
            how = (f"continue on {back.previous.branch}" if back.previous is not None and back.previous.branch
                   else "start afresh")
            lines.append(f"re-queue {tid} as attempt {back.attempts_used + 1} ({how})")
        return lines


def inspect_tasks(run_dir: Path, plan: Plan, entries: dict[str, ProcessInfo], project_root: Path) -> Recovery:
    """Sort a stopped run's tasks without changing anything (what `resume --dry-run` shows)."""
    found = Recovery()
    for planned in plan.tasks:
        tid = planned.spec.id
        info = entries.get(tid)
        if info is None:
            continue
        task_dir = run_dir / "tasks" / tid
        status = TaskStatus(info.status)
        result = load_task_result(task_dir / "result.json", info.attempt)
        if status == TaskStatus.CANCELLED and info.cancelled_by == "interrupt":
            # Ctrl-C (or the orchestrator's SIGTERM) stopped it: continue where it was.
            ran = result is not None or _request_attempt(task_dir) == info.attempt
            previous = result or (_leftover(project_root, plan, planned, task_dir, info) if ran else None)
            found.requeued[tid] = Requeued(attempts_used=info.attempt if ran else info.attempt - 1,
                                           previous=previous)
        elif status.terminal:
            found.finished[tid] = result or TaskResult(
                task_id=tid, status=status, attempt=info.attempt, branch=planned.branch,
                worktree=info.worktree or "", base_sha=plan.base_sha, error_message=info.error_message,
                cancelled_by=info.cancelled_by,
            )
        elif status == TaskStatus.QUEUED:
            if info.attempt > 1:
                # Waiting for a retry when the orchestrator stopped: the retry still continues the
                # failed attempt's branch and session.
                earlier = load_task_result(task_dir / "result.json", info.attempt - 1)
                found.requeued[tid] = Requeued(attempts_used=info.attempt - 1, previous=earlier)
        else:
            _sort_running(found, project_root, plan, planned, task_dir, info, result)
    return found


def _sort_running(found: Recovery, project_root: Path, plan: Plan, planned: PlannedTask, task_dir: Path,
                  info: ProcessInfo, result: TaskResult | None) -> None:
    tid = planned.spec.id
    lock = attempt_lock.lock_path(task_dir, info.attempt)
    request = _read_request(task_dir)
    if attempt_lock.is_held(lock):
        wm = _await_identity(task_dir, info.attempt, lock)
        if wm is not None and request is not None and request.attempt == info.attempt:
            found.attached[tid] = Attached(request=request, wm_pid=wm[0], wm_create_time=wm[1],
                                           agent_pid=info.pid, agent_create_time=info.pid_create_time)
            return
        # It ended while we looked: read what it left.
        result = load_task_result(task_dir / "result.json", info.attempt)
    if result is not None and request is not None and request.attempt == info.attempt:
        found.ended[tid] = (request, result)
        return
    # No process and no result: the attempt never started (the orchestrator died launching it)
    # or its WorkflowManager died too. Either way it runs again, on whatever it left behind.
    previous = _leftover(project_root, plan, planned, task_dir, info)
    started = request is not None and request.attempt == info.attempt
    found.requeued[tid] = Requeued(attempts_used=info.attempt if started else info.attempt - 1, previous=previous)


def apply(found: Recovery, registry: ProcessRegistry) -> None:
    """Record the decisions in the registry (journaled) before anything is started."""
    with registry.batch():
        for tid, back in found.requeued.items():
            info = registry.get(tid)
            if info is None:
                continue
            attempt = back.attempts_used + 1
            why = "resumed: the run was interrupted" if info.status == TaskStatus.CANCELLED else \
                "resumed: the attempt was lost with the orchestrator"
            if info.status == TaskStatus.CANCELLED:
                registry.transition(tid, TaskStatus.QUEUED, reopen=True, reason=why, attempt=max(attempt, info.attempt))
            elif info.status == TaskStatus.RUNNING:
                registry.transition(tid, TaskStatus.QUEUED, reason=why, attempt=info.attempt + 1)
                # The registry's attempt moved on; the next launch must match it.
                back.attempts_used = info.attempt


def _leftover(project_root: Path, plan: Plan, planned: PlannedTask, task_dir: Path,
              info: ProcessInfo) -> TaskResult | None:
    """What an attempt that left no result left on disk: the branch this run made for the task
    (the plan named it, and no branch of that name existed when the run planned), from the
    commit it was created at. None when there is nothing: the next attempt starts afresh."""
    branch = planned.branch
    start = _setup_start(task_dir) or (git.branch_created_at(project_root, branch) if
                                       git.branch_exists(project_root, branch) else None)
    if not start:
        return None
    lost = TaskResult(task_id=planned.spec.id, status=TaskStatus.FAILED, attempt=info.attempt, branch=branch,
                      worktree=info.worktree or str(planned.worktree), base_sha=plan.base_sha, start_sha=start,
                      error_message="lost when the orchestrator stopped", cancelled_by=info.cancelled_by)
    lost.outcome.failure = "lost"
    lost.outcome.session_id = info.session_id
    checkpoint = _agent_checkpoint(task_dir, info.attempt)
    if checkpoint is not None and checkpoint.success:
        # Its agent had finished its work; only what came after (verify, commit) was cut short.
        lost.outcome = checkpoint
    return lost


def _agent_checkpoint(task_dir: Path, attempt: int) -> AgentOutcome | None:
    try:
        saved = AgentCheckpoint.model_validate_json((task_dir / AGENT_CHECKPOINT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved.outcome if saved.attempt == attempt else None


def _await_identity(task_dir: Path, attempt: int, lock: Path) -> tuple[int, float] | None:
    """The pid of a WorkflowManager whose lock is held. It writes wm.json first thing; until it
    has, keep looking — the loop ends when the file appears or the process is gone, never on a
    timer, so a slow start on a loaded machine is not mistaken for a lost one."""
    while True:
        wm = _read_wm(task_dir, attempt)
        if wm is not None:
            return wm
        if not attempt_lock.is_held(lock):
            return _read_wm(task_dir, attempt)
        time.sleep(IDENTITY_POLL)


def _read_request(task_dir: Path) -> TaskRequest | None:
    try:
        return TaskRequest.model_validate_json((task_dir / "request.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _request_attempt(task_dir: Path) -> int | None:
    request = _read_request(task_dir)
    return request.attempt if request is not None else None


def _read_wm(task_dir: Path, attempt: int) -> tuple[int, float] | None:
    """The WorkflowManager of this attempt, as it (or its launcher) recorded it."""
    try:
        data = json.loads((task_dir / "wm.json").read_text(encoding="utf-8"))
        if int(data["attempt"]) == attempt and float(data["create_time"]) > 0:
            return int(data["pid"]), float(data["create_time"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _setup_start(task_dir: Path) -> str:
    try:
        data = json.loads((task_dir / "setup.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(data.get("start_sha", "")) if isinstance(data, dict) else ""
