"""The run's result object, built from the task results: what `run --json` prints."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import StateError
from orchestrator.models import (
    OrchestrationResult,
    Plan,
    TaskResult,
    TaskStatus,
    TaskSummary,
    iso,
    sum_costs,
    utcnow,
)
from orchestrator.observe.run_segments import BusyTime, RunTiming, busy_time, single_process
from orchestrator.state.atomic import read_json


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


VERIFY_LINES = 10  # of a failed verify's output, in the result; the summary shows fewer


def summarize(planned_title: str, r: TaskResult, *, in_place: bool) -> TaskSummary:
    return TaskSummary(
        task_id=r.task_id,
        title=planned_title,
        status=r.status,
        branch=r.branch if r.started_at or r.attempts else "",  # a task that never started made no branch
        worktree=r.worktree if r.worktree and Path(r.worktree).exists() and not in_place else "",
        commits=r.commits,
        changed_files=r.changed_files,
        insertions=r.insertions,
        deletions=r.deletions,
        no_changes=r.no_changes,
        duration_seconds=round(r.duration_seconds + sum(a.duration_seconds for a in r.attempts), 3),
        attempts=r.attempt,
        error_message=r.error_message,
        cost_usd=r.total_cost_usd(),
        # One agent per task, so its final attempt says how every attempt's cost was obtained.
        cost_estimated=r.outcome.cost_estimated,
        tokens=r.outcome.tokens,
        session_id=r.outcome.session_id,
        verify_passed=r.verify.passed if r.verify else None,
        verify_output=r.verify.last_lines(VERIFY_LINES) if r.verify and not r.verify.passed else [],
        validation=r.validation,
        started_at=r.started_at,
        completed_at=r.completed_at,
    )


def timing_fields(timing: RunTiming, busy: BusyTime) -> dict[str, Any]:
    """The result's fields that state how the wall time was made up (see OrchestrationResult)."""
    return {
        "segments": [
            {"started_at": iso(s.start), "ended_at": iso(s.end), "seconds": round(s.seconds, 3), "pid": s.pid,
             "resumed": s.resumed, "killed": not (s.finished or s.running)}
            for s in timing.segments
        ],
        "gap_seconds": round(timing.gap_seconds, 3),
        "task_seconds": round(busy.total, 3),
        "task_seconds_in_gaps": round(busy.in_gaps, 3),
    }


def build_result(
    run_id: str,
    plan: Plan,
    results: dict[str, TaskResult],
    timing: RunTiming | float,
    engine: EngineFacts,
    *,
    in_place: bool,
) -> OrchestrationResult:
    """The run's result. `timing` comes from the run's journal (`run_segments.read_run_timing`,
    with `now` closing the caller's own segment); a bare number is the wall time of a single
    process ending now, for callers without a journal."""
    if not isinstance(timing, RunTiming):
        timing = single_process(timing, now=utcnow())
    rows = [summarize(p.spec.title, results[p.spec.id], in_place=in_place) for p in plan.tasks if p.spec.id in results]
    successful = sum(1 for r in rows if r.status == TaskStatus.COMPLETED)
    cancelled = sum(1 for r in rows if r.status == TaskStatus.CANCELLED)
    wall = timing.wall_seconds
    busy = busy_time(rows, timing.gaps)
    checks = [c for r in rows if r.validation is not None for c in r.validation.requirements]
    return OrchestrationResult(
        requirements_total=len(checks),
        requirements_met=sum(1 for c in checks if c.met),
        run_id=run_id,
        total_tasks=len(plan.tasks),
        successful_tasks=successful,
        failed_tasks=len(plan.tasks) - successful - cancelled,
        cancelled_tasks=cancelled,
        skipped_tasks=len(plan.skipped),
        # The run's wall time across all its orchestrator processes, not this process's alone.
        execution_time_seconds=round(wall, 3),
        # Measured: task time while an orchestrator ran, over the wall time of the run.
        parallel_speedup=round(busy.counted / wall, 2) if wall > 0 and busy.counted > 0 else None,
        max_parallel=engine.max_parallel,
        base_sha=plan.base_sha,
        total_cost_usd=sum_costs(r.cost_usd for r in rows),
        estimated_cost_usd=sum_costs(r.cost_usd for r in rows if r.cost_estimated),
        tasks=rows,
        fallback_sequential=in_place,
        interrupted=engine.interrupted,
        abort_reason=engine.abort_reason,
        **timing_fields(timing, busy),
    )
