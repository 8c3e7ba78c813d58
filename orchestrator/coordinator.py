"""OrchestratorCoordinator: prompt files in, one branch per prompt and an honest result out."""
from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from orchestrator import git
from orchestrator.agentcmd import agent_command, check_agent_available
from orchestrator.analyzer import Analysis, TaskAnalyzer, longest_remaining_path
from orchestrator.backends.local import LocalBackend
from orchestrator.config import OrchestrationConfig
from orchestrator.engine import ExecutionEngine, Observer
from orchestrator.errors import InputError
from orchestrator.journal import Journal
from orchestrator.models import OrchestrationResult, Plan, PlannedTask, TaskResult, TaskStatus, TaskSummary
from orchestrator.promptgen import render_prompt, write_prompt
from orchestrator.registry import ProcessRegistry
from orchestrator.report import write_reports
from orchestrator.wire import Predecessor, TaskRequest
from orchestrator.worktrees import WorktreeManager


def new_run_id() -> str:
    """Gadugi's `orchestration-YYYYMMDD-HHMMSS` plus a random suffix: two runs in one second differ."""
    return f"orchestration-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@dataclass
class RunContext:
    run_id: str
    run_dir: Path
    monitoring_dir: Path


class OrchestratorCoordinator:
    """Python entry point: `OrchestratorCoordinator(config, project_root).orchestrate(prompts)`."""

    def __init__(self, config: OrchestrationConfig, project_root: Path | str = ".") -> None:
        self.config = config
        self.project_root = git.toplevel(Path(project_root).resolve())
        if not git.has_commits(self.project_root):
            raise InputError(f"repository {self.project_root} has no commits yet: commit something to branch from")
        self.worktrees = WorktreeManager(
            self.project_root, worktrees_dir=config.worktrees_dir, branch_prefix=config.branch_prefix
        )
        self.warnings: list[str] = []

    # -- planning --------------------------------------------------------------------------------

    def plan(self, prompt_files: Sequence[Path]) -> tuple[Plan, Analysis]:
        """Parse, analyse and name everything, creating nothing."""
        base_ref = self.config.base_ref or "HEAD"
        base_sha = git.rev_parse(self.project_root, base_ref)
        if base_sha is None:
            raise InputError(f"base ref {base_ref!r} does not exist in {self.project_root}")
        tracked = git.ls_files(self.project_root)
        analysis = TaskAnalyzer(self.project_root, tracked).analyze(list(prompt_files))
        self.warnings.extend(analysis.warnings)
        names = self.worktrees.plan_names([t.id for t in analysis.tasks])
        env = self.config.environment()
        planned = []
        for spec in analysis.tasks:
            branch, path = names[spec.id]
            command = agent_command(self.config, spec, env=env, worktree=path, branch=branch, prompt_file=None)
            planned.append(PlannedTask(spec=spec, branch=branch, worktree=path, agent_command=command))
        plan = Plan(
            tasks=planned, edges=analysis.edges, skipped=analysis.skipped, base_ref=base_ref, base_sha=base_sha
        )
        return plan, analysis

    # -- running ---------------------------------------------------------------------------------

    def orchestrate(self, prompt_files: Sequence[Path], *, observer: Observer | None = None) -> OrchestrationResult:
        plan, analysis = self.plan(prompt_files)
        env = self.config.environment()
        if plan.tasks:
            check_agent_available(self.config, plan, env=env)
        if git.is_dirty(self.project_root):
            self.warnings.append(
                "the working tree has uncommitted changes; tasks start from the committed base "
                f"{plan.base_sha[:10]}, not from those changes"
            )
        ctx = self._start_run()
        started = time.monotonic()
        self.worktrees.ensure_ignored()
        in_place = False
        reason = self.worktrees.probe()
        if reason is not None:
            if not self.config.fallback_to_sequential:
                raise InputError(f"cannot create worktrees ({reason}) and --no-fallback was given")
            if git.is_dirty(self.project_root):
                raise InputError(
                    f"cannot create worktrees ({reason}); the sequential fallback works in the main checkout, "
                    "which has uncommitted changes: commit or stash them first"
                )
            self.warnings.append(f"cannot create worktrees ({reason}): running tasks one at a time in the main checkout")
            in_place = True
        journal = Journal(ctx.run_dir / "events.jsonl", run_id=ctx.run_id)
        registry = ProcessRegistry(ctx.monitoring_dir, ctx.run_id, journal=journal)
        journal.append("run_started", project_root=str(self.project_root), base_sha=plan.base_sha,
                       tasks=[t.spec.id for t in plan.tasks], max_parallel=self.config.max_parallel)
        with registry.batch():
            for planned in plan.tasks:
                registry.register(
                planned.spec.id,
                    task_name=planned.spec.title,
                    command=planned.agent_command,
                    working_directory=str(self.project_root if in_place else planned.worktree),
                    prompt_file=str(planned.spec.prompt_file),
                    branch=planned.branch,
                    base_sha=plan.base_sha,
                    worktree=str(self.project_root if in_place else planned.worktree),
                    priority=planned.spec.priority,
                )
        original_branch = git.current_branch(self.project_root) if in_place else None
        backend = LocalBackend(env)
        engine = ExecutionEngine(
            plan,
            max_parallel=1 if in_place else self.config.max_parallel,
            backend=backend,
            registry=registry,
            make_request=lambda p, preds, attempt: self._request(ctx, plan, p, preds, attempt, in_place, env),
            remaining_path=longest_remaining_path(plan.tasks and [t.spec for t in plan.tasks], plan.edges),
            observer=observer,
        )
        results: dict[str, TaskResult] = {}
        try:
            results = engine.run()
        finally:
            backend.close()
            if in_place and original_branch:
                git.switch_branch(self.project_root, original_branch)
            wall = time.monotonic() - started
            if not in_place:
                self._cleanup(plan, results)
            result = self._result(ctx, plan, results, wall, engine, in_place)
            registry.finalize()
            journal.append("run_finished", successful=result.successful_tasks, failed=result.failed_tasks,
                           wall_seconds=round(wall, 3), interrupted=result.interrupted)
            result.report_path = str(write_reports(ctx.run_dir, result, plan, results, self.warnings))
        return result

    def _start_run(self) -> RunContext:
        run_id = new_run_id()
        gadugi = self.project_root / ".gadugi"
        run_dir = gadugi / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=False)
        monitoring = self.config.monitoring_dir or gadugi / "monitoring"
        if not monitoring.is_absolute():
            monitoring = self.project_root / monitoring
        monitoring.mkdir(parents=True, exist_ok=True)
        return RunContext(run_id=run_id, run_dir=run_dir, monitoring_dir=monitoring)

    def _request(
        self,
        ctx: RunContext,
        plan: Plan,
        planned: PlannedTask,
        preds: list[Predecessor],
        attempt: int,
        in_place: bool,
        env: dict[str, str],
    ) -> TaskRequest:
        spec = planned.spec
        task_dir = ctx.run_dir / "tasks" / spec.id
        verify = spec.verify or self.config.verify
        worktree = self.project_root if in_place else planned.worktree
        prompt_path = write_prompt(
            task_dir / "prompt.md",
            render_prompt(planned, run_id=ctx.run_id, start_sha=plan.base_sha,
                          predecessors=[p.task_id for p in preds], verify=verify),
        )
        command = agent_command(self.config, spec, env=env, worktree=worktree, branch=planned.branch,
                                prompt_file=prompt_path, run_id=ctx.run_id)
        return TaskRequest(
            run_id=ctx.run_id,
            task_id=spec.id,
            title=spec.title,
            attempt=attempt,
            project_root=self.project_root,
            task_dir=task_dir,
            prompt_path=prompt_path,
            branch=planned.branch,
            worktree=worktree,
            base_sha=plan.base_sha,
            predecessors=preds,
            agent="generic" if self.config.agent_cmd else "claude",
            agent_command=command,
            timeout_seconds=spec.timeout_seconds or self.config.task_timeout_seconds,
            verify=verify,
            in_place=in_place,
            worktrees_dir=self.config.worktrees_dir,
            branch_prefix=self.config.branch_prefix,
            interrupt_timeout=self.config.interrupt_timeout,
            terminate_timeout=self.config.terminate_timeout,
        )

    def _cleanup(self, plan: Plan, results: dict[str, TaskResult]) -> None:
        """Completed tasks' worktrees go (their branches stay); failed ones stay for inspection."""
        policy = self.config.worktree_cleanup
        for planned in plan.tasks:
            result = results.get(planned.spec.id)
            if result is None or not planned.worktree.exists():
                continue
            remove = policy == "cleanup" or (policy == "auto" and result.status == TaskStatus.COMPLETED)
            if remove and not self.worktrees.remove(planned.worktree):
                self.warnings.append(f"kept worktree {planned.worktree}: it has uncommitted changes")

    def _result(
        self,
        ctx: RunContext,
        plan: Plan,
        results: dict[str, TaskResult],
        wall: float,
        engine: ExecutionEngine,
        in_place: bool,
    ) -> OrchestrationResult:
        rows = []
        for planned in plan.tasks:
            r = results.get(planned.spec.id)
            if r is None:
                continue
            rows.append(
                TaskSummary(
                    task_id=r.task_id,
                    title=planned.spec.title,
                    status=r.status,
                    branch=r.branch,
                    worktree=r.worktree if Path(r.worktree).exists() and not in_place else "",
                    commits=r.commits,
                    changed_files=r.changed_files,
                    insertions=r.insertions,
                    deletions=r.deletions,
                    no_changes=r.no_changes,
                    duration_seconds=r.duration_seconds,
                    attempts=r.attempt,
                    error_message=r.error_message,
                    cost_usd=r.outcome.cost_usd,
                    tokens=r.outcome.tokens,
                    session_id=r.outcome.session_id,
                    verify_passed=r.verify.passed if r.verify else None,
                    started_at=r.started_at,
                    completed_at=r.completed_at,
                )
            )
        successful = sum(1 for r in rows if r.status == TaskStatus.COMPLETED)
        cancelled = sum(1 for r in rows if r.status == TaskStatus.CANCELLED)
        busy = sum(r.duration_seconds for r in rows)
        costs = [r.cost_usd for r in rows if r.cost_usd is not None]
        return OrchestrationResult(
            run_id=ctx.run_id,
            total_tasks=len(plan.tasks),
            successful_tasks=successful,
            failed_tasks=len(plan.tasks) - successful - cancelled,
            cancelled_tasks=cancelled,
            skipped_tasks=len(plan.skipped),
            execution_time_seconds=round(wall, 3),
            parallel_speedup=round(busy / wall, 2) if wall > 0 and busy > 0 else None,
            max_parallel=engine.max_parallel,
            base_sha=plan.base_sha,
            total_cost_usd=round(sum(costs), 6) if costs else None,
            tasks=rows,
            fallback_sequential=in_place,
            interrupted=engine.interrupted,
            abort_reason=engine.abort_reason,
        )
