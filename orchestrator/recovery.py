"""Picking up a run whose orchestrator died: what finished, what still runs, what was lost.

The journal-backed registry says which attempt each task was on; the task directories say the
rest: result.json (it finished), wm.json (which WorkflowManager, by pid and create time),
setup.json (the commit its branch started from).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from orchestrator.engine import Attached
from orchestrator.liveness import is_alive
from orchestrator.models import Plan, TaskResult, TaskStatus
from orchestrator.registry import ProcessRegistry
from orchestrator.results import load_task_result
from orchestrator.wire import TaskRequest


def recover_tasks(
    run_dir: Path, plan: Plan, registry: ProcessRegistry
) -> tuple[dict[str, TaskResult], dict[str, Attached], dict[str, TaskResult]]:
    """Sort a dead orchestrator's tasks: finished ones (adopted, even those that ended while
    nobody watched), ones whose WorkflowManager still runs (re-attached), and lost ones
    (re-queued with a higher attempt, to continue on their branch)."""
    finished: dict[str, TaskResult] = {}
    attached: dict[str, Attached] = {}
    requeued: dict[str, TaskResult] = {}
    snapshot = registry.snapshot()
    for planned in plan.tasks:
        tid = planned.spec.id
        info = snapshot.get(tid)
        if info is None:
            continue
        task_dir = run_dir / "tasks" / tid
        status = TaskStatus(info.status)
        result = load_task_result(task_dir / "result.json", info.attempt)
        if status.terminal:
            finished[tid] = result or TaskResult(
                task_id=tid, status=status, attempt=info.attempt, branch=planned.branch,
                worktree=info.worktree or "", base_sha=plan.base_sha, error_message=info.error_message,
            )
            continue
        if status != TaskStatus.RUNNING:
            continue
        request = _read_request(task_dir)
        wm = _read_wm(task_dir, info.attempt)
        if wm is None and result is None and request is not None:
            # Launched just before the crash: give it a moment to identify itself.
            wm, result = _await_wm(task_dir, info.attempt)
        if wm is not None and request is not None and is_alive(*wm):
            attached[tid] = Attached(request=request, wm_pid=wm[0], wm_create_time=wm[1])
        elif result is not None:
            # Finished while nobody watched: adopt its result as if we had seen it end.
            registry.transition(tid, result.status, error_message=result.error_message, phase="done",
                                session_id=result.outcome.session_id, cost_usd=result.outcome.cost_usd)
            finished[tid] = result
        else:
            lost = TaskResult(task_id=tid, status=TaskStatus.FAILED, attempt=info.attempt,
                              branch=planned.branch, worktree=info.worktree or "", base_sha=plan.base_sha,
                              start_sha=_setup_start(task_dir), error_message="lost when the orchestrator stopped")
            lost.outcome.failure = "lost"
            registry.transition(tid, TaskStatus.QUEUED, attempt=info.attempt + 1, reason=lost.error_message)
            requeued[tid] = lost
    return finished, attached, requeued


def _read_request(task_dir: Path) -> TaskRequest | None:
    try:
        return TaskRequest.model_validate_json((task_dir / "request.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_wm(task_dir: Path, attempt: int) -> tuple[int, float] | None:
    """The WorkflowManager of this attempt, as it recorded itself when it started."""
    try:
        data = json.loads((task_dir / "wm.json").read_text(encoding="utf-8"))
        if int(data["attempt"]) == attempt:
            return int(data["pid"]), float(data["create_time"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _await_wm(task_dir: Path, attempt: int, timeout: float = 2.0) -> tuple[tuple[int, float] | None, TaskResult | None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wm, result = _read_wm(task_dir, attempt), load_task_result(task_dir / "result.json", attempt)
        if wm is not None or result is not None:
            return wm, result
        time.sleep(0.05)
    return None, None


def _setup_start(task_dir: Path) -> str:
    try:
        data = json.loads((task_dir / "setup.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(data.get("start_sha", "")) if isinstance(data, dict) else ""
