"""report.json and report.md for a run, written in `finally` so even an interrupted run has one."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from orchestrator.agents.sandbox import describe_policy
from orchestrator.config.durations import format_duration
from orchestrator.gitops.merge import MergeReport
from orchestrator.models import OrchestrationResult, Plan, TaskResult, ValidationResult, cost_line, money
from orchestrator.observe.run_segments import RunTiming, busy_time
from orchestrator.observe.timeline import render_timeline
from orchestrator.state.atomic import write_json_atomic, write_text_atomic

REPORT_VERIFY_LINES = 20  # of a failed verify's output: enough for a traceback's end


def write_reports(
    run_dir: Path,
    result: OrchestrationResult,
    plan: Plan,
    results: dict[str, TaskResult],
    warnings: list[str],
    merge: MergeReport | None = None,
    timing: RunTiming | None = None,
) -> Path:
    """`timing` is the one `build_result` was given, so every figure here is the result's; without
    it the run is described as one process."""
    report = {
        **result.model_dump(mode="json"),
        "warnings": warnings,
        "merge_check": merge.model_dump(mode="json") if merge is not None else None,
        "edges": [e.model_dump(mode="json") for e in plan.edges],
        "skipped": [{"task_id": s.id, "prompt_file": str(s.prompt_file), "reason": s.skip_reason} for s in plan.skipped],
        "task_results": {tid: r.model_dump(mode="json") for tid, r in results.items()},
    }
    write_json_atomic(run_dir / "report.json", report)
    write_text_atomic(run_dir / "timeline.svg", render_timeline(
        result.tasks, results, slots=max(1, result.max_parallel), title=f"Run {result.run_id}", timing=timing))
    path = run_dir / "report.md"
    write_text_atomic(path, render_markdown(result, plan, results, warnings, merge, timing))
    return path


def render_markdown(
    result: OrchestrationResult,
    plan: Plan,
    results: dict[str, TaskResult],
    warnings: list[str],
    merge: MergeReport | None = None,
    timing: RunTiming | None = None,
) -> str:
    lines = [
        f"# Run {result.run_id}",
        "",
        f"- Tasks: {result.total_tasks} ({result.successful_tasks} completed, {result.failed_tasks} failed, "
        f"{result.cancelled_tasks} cancelled, {result.skipped_tasks} skipped as done)",
        f"- Wall time: {_wall_time(result, timing)}; max parallel {result.max_parallel}",
        f"- Parallel speedup {_speedup(result, timing)}",
        f"- Base: `{result.base_sha}`",
    ]
    if result.total_cost_usd is not None:
        lines.append(f"- Cost: {cost_line(result)}")
    coverage = requirement_coverage(results.values())
    if coverage is not None:
        lines.append(f"- Requirement coverage: {_coverage(*coverage)} done with evidence found, as the agents "
                     "claimed them (the evidence is checked, the claim is theirs)")
    if result.fallback_sequential:
        lines.append("- Worktrees could not be created: tasks ran one at a time in the main checkout.")
    if result.interrupted:
        lines.append("- The run was interrupted.")
    if result.abort_reason:
        lines.append(f"- Stopped early: {result.abort_reason}")
    lines += ["", "![Timeline: one row per task, one bar per attempt, retried attempts hatched](timeline.svg)"]
    lines += ["", "| task | status | duration | commits | files | +/- | cost | branch |", "|---|---|---|---|---|---|---|---|"]
    for row in result.tasks:
        cost = money(row.cost_usd, estimated=row.cost_estimated)
        work = "no changes" if row.no_changes and row.status.value == "completed" else str(len(row.commits))
        branch = f"`{row.branch}`" if row.branch else "none (never started)"
        lines.append(
            f"| {row.task_id} | {row.status.value} | {format_duration(row.duration_seconds)} | {work} | "
            f"{len(row.changed_files)} | +{row.insertions}/-{row.deletions} | {cost} | {branch} |"
        )
    for row in result.tasks:
        r = results.get(row.task_id)
        if r is None:
            continue
        lines += ["", f"## {row.task_id}: {row.title}", ""]
        lines.append(f"- Status: {row.status.value} after {row.attempts} attempt(s) in {format_duration(row.duration_seconds)}")
        planned = next((t for t in plan.tasks if t.spec.id == row.task_id), None)
        if planned is not None:
            lines.append(f"- Sandbox: {describe_policy(planned.sandbox)}")
        if row.error_message:
            lines.append(f"- Error: {row.error_message}")
        for earlier in r.attempts:
            lines.append(f"- Attempt {earlier.attempt}: {earlier.failure}: {earlier.error_message}")
        if row.tokens.total:
            t = row.tokens
            lines.append(f"- Tokens: {t.input} in, {t.output} out, {t.cache_read} cache read, {t.cache_creation} cache write")
        if r.verify is not None:
            verdict = "passed" if r.verify.passed else "failed"
            lines.append(f"- Verify `{r.verify.command}`: {verdict} (exit {r.verify.exit_code})")
            if not r.verify.passed:
                lines += ["", "```", *r.verify.last_lines(REPORT_VERIFY_LINES), "```", ""]
        if r.validation is not None:
            lines += _validation_lines(r.validation)
        if r.commits:
            lines.append(f"- Commits: {', '.join(c[:10] for c in r.commits)}")
        if r.changed_files:
            lines.append(f"- Files: {', '.join(r.changed_files[:20])}{' ...' if len(r.changed_files) > 20 else ''}")
        if r.outcome.final_message:
            lines += ["", "> " + r.outcome.final_message.strip().replace("\n", "\n> ")[:2000]]
    if merge is not None:
        lines += ["", "## Merge check", ""]
        lines.append(f"- Clean merge order: {', '.join(merge.merge_order) or 'none'}")
        lines += [f"- {c.a} and {c.b} conflict in {', '.join(c.files)}" for c in merge.conflicts]
        lines += [f"- Left out {r.task_id}: {r.reason}" for r in merge.rejected]
    if plan.edges:
        lines += ["", "## Ordering", ""]
        lines += [f"- {e.before} → {e.after} ({e.kind.value}): {e.reason}" for e in plan.edges]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def requirement_coverage(results: Iterable[TaskResult]) -> tuple[int, int] | None:
    """(requirements done with evidence found, all requirements) over the tasks; None without any."""
    checks = [check for r in results if r.validation is not None for check in r.validation.requirements]
    return (sum(1 for c in checks if c.met), len(checks)) if checks else None


def _coverage(met: int, total: int) -> str:
    return f"{met}/{total} ({100 * met / total:.0f} %)"


def _validation_lines(validation: ValidationResult) -> list[str]:
    lines = []
    if validation.fix_rounds:
        lines.append(f"- Fix-up rounds: {validation.fix_rounds}")
    if not validation.placeholder_check:
        lines.append("- Placeholder check: off")
    findings = [f"placeholder: {p}" for p in validation.placeholders]
    findings += [f"missing output: {m}" for m in validation.missing_outputs]
    if findings:
        lines.append(f"- Validation findings ({len(findings)}):")
        lines += [f"  - {f}" for f in findings]
    if validation.requirements:
        lines.append(f"- Requirements: {_coverage(validation.requirements_met, len(validation.requirements))} "
                     "done with evidence found (the agent's claim, its evidence checked on the branch)")
        for check in validation.requirements:
            found = "found" if check.evidence_found else "not found"
            evidence = f"evidence `{check.evidence}` {found}" if check.evidence else "no evidence"
            lines.append(f"  - {check.id} {check.status.replace('_', ' ')}, {evidence}: {check.text}")
    return lines


def _wall_time(result: OrchestrationResult, timing: RunTiming | None) -> str:
    wall = format_duration(result.execution_time_seconds)
    if timing is None or len(timing.segments) < 2:
        return wall
    return (f"{wall} across {len(timing.segments)} orchestrator processes "
            f"(gap of {format_duration(timing.gap_seconds)} while no orchestrator ran)")


def _speedup(result: OrchestrationResult, timing: RunTiming | None) -> str:
    """The speedup with the two measured numbers it divides (the same ones `build_result` used)."""
    busy = busy_time(result.tasks, timing.gaps if timing is not None else ())
    if busy.in_gaps:
        what = "(task time while an orchestrator ran / wall time, measured)"
        left_out = (f"; another {format_duration(busy.in_gaps)} of task time ran while no orchestrator did "
                    "and is not counted")
    else:
        what, left_out = "(sum of task durations / wall time, measured)", ""
    if result.parallel_speedup is None:
        return f"{what}: n/a"
    return (f"{what}: {result.parallel_speedup} ({format_duration(busy.counted)} / "
            f"{format_duration(result.execution_time_seconds)}){left_out}")
