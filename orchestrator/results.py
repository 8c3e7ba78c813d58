"""The run's result object, built from the task results: what `run --json` prints."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from orchestrator.atomic import read_json
from orchestrator.errors import StateError
from orchestrator.models import (
    OrchestrationResult,
    Plan,
    TaskResult,
    TaskStatus,
    TaskSummary,
)


def load_task_result(path: Path, attempt: int) -> TaskResult | None:
    """A WorkflowManager's result.json for this attempt; None when missing, torn (kept aside by
    read_json) or left by another attempt."""
    try:
        data = read_json(path)
    except StateError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        result = TaskResult.model_validate(data)
    except ValueError:
        return None
    return result if result.attempt == attempt else None


class EngineFacts(Protocol):
    max_parallel: int
    interrupted: bool
    abort_reason: str | None


def summarize(planned_title: str, r: TaskResult, *, in_place: bool) -> TaskSummary:
    costs = [a.cost_usd for a in r.attempts if a.cost_usd is not None]
    if r.outcome.cost_usd is not None:
        costs.append(r.outcome.cost_usd)
    return TaskSummary(
        task_id=r.task_id,
        title=planned_title,
        status=r.status,
        branch=r.branch,
        worktree=r.worktree if r.worktree and Path(r.worktree).exists() and not in_place else "",
        commits=r.commits,
        changed_files=r.changed_files,
        insertions=r.insertions,
        deletions=r.deletions,
        no_changes=r.no_changes,
        duration_seconds=round(r.duration_seconds + sum(a.duration_seconds for a in r.attempts), 3),
        attempts=r.attempt,
        error_message=r.error_message,
        cost_usd=round(sum(costs), 6) if costs else None,
        tokens=r.outcome.tokens,
        session_id=r.outcome.session_id,
        verify_passed=r.verify.passed if r.verify else None,
        started_at=r.started_at,
        completed_at=r.completed_at,
    )


def build_result(
    run_id: str, plan: Plan, results: dict[str, TaskResult], wall: float, engine: EngineFacts, *, in_place: bool
) -> OrchestrationResult:
    rows = [summarize(p.spec.title, results[p.spec.id], in_place=in_place) for p in plan.tasks if p.spec.id in results]
    successful = sum(1 for r in rows if r.status == TaskStatus.COMPLETED)
    cancelled = sum(1 for r in rows if r.status == TaskStatus.CANCELLED)
    busy = sum(r.duration_seconds for r in rows)
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    return OrchestrationResult(
        run_id=run_id,
        total_tasks=len(plan.tasks),
        successful_tasks=successful,
        failed_tasks=len(plan.tasks) - successful - cancelled,
        cancelled_tasks=cancelled,
        skipped_tasks=len(plan.skipped),
        execution_time_seconds=round(wall, 3),
        # Measured: the sum of what each task took over the wall time of the run.
        parallel_speedup=round(busy / wall, 2) if wall > 0 and busy > 0 else None,
        max_parallel=engine.max_parallel,
        base_sha=plan.base_sha,
        total_cost_usd=round(sum(costs), 6) if costs else None,
        tasks=rows,
        fallback_sequential=in_place,
        interrupted=engine.interrupted,
        abort_reason=engine.abort_reason,
    )
