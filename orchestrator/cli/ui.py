"""Everything the CLI prints. The core returns data; only this module talks to the terminal."""
from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

import click

from orchestrator.agents.sandbox import describe_policy
from orchestrator.config.durations import format_duration
from orchestrator.config.machine import Machine
from orchestrator.models import EdgeKind, OrchestrationResult, Plan, TaskStatus, TaskSummary, cost_line, money
from orchestrator.plan.analyzer import longest_remaining_path, never_together, plan_json

SUMMARY_VERIFY_LINES = 5  # of a failed verify's output under its task's error line


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def print_plan(plan: Plan, warnings: Sequence[str], *, as_json: bool, stdin_note: bool = True,
               machine: Machine | None = None) -> None:
    """`machine`: what `--max-parallel auto` detected, when the limit came from it."""
    if as_json:
        data = plan_json(plan, machine)
        data["warnings"] = list(warnings)
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"Plan: {len(plan.tasks)} task(s), base {plan.base_ref} = {plan.base_sha[:12]}")
    if machine is not None:
        click.echo(f"Max parallel {machine.parallel} (auto: {machine.describe()})")
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
        click.echo(f"    sandbox:  {describe_policy(planned.sandbox)}")
    _print_schedule(plan)
    for skipped in plan.skipped:
        click.echo(f"\nSkipped {skipped.id}: {skipped.skip_reason}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def _print_schedule(plan: Plan) -> None:
    """What the engine will do with the plan: dependencies are waits (and pass work along);
    conflicts only keep two tasks apart, in whichever order the run reaches them."""
    waits = [e for e in plan.edges if e.kind == EdgeKind.DEPENDENCY]
    apart = never_together(plan)
    waiting = {e.after for e in waits}
    remaining = longest_remaining_path([t.spec for t in plan.tasks], plan.edges)
    # The engine's order among ready tasks: priority (1 first), longest remaining path, input order.
    ready = [t.spec.id for t in sorted(plan.tasks, key=lambda t: (t.spec.priority, -remaining.get(t.spec.id, 1),
                                                                   t.spec.index))
             if t.spec.id not in waiting]
    if ready:
        click.echo(f"\nReady at the start, in the order they are started: {', '.join(ready)}")
    if waits:
        click.echo("\nWaits for (starts from that work, after it completed):")
        for edge in waits:
            click.echo(f"  {edge.after} after {edge.before}: {edge.reason}")
    if apart:
        click.echo("\nNever at the same time (either order; the first to be ready goes first):")
        for tasks, why in apart:
            click.echo(f"  {' / '.join(tasks)}: {why}")


def print_summary(result: OrchestrationResult, warnings: Sequence[str]) -> None:
    rows = []
    for t in result.tasks:
        commits = "no changes" if t.no_changes and t.status == TaskStatus.COMPLETED else str(len(t.commits))
        cost = money(t.cost_usd, estimated=t.cost_estimated)
        rows.append([t.task_id, t.status.value, format_duration(t.duration_seconds), commits,
                     str(len(t.changed_files)), cost, t.branch or "-"])
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
        click.echo(f"cost: {cost_line(result)}")
    _print_errors([t for t in result.tasks if t.status != TaskStatus.COMPLETED and t.error_message])
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.report_path:
        click.echo(f"report: {result.report_path}")
    if result.abort_reason:
        click.echo(f"error: {result.abort_reason}", err=True)


def _print_errors(tasks: Sequence[TaskSummary]) -> None:
    """Each task's error line; one cause shared by many tasks (not logged in, a stopped run) is
    said once, naming them."""
    by_message: dict[str, list[TaskSummary]] = {}
    for t in tasks:
        by_message.setdefault(t.error_message or "", []).append(t)
    for message, group in by_message.items():
        if len(group) > 2:
            names = ", ".join(t.task_id for t in group[:6]) + (", ..." if len(group) > 6 else "")
            click.echo(f"  {len(group)} tasks ({names}): {message}")
            continue
        for t in group:
            click.echo(f"  {t.task_id}: {message}" + (f" (worktree kept: {t.worktree})" if t.worktree else ""))
            for line in t.verify_output[-SUMMARY_VERIFY_LINES:]:
                click.echo(f"    | {line}")


def print_error(message: str) -> None:
    click.echo(f"error: {message}", err=True)

