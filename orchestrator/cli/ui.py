"""Everything the CLI prints. The core returns data; only this module talks to the terminal."""
from __future__ import annotations

import json
import shlex
import time
from collections.abc import Sequence
from typing import Any

import click

from orchestrator.plan.analyzer import execution_groups, plan_json
from orchestrator.config.durations import format_duration
from orchestrator.models import OrchestrationResult, Plan, TaskResult, TaskStatus

_MARK = {
    TaskStatus.COMPLETED: "ok",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.TIMEOUT: "TIMEOUT",
    TaskStatus.CANCELLED: "cancelled",
}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def print_plan(plan: Plan, warnings: Sequence[str], *, as_json: bool, stdin_note: bool = True) -> None:
    if as_json:
        data = plan_json(plan)
        data["warnings"] = list(warnings)
        click.echo(json.dumps(data, indent=2))
        return
    groups = execution_groups([t.spec for t in plan.tasks], plan.edges)
    click.echo(f"Plan: {len(plan.tasks)} task(s), base {plan.base_ref} = {plan.base_sha[:12]}, "
               f"{len(groups)} level(s) of ordering")
    for planned in plan.tasks:
        spec = planned.spec
        click.echo(f"\n  {spec.id}  \"{spec.title}\"  (priority {spec.priority})")
        click.echo(f"    prompt:   {spec.prompt_file}")
        click.echo(f"    branch:   {planned.branch}")
        click.echo(f"    worktree: {planned.worktree}")
        if spec.files:
            click.echo(f"    scope:    {', '.join(spec.files)}")
        if spec.verify:
            click.echo(f"    verify:   {spec.verify}")
        suffix = " < prompt.md" if stdin_note and "{prompt_file}" not in " ".join(planned.agent_command) else ""
        click.echo(f"    command:  {shlex.join(planned.agent_command)}{suffix}")
    if plan.edges:
        click.echo("\nOrdering:")
        for edge in plan.edges:
            click.echo(f"  {edge.before} -> {edge.after}  [{edge.kind.value}] {edge.reason}")
    click.echo("\nCan run side by side:")
    for i, group in enumerate(groups, 1):
        click.echo(f"  level {i}: {', '.join(group)}")
    for skipped in plan.skipped:
        click.echo(f"\nSkipped {skipped.id}: {skipped.skip_reason}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


class ProgressPrinter:
    """Plain progress lines, one per lifecycle change; quiet mode prints nothing."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.t0 = time.monotonic()

    ALWAYS = frozenset({"waiting", "run_timeout", "breaker", "interrupt", "kill"})

    def __call__(self, task_id: str, what: str, data: dict[str, Any]) -> None:
        if self.quiet and what not in self.ALWAYS:
            return
        stamp = f"[{format_duration(time.monotonic() - self.t0):>7}]"
        if what == "started":
            after = f" after {', '.join(data['predecessors'])}" if data.get("predecessors") else ""
            click.echo(f"{stamp} start  {task_id} on {data['branch']}{after}")
        elif what == "finished":
            r: TaskResult = data["result"]
            work = "no changes" if r.no_changes else f"{len(r.commits)} commit(s), {len(r.changed_files)} file(s)"
            detail = f": {r.error_message}" if r.error_message and r.status != TaskStatus.COMPLETED else ""
            click.echo(f"{stamp} {_MARK.get(r.status, r.status.value):<6} {task_id} in "
                       f"{format_duration(r.duration_seconds)}, {work}{detail}")
        elif what == "cancelled":
            click.echo(f"{stamp} skip   {task_id}: {data['reason']}")
        elif what == "interrupt":
            click.echo(f"{stamp} interrupted: stopping {len(data['running'])} running task(s); "
                       "press Ctrl-C again to kill them at once", err=True)
        elif what == "retry":
            click.echo(f"{stamp} retry  {task_id}: attempt {data['attempt']} failed ({data['failure']}): "
                       f"{data['error']}; again in {format_duration(data['delay'])}")
        elif what == "attached":
            click.echo(f"{stamp} attach {task_id}: still running (pid {data['pid']}, attempt {data['attempt']})")
        elif what in ("waiting", "run_timeout"):
            click.echo(f"{stamp} {data['reason']}", err=True)
        elif what == "cancel_request":
            click.echo(f"{stamp} cancel requested for {', '.join(data['tasks'])}", err=True)
        elif what == "breaker":
            click.echo(f"{stamp} {data['reason']}", err=True)
        elif what == "kill":
            click.echo(f"{stamp} killing {len(data['running'])} task(s) now", err=True)
        elif self.verbose and what in ("phase", "log"):
            click.echo(f"{stamp}        {task_id}: {data.get('phase') or data.get('message')}")


def print_summary(result: OrchestrationResult, warnings: Sequence[str]) -> None:
    rows = []
    for t in result.tasks:
        commits = "no changes" if t.no_changes and t.status == TaskStatus.COMPLETED else str(len(t.commits))
        cost = f"${t.cost_usd:.4f}" if t.cost_usd is not None else "-"
        rows.append([t.task_id, t.status.value, format_duration(t.duration_seconds), commits,
                     str(len(t.changed_files)), cost, t.branch])
    click.echo("")
    click.echo(table(["task", "status", "duration", "commits", "files", "cost", "branch"], rows))
    speedup = f"{result.parallel_speedup:.2f}x" if result.parallel_speedup else "n/a"
    processes = ""
    if len(result.segments) > 1:
        processes = (f" across {len(result.segments)} orchestrator processes "
                     f"(plus {format_duration(result.gap_seconds)} while none ran)")
    click.echo(
        f"\n{result.successful_tasks}/{result.total_tasks} completed, {result.failed_tasks} failed, "
        f"{result.cancelled_tasks} cancelled in {format_duration(result.execution_time_seconds)}{processes} "
        f"(sum of task time / wall time: {speedup}; max parallel {result.max_parallel})"
    )
    if result.skipped_tasks:
        click.echo(f"{result.skipped_tasks} prompt(s) skipped as already done")
    if result.total_cost_usd is not None:
        click.echo(f"cost: ${result.total_cost_usd:.4f}")
    for t in result.tasks:
        if t.status != TaskStatus.COMPLETED and t.error_message:
            click.echo(f"  {t.task_id}: {t.error_message}" + (f" (worktree kept: {t.worktree})" if t.worktree else ""))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.report_path:
        click.echo(f"report: {result.report_path}")
    if result.abort_reason:
        click.echo(f"error: {result.abort_reason}", err=True)


def print_error(message: str) -> None:
    click.echo(f"error: {message}", err=True)

