"""OrchestratorCoordinator: prompt files in, one branch per prompt and an honest result out."""
from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from orchestrator.agents import get_agent
from orchestrator.agents.agentcmd import agent_command, check_agent_available, supports_resume
from orchestrator.agents.claude_config import isolate
from orchestrator.agents.claude_project import untrusted_note
from orchestrator.agents.claude_shared import mcp_note, mcp_server_count, shared_login_note
from orchestrator.agents.sandbox import choose_policy
from orchestrator.backends.factory import make_backend
from orchestrator.backends.launcher import Launcher
from orchestrator.config.model import OrchestrationConfig
from orchestrator.errors import InputError, OrchestratorError, StateError
from orchestrator.gitops import git
from orchestrator.gitops.merge import MergeReport, merge_check
from orchestrator.models import (
    OrchestrationResult,
    Plan,
    PlannedTask,
    TaskResult,
    TaskStatus,
    iso,
    utcnow,
)
from orchestrator.observe.events import EngineEvent, Observer, RunFinished, RunStarted
from orchestrator.observe.report import write_reports
from orchestrator.observe.run_segments import read_run_timing
from orchestrator.plan.analyzer import Analysis, TaskAnalyzer, longest_remaining_path
from orchestrator.plan.inputs import resolve_prompt_paths
from orchestrator.run.engine import EngineSettings, ExecutionEngine
from orchestrator.run.lifecycle import PLAN_FILE, ended_cleanly, resumable
from orchestrator.run.promptgen import render_prompt, render_retry_prompt, write_prompt
from orchestrator.run.recovery import Recovery, apply, inspect_tasks
from orchestrator.run.results import build_result
from orchestrator.state.atomic import read_json, write_bytes_atomic, write_json_atomic
from orchestrator.state.journal import Journal, read_journal
from orchestrator.state.registry import COALESCE_SECONDS, ProcessRegistry
from orchestrator.state.registry_models import ProcessInfo, replay
from orchestrator.state.runlock import RunLock
from orchestrator.state.runs import find_run, run_dirs
from orchestrator.state.secrets import Redactor
from orchestrator.task.wire import SESSION_TOKEN, Predecessor, TaskRequest, Validation
from orchestrator.tracing import INSTALL_HINT, SpanRef, sdk_missing, wanted
from orchestrator.worktrees.disposal import dispose_worktree
from orchestrator.worktrees.manager import WorktreeManager
from orchestrator.worktrees.pool import WorktreePool
from orchestrator.worktrees.provision import release_port
from orchestrator.worktrees.warming import PoolWarming, start_warming

if TYPE_CHECKING:
    from orchestrator.observe.traces import RunTracer


def new_run_id() -> str:
    """Gadugi's `orchestration-YYYYMMDD-HHMMSS` plus a random suffix: two runs in one second differ."""
    return f"orchestration-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


@dataclass
class RunContext:
    run_id: str
    run_dir: Path
    monitoring_dir: Path
    in_place: bool = False
    # Each Claude agent writes its own config directory (agents.claude_config), decided once a run.
    claude_isolated: bool = False


@dataclass
class ResumeTarget:
    """A run `resume` may continue: its saved plan and options, and its tasks as journaled."""

    run_id: str
    run_dir: Path
    saved: dict[str, Any]
    entries: dict[str, ProcessInfo]
    finished_at: str | None  # set when nothing is left to do: the time of its last record
    trace: SpanRef | None = None  # the run's trace, when it was traced

    @property
    def plan(self) -> Plan:
        return Plan.model_validate(self.saved["plan"])


def _recorded_trace(records: Sequence[Mapping[str, Any]]) -> SpanRef | None:
    """The run's trace as its journal keeps it: the last start or resume that recorded one."""
    for record in reversed(records):
        if record.get("event") in ("run_started", "run_resumed") and record.get("trace_id") \
                and record.get("trace_span_id"):
            return SpanRef(str(record["trace_id"]), str(record["trace_span_id"]))
    return None


def _trace_fields(trace: SpanRef | None) -> dict[str, Any]:
    return {"trace_id": trace.trace_id, "trace_span_id": trace.span_id} if trace is not None else {}


def _self_identity() -> dict[str, Any]:
    """Who this orchestrator process is, for the journal: `status` tells a dead run by it."""
    return {"pid": os.getpid(), "create_time": psutil.Process().create_time()}


class OrchestratorCoordinator:
    """Python entry point: `OrchestratorCoordinator(config, project_root).orchestrate(prompts)`."""

    def __init__(self, config: OrchestrationConfig, project_root: Path | str = ".") -> None:
        self.config = config
        self.project_root = git.toplevel(Path(project_root).resolve())
        if not git.has_commits(self.project_root):
            raise InputError(f"repository {self.project_root} has no commits yet: commit something to branch from")
        self.gadugi_dir = self.project_root / ".gadugi"
        self.worktrees = WorktreeManager(
            self.project_root, worktrees_dir=config.worktrees_dir, branch_prefix=config.branch_prefix
        )
        self.redactor = Redactor.from_env(config.environment())
        self.warnings: list[str] = []
        for pattern in config.placeholder_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InputError(f"placeholder_patterns: {pattern!r} is not a regular expression: {exc}") from None

    # -- planning --------------------------------------------------------------------------------

    def context_file(self) -> Path | None:
        """--context FILE, else prompts/_context.md when it exists."""
        if self.config.context:
            path = Path(self.config.context)
            path = path if path.is_absolute() else (Path.cwd() / path)
            if not path.is_file():
                raise InputError(f"--context: {path} is not a file")
            return path.resolve()
        default = self.project_root / "prompts" / "_context.md"
        return default.resolve() if default.is_file() else None

    def _context_text(self) -> str | None:
        path = self.context_file()
        return path.read_text(encoding="utf-8", errors="replace") if path is not None else None

    def plan(self, prompts: Sequence[str | os.PathLike[str]]) -> tuple[Plan, Analysis]:
        """Parse, analyse and name everything, creating nothing. Prompts are named as on the
        command line: paths, or names relative to the current directory or to prompts/."""
        prompt_files = resolve_prompt_paths([os.fspath(p) for p in prompts], cwd=Path.cwd(),
                                            project_root=self.project_root)
        base_ref = self.config.base_ref or "HEAD"
        base_sha = git.rev_parse(self.project_root, base_ref)
        if base_sha is None:
            raise InputError(f"base ref {base_ref!r} does not exist in {self.project_root}")
        context = self.context_file()
        # The shared context is not a task, even when a glob like prompts/*.md picked it up.
        prompt_files = [p for p in prompt_files if context is None or Path(p).resolve() != context]
        if not prompt_files:
            raise InputError("no prompt files given besides the shared context file")
        tracked = git.ls_files(self.project_root)
        analysis = TaskAnalyzer(self.project_root, tracked).analyze(list(prompt_files))
        self.warnings.extend(analysis.warnings)
        names = self.worktrees.plan_names([t.id for t in analysis.tasks])
        renamed = [f"{self.worktrees.first_choice(t.id)} -> {names[t.id][0]}" for t in analysis.tasks
                   if names[t.id][0] != self.worktrees.first_choice(t.id)]
        if renamed:
            self.warnings.append(
                f"branches from earlier runs are kept, not reused; this run makes new ones: {', '.join(renamed)} "
                "(`orchestrator clean --branches` removes merged or empty ones)"
            )
        env = self.config.environment()
        planned = []
        policies: dict[str, str] = {}
        for spec in analysis.tasks:
            branch, path = names[spec.id]
            command = agent_command(self.config, spec, env=env, worktree=path, branch=branch, prompt_file=None)
            agent = "generic" if self.config.agent_cmd else (spec.agent or self.config.agent)
            if agent not in policies:
                policies[agent], note = choose_policy(self.config.sandbox, agent, env)
                if note and note not in self.warnings:
                    self.warnings.append(note)
            planned.append(PlannedTask(spec=spec, branch=branch, worktree=path, agent_command=self.redactor.argv(command),
                                       sandbox=policies[agent]))
        if "claude" in policies:
            self.warnings.extend(self._claude_notes(planned, env))
        plan = Plan(tasks=planned, edges=analysis.edges, shared_scopes=analysis.shared_scopes,
                    skipped=analysis.skipped, base_ref=base_ref, base_sha=base_sha)
        return plan, analysis

    def _claude_notes(self, planned: Sequence[PlannedTask], env: Mapping[str, str]) -> list[str]:
        """What the Claude agents of this plan share with the user's setup, said once each."""
        claude_tasks = sum(1 for t in planned if not self.config.agent_cmd and (t.spec.agent or self.config.agent) == "claude")
        parallel = min(self.config.max_parallel, claude_tasks)
        isolate(self.config.claude_config, env)  # refuses `isolated` for a login copies would break
        notes = [untrusted_note(self.project_root, env, self.config.trust_project),
                 mcp_note(mcp_server_count(self.config.mcp, self.project_root, env), parallel),
                 shared_login_note(parallel, env)]
        return [note for note in notes if note]

    # -- running ---------------------------------------------------------------------------------

    def orchestrate(self, prompts: Sequence[str | os.PathLike[str]], *, observer: Observer | None = None,
                    launcher: Launcher | None = None) -> OrchestrationResult:
        """`launcher`: an untraced one the caller started even earlier (the CLI does, before its
        imports); the caller closes it. Otherwise a local run starts its own here."""
        traced = self._traced()
        if launcher is not None and not traced:
            return self._orchestrate(prompts, observer, launcher, traced)
        with self._launcher_started_early(traced) as started:
            return self._orchestrate(prompts, observer, started, traced)

    def _traced(self) -> bool:
        """Is this run exported as a trace? `--otel` without the OpenTelemetry packages is an
        error before anything starts; the standard variables without them only a warning (they
        may be set for other programs)."""
        if not wanted(self.config.otel, os.environ):
            return False
        missing = sdk_missing()
        if missing is None:
            return True
        if self.config.otel:
            raise InputError(f"--otel needs the OpenTelemetry packages: {INSTALL_HINT}")
        self.warnings.append(f"OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed ({missing}); "
                             f"no trace is exported: {INSTALL_HINT}")
        return False

    def _orchestrate(self, prompts: Sequence[str | os.PathLike[str]], observer: Observer | None,
                     launcher: Launcher | None, traced: bool) -> OrchestrationResult:
        plan, _ = self.plan(prompts)
        env = self.config.environment()
        if plan.tasks:
            # Workers of a remote cluster have their own agent CLI; only a local run needs ours.
            check_agent_available(self.config, plan, env=env, executable=self.config.backend != "dask")
        if git.is_dirty(self.project_root):
            self.warnings.append(
                "the working tree has uncommitted changes or untracked files; tasks start from the "
                f"committed base {plan.base_sha[:10]}, not from those changes"
            )
        lock = RunLock(self.gadugi_dir)
        run_id = new_run_id()
        lock.acquire(run_id)
        try:
            ctx = self._start_run(run_id)
            self.worktrees.ensure_ignored()
            ctx.in_place = self._needs_fallback()
            warming = self._warm_pool(ctx, plan)
            saved = {
                "plan": plan.model_dump(mode="json"),
                "config": self.config.model_dump(mode="json", exclude={"env"}),
                "in_place": ctx.in_place,
                "warnings": self.warnings,
            }
            write_bytes_atomic(ctx.run_dir / PLAN_FILE, self.redactor.text(json.dumps(saved)).encode())
            journal = Journal(ctx.run_dir / "events.jsonl", run_id=ctx.run_id)
            registry = ProcessRegistry(ctx.monitoring_dir, ctx.run_id, journal=journal, coalesce=COALESCE_SECONDS)
            # The trace's ids are drawn here and kept in the journal, so a resume continues it.
            trace = SpanRef.new() if traced else None
            journal.append("run_started", project_root=str(self.project_root), base_sha=plan.base_sha,
                           tasks=[t.spec.id for t in plan.tasks], max_parallel=self.config.max_parallel,
                           **_self_identity(), **_trace_fields(trace))
            self._register(ctx, plan, registry)
            try:
                return self._execute(ctx, plan, registry, journal, observer, launcher=launcher, trace=trace)
            finally:
                warming.join()
        finally:
            lock.release()

    @contextmanager
    def _launcher_started_early(self, traced: bool) -> Iterator[Launcher | None]:
        """The local backend forks WorkflowManagers from a launcher that imports our code once;
        started here, its imports overlap planning and the run's set-up instead of delaying the
        first task. The backend takes it over; if the run never gets that far it ends here."""
        launcher = None
        if self.config.backend == "local":
            launcher = Launcher.start(sys.executable, self.config.environment(), home=self.project_root,
                                      traced=traced)
        try:
            yield launcher
        finally:
            if launcher is not None:
                launcher.close()

    def resume_target(self, run_id: str | None = None) -> ResumeTarget:
        """The run to resume: RUN_ID, else the newest run with work left (else the newest run,
        which then says it is finished). Reads only; changes nothing."""
        if run_id:
            return self._load_target(find_run(self.project_root, run_id).run_dir)
        newest = find_run(self.project_root, None).run_dir
        first: ResumeTarget | None = None
        # Newest first, reading each journal only until one has work left. A run directory
        # without a plan was stopped before it started anything: not a candidate.
        for run_dir in reversed(run_dirs(self.project_root)):
            target = self._load_target(run_dir, strict=False)
            if target is None:
                continue
            if target.finished_at is None:
                return target
            first = first or target
        return first or self._load_target(newest)

    def _load_target(self, run_dir: Path, *, strict: bool = True) -> Any:
        saved = read_json(run_dir / PLAN_FILE) if (run_dir / PLAN_FILE).exists() else None
        if not isinstance(saved, dict) or "plan" not in saved:
            if not strict:
                return None
            raise StateError(f"run {run_dir.name} has no {PLAN_FILE}; it cannot be resumed")
        records = list(read_journal(run_dir / "events.jsonl"))
        entries = replay(records, run_dir.name)
        finished_at = None
        if not resumable(entries) and ended_cleanly(records):
            finished_at = str(records[-1].get("ts", "")) if records else "an unknown time"
        return ResumeTarget(run_id=run_dir.name, run_dir=run_dir, saved=saved, entries=entries,
                            finished_at=finished_at, trace=_recorded_trace(records))

    def resumed_config(self, target: ResumeTarget, overrides: Mapping[str, Any]) -> OrchestrationConfig:
        """The run's own options, as it was started, with only the explicitly given ones changed."""
        saved = dict(target.saved.get("config") or {})
        merged = OrchestrationConfig.model_validate({**saved, **overrides, "env": self.config.env})
        return merged

    def preview_resume(self, target: ResumeTarget) -> list[str]:
        """What `resume` would do, touching nothing (`resume --dry-run`)."""
        plan = target.plan
        found = inspect_tasks(target.run_dir, plan, target.entries, self.project_root)
        lines = found.describe()
        done = sum(1 for r in found.finished.values() if r.status == TaskStatus.COMPLETED)
        untouched = [t.spec.id for t in plan.tasks
                     if t.spec.id not in found.finished and t.spec.id not in found.attached
                     and t.spec.id not in found.ended and t.spec.id not in found.requeued]
        if untouched:
            lines.append(f"run when ready: {', '.join(untouched)}")
        lines.append(f"keep {done} completed task(s) as they are; nothing that completed runs again")
        return lines

    def resume(self, target: ResumeTarget | str | None = None, *, observer: Observer | None = None,
               overrides: Mapping[str, Any] | None = None) -> OrchestrationResult:
        """Continue a run that stopped (kill -9, Ctrl-C, a crash): re-attach to WorkflowManagers
        still running, judge attempts that ended meanwhile, re-queue lost and interrupted tasks,
        run the rest, all with the run's own options (`overrides` are the flags given now).
        Nothing that completed runs again; the journal is the checkpoint."""
        if not isinstance(target, ResumeTarget):
            target = self.resume_target(target)
        if target.finished_at is not None:
            raise StateError(f"run {target.run_id} finished at {target.finished_at}; nothing to resume")
        self.config = self.resumed_config(target, overrides or {})
        traced = self._traced()
        with self._launcher_started_early(traced) as launcher:
            return self._resume(target, observer, overrides, launcher, traced)

    def _resume(self, target: ResumeTarget, observer: Observer | None, overrides: Mapping[str, Any] | None,
                launcher: Launcher | None, traced: bool) -> OrchestrationResult:
        self.worktrees = WorktreeManager(self.project_root, worktrees_dir=self.config.worktrees_dir,
                                         branch_prefix=self.config.branch_prefix)
        plan = target.plan
        self.warnings.extend(target.saved.get("warnings", []))
        lock = RunLock(self.gadugi_dir)
        lock.acquire(target.run_id)
        try:
            monitoring = self._monitoring_dir()
            ctx = RunContext(run_id=target.run_id, run_dir=target.run_dir, monitoring_dir=monitoring,
                             in_place=bool(target.saved.get("in_place")))
            journal = Journal(target.run_dir / "events.jsonl", run_id=target.run_id)
            # Before loading the registry: what that journals (a rebuild) belongs to this process's
            # segment; after the killed one's last record it would hide the gap between them.
            # The same trace as before; a run first traced now gets its trace from here on.
            trace = (target.trace or SpanRef.new()) if traced else None
            journal.append("run_resumed", overrides=sorted(overrides or {}), **_self_identity(),
                           **_trace_fields(trace))
            registry = ProcessRegistry.load(monitoring, target.run_id, journal=journal, coalesce=COALESCE_SECONDS)
            self._register(ctx, plan, registry)  # those a kill during the first registration missed
            # Sorted under the run lock, from the registry as loaded now: no other orchestrator
            # can start or adopt anything of this run meanwhile.
            found = inspect_tasks(target.run_dir, plan, registry.snapshot(), self.project_root)
            apply(found, registry)
            return self._execute(ctx, plan, registry, journal, observer, recovery=found, launcher=launcher,
                                 trace=trace, resumed=trace is not None and target.trace is not None)
        finally:
            lock.release()

    def _register(self, ctx: RunContext, plan: Plan, registry: ProcessRegistry) -> None:
        """Every planned task queued in the registry (those already there are left as they are)."""
        known = registry.snapshot()
        with registry.batch():
            for planned in plan.tasks:
                if planned.spec.id in known:
                    continue
                where = str(self.project_root if ctx.in_place else planned.worktree)
                registry.register(
                    planned.spec.id,
                    task_name=planned.spec.title,
                    command=planned.agent_command,
                    working_directory=where,
                    prompt_file=str(planned.spec.prompt_file),
                    branch=planned.branch,
                    base_sha=plan.base_sha,
                    worktree=where,
                    priority=planned.spec.priority,
                    sandbox=planned.sandbox,
                )

    def _execute(
        self,
        ctx: RunContext,
        plan: Plan,
        registry: ProcessRegistry,
        journal: Journal,
        observer: Observer | None,
        *,
        recovery: Recovery | None = None,
        launcher: Launcher | None = None,
        trace: SpanRef | None = None,
        resumed: bool = False,
    ) -> OrchestrationResult:
        started = time.monotonic()
        env = self.config.environment()
        original_branch = git.current_branch(self.project_root) if ctx.in_place else None
        backend = make_backend("local" if ctx.in_place else self.config.backend, env, project_root=self.project_root,
                               max_parallel=self.config.max_parallel, scheduler=self.config.scheduler,
                               launcher=launcher, trace=trace)
        tracer = self._run_tracer(trace, plan, resumed=resumed) if trace is not None else None
        if tracer is not None:
            observer = _both(tracer, observer)
        cfg = self.config
        ctx.claude_isolated = isolate(cfg.claude_config, env)
        settings = EngineSettings(
            max_parallel=1 if ctx.in_place else cfg.max_parallel,
            retries=cfg.retries,
            backoff_base=cfg.backoff_base,
            backoff_cap=cfg.backoff_cap,
            run_timeout=cfg.run_timeout_seconds,
            # The pacing guards against a Claude Code race on its settings files, which agents with
            # a config directory each do not share; other agents (and a generic command) start at once.
            launch_stagger=cfg.launch_stagger if _uses_claude(plan, cfg) and not ctx.claude_isolated else 0.0,
            min_free_memory=cfg.min_free_memory,
            min_free_disk=cfg.min_free_disk,
            disk_path=self.project_root,
            control_dir=ctx.run_dir / "control",
            breaker_threshold=cfg.breaker_threshold,
            run_budget_usd=cfg.run_budget_usd,
        )
        engine = ExecutionEngine(
            plan,
            settings=settings,
            backend=backend,
            registry=registry,
            # Called once the engine exists: what is left of the run budget bounds fix-up rounds too.
            make_request=lambda p, preds, attempt, previous: self._request(
                ctx, plan, p, preds, attempt, previous, env,
                budget_left=None if cfg.run_budget_usd is None else cfg.run_budget_usd - engine.spent_usd()),
            remaining_path=longest_remaining_path([t.spec for t in plan.tasks], plan.edges),
            observer=observer,
        )
        results: dict[str, TaskResult] = {}
        if observer is not None:
            observer(RunStarted(run_id=ctx.run_id, run_dir=ctx.run_dir, monitoring_dir=ctx.monitoring_dir,
                                registry=registry, max_parallel=settings.max_parallel, total=len(plan.tasks)))
        try:
            found = recovery or Recovery()
            results = engine.run(finished=found.finished, attached=found.attached, requeued=found.requeued,
                                 ended=found.ended)
        finally:
            # Each step of the end on its own: one that fails (a worktree that will not go, a
            # branch that will not switch back) is a warning, never a reason to skip finalizing
            # the registry or writing the report.
            self._step("closing the backend", backend.close)
            if ctx.in_place and original_branch:
                self._step(f"switching back to {original_branch}", git.switch_branch, self.project_root,
                           original_branch)
            wall = time.monotonic() - started
            if not ctx.in_place:
                with _step_span(tracer, "cleanup"):
                    self._step("removing finished worktrees", self._cleanup, ctx, plan, results)
            # The run's figures span every orchestrator process of it, this one up to `ended`;
            # run_finished records that instant so a later reading of the journal agrees.
            ended = utcnow()
            timing = read_run_timing(journal.path, now=ended)
            result = build_result(ctx.run_id, plan, results, timing, engine, in_place=ctx.in_place)
            registry.finalize()
            registry.close()
            with _step_span(tracer, "merge_check"):
                merge = self._merge_check(ctx, plan, result)
            result.report_path = str(write_reports(ctx.run_dir, result, plan, results, self.warnings, merge,
                                                   timing=timing))
            # Last: a run is finished once its report exists, so a kill before this line leaves a
            # run that resume finishes (it redoes the merge check and the report).
            journal.append("run_finished", successful=result.successful_tasks, failed=result.failed_tasks,
                           wall_seconds=round(wall, 3), interrupted=result.interrupted, ended_at=iso(ended))
            if observer is not None:
                observer(RunFinished(result=result))
            if tracer is not None:
                tracer.close()
        return result

    def _run_tracer(self, trace: SpanRef, plan: Plan, *, resumed: bool) -> RunTracer:
        from orchestrator.observe.traces import RunTracer
        from orchestrator.otel import Tracing

        cfg = self.config
        tasks = {t.spec.id: {"gadugi.title": t.spec.title, "gadugi.branch": t.branch, "gadugi.base_sha": plan.base_sha,
                             "gadugi.agent": "generic" if cfg.agent_cmd else (t.spec.agent or cfg.agent),
                             "gadugi.model": t.spec.model or cfg.model, "gadugi.depends_on": t.spec.depends_on or None}
                 for t in plan.tasks}
        return RunTracer(Tracing(trace.trace_id), trace, resumed=resumed, tasks=tasks,
                         attributes={"gadugi.project_root": str(self.project_root), "gadugi.base_sha": plan.base_sha,
                                     "gadugi.base_ref": plan.base_ref, "gadugi.backend": cfg.backend})

    def _step(self, what: str, step: Callable[..., object], *args: Any) -> None:
        try:
            step(*args)
        except Exception as exc:  # noqa: BLE001 - reported, and the end of the run goes on
            self.warnings.append(f"{what} failed: {type(exc).__name__}: {exc}")

    def _merge_check(self, ctx: RunContext, plan: Plan, result: OrchestrationResult) -> MergeReport | None:
        """Do the completed branches merge with the base and with each other? Touches no refs."""
        branches = [(t.task_id, t.branch) for t in result.tasks if t.status == TaskStatus.COMPLETED]
        if not branches:
            return None
        try:
            report = merge_check(self.project_root, plan.base_sha, branches, run_id=ctx.run_id)
        except OrchestratorError as exc:
            self.warnings.append(f"merge check failed: {exc}")
            return None
        write_json_atomic(ctx.run_dir / "merge_check.json", report.model_dump(mode="json"))
        for pair in report.conflicts:
            self.warnings.append(f"branches of {pair.a} and {pair.b} conflict in {', '.join(pair.files)}")
        return report

    def _needs_fallback(self) -> bool:
        reason = self.worktrees.probe()
        if reason is None:
            return False
        if not self.config.fallback_to_sequential:
            raise InputError(f"cannot create worktrees ({reason}) and --no-fallback was given")
        if git.is_dirty(self.project_root):
            raise InputError(
                f"cannot create worktrees ({reason}); the sequential fallback works in the main checkout, "
                "which has uncommitted changes: commit or stash them first"
            )
        self.warnings.append(f"cannot create worktrees ({reason}): running tasks one at a time in the main checkout")
        return True

    def _monitoring_dir(self) -> Path:
        monitoring = self.config.monitoring_dir or self.gadugi_dir / "monitoring"
        return monitoring if monitoring.is_absolute() else self.project_root / monitoring

    def _start_run(self, run_id: str) -> RunContext:
        run_dir = self.gadugi_dir / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=False)
        monitoring = self._monitoring_dir()
        monitoring.mkdir(parents=True, exist_ok=True)
        return RunContext(run_id=run_id, run_dir=run_dir, monitoring_dir=monitoring)

    def _request(
        self,
        ctx: RunContext,
        plan: Plan,
        planned: PlannedTask,
        preds: list[Predecessor],
        attempt: int,
        previous: TaskResult | None,
        env: dict[str, str],
        budget_left: float | None = None,
    ) -> TaskRequest:
        spec = planned.spec
        task_dir = ctx.run_dir / "tasks" / spec.id
        verify = spec.verify or self.config.verify
        worktree = self.project_root if ctx.in_place else planned.worktree
        agent = "generic" if self.config.agent_cmd else (spec.agent or self.config.agent)
        resume_session = None
        if previous is not None and previous.outcome.session_id and supports_resume(agent):
            resume_session = previous.outcome.session_id
        if attempt == 1 or previous is None:
            text = render_prompt(planned, run_id=ctx.run_id, start_sha=plan.base_sha,
                                 predecessors=preds, verify=verify, context=self._context_text())
            prompt_path = write_prompt(task_dir / "prompt.md", text)
        else:
            text = render_retry_prompt(planned, previous, attempt=attempt, resumed=resume_session is not None,
                                       run_id=ctx.run_id, base_sha=plan.base_sha, verify=verify,
                                       context=self._context_text())
            prompt_path = write_prompt(task_dir / f"prompt-attempt-{attempt}.md", text)
        command = agent_command(self.config, spec, env=env, worktree=worktree, branch=planned.branch,
                                prompt_file=prompt_path, run_id=ctx.run_id, resume_session=resume_session)
        fresh_command: list[str] | None = None
        fresh_prompt: Path | None = None
        if resume_session is not None and previous is not None:
            # Sessions live on the machine (and in the HOME) that ran them and are cleaned up in
            # time: when this one cannot be resumed, the WorkflowManager starts the agent afresh
            # with the whole task and a note of what the earlier attempt left, on the same branch.
            text = render_retry_prompt(planned, previous, attempt=attempt, resumed=False, run_id=ctx.run_id,
                                       base_sha=plan.base_sha, verify=verify, context=self._context_text())
            fresh_prompt = write_prompt(task_dir / f"prompt-attempt-{attempt}-fresh.md", text)
            fresh_command = agent_command(self.config, spec, env=env, worktree=worktree, branch=planned.branch,
                                          prompt_file=fresh_prompt, run_id=ctx.run_id, resume_session=None)
        validation = self._validation(planned, task_dir, env, worktree, agent, ctx.run_id)
        validation.budget_usd = budget_left
        reuse = previous is not None and (bool(previous.start_sha) or git.branch_exists(self.project_root, planned.branch))
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
            agent=agent,
            model=spec.model or self.config.model,
            agent_command=command,
            timeout_seconds=spec.timeout_seconds or self.config.task_timeout_seconds,
            verify=verify,
            in_place=ctx.in_place,
            worktrees_dir=self.config.worktrees_dir,
            branch_prefix=self.config.branch_prefix,
            interrupt_timeout=self.config.interrupt_timeout,
            terminate_timeout=self.config.terminate_timeout,
            stall_timeout=self.config.stall_timeout_seconds,
            start_sha=(previous.start_sha or plan.base_sha) if reuse and previous is not None else "",
            reuse_worktree=reuse,
            resume_session=resume_session,
            fresh_agent_command=fresh_command,
            # An attempt cut short after its agent succeeded (interrupted or lost in verify or
            # commit) continues with the checks; the agent's work is done and not redone.
            agent_outcome=previous.outcome if previous is not None and previous.outcome.success else None,
            fresh_prompt_path=fresh_prompt,
            setup=self.config.setup,
            port_range=self.config.port_range,
            worktree_include=self.config.worktree_include,
            pool_size=self._pool_size(ctx),
            sparse_scopes=list(spec.files) if self.config.sparse else [],
            validation=validation,
            sandbox=planned.sandbox,
            sandbox_write=list(self.config.sandbox_write),
            allowed_domains=list(self.config.allowed_domains),
            trust_project=self.config.trust_project,
            claude_config_dir=task_dir / "claude-config" if ctx.claude_isolated and agent == "claude" else None,
        )

    def _validation(self, planned: PlannedTask, task_dir: Path, env: dict[str, str], worktree: Path, agent: str,
                    run_id: str) -> Validation:
        """The checkpoint's checks for this task, and the commands a fix-up round starts the agent with."""
        spec, cfg = planned.spec, self.config
        rounds = spec.fix_rounds if spec.fix_rounds is not None else cfg.fix_rounds
        prompt = task_dir / "fixup-prompt.md"
        resume = None
        if rounds and supports_resume(agent):
            resume = agent_command(cfg, spec, env=env, worktree=worktree, branch=planned.branch, prompt_file=prompt,
                                   run_id=run_id, resume_session=SESSION_TOKEN)
        fresh = None
        if rounds:
            fresh = agent_command(cfg, spec, env=env, worktree=worktree, branch=planned.branch, prompt_file=prompt,
                                  run_id=run_id, resume_session=None)
        return Validation(
            fix_rounds=rounds,
            placeholder_check=cfg.placeholder_check and not spec.allow_placeholders,
            placeholder_patterns=list(cfg.placeholder_patterns),
            prompt_text=spec.prompt_text,
            outputs=list(spec.outputs),
            requirements=list(spec.requirements),
            resume_command=resume,
            fresh_command=fresh,
            prompt_path=prompt if rounds else None,
        )

    def _pool_size(self, ctx: RunContext) -> int:
        """Worktrees of completed tasks are recycled unless the user keeps them or runs in place."""
        if ctx.in_place or self.config.worktree_cleanup == "keep":
            return 0
        pool = self.config.worktree_pool
        return self.config.max_parallel if pool is None else pool

    def _warm_pool(self, ctx: RunContext, plan: Plan) -> PoolWarming:
        """Check out the base for the first wave in the background (only where tasks run here)."""
        size = self._pool_size(ctx) if self.config.backend != "dask" else 0
        wave = min(self.config.max_parallel, len(plan.tasks))
        return start_warming(WorktreePool(self.worktrees, size=size), plan.base_sha, wave)

    def _cleanup(self, ctx: RunContext, plan: Plan, results: dict[str, TaskResult]) -> None:
        """Completed tasks' worktrees go (their branches stay); failed ones stay for inspection."""
        policy = self.config.worktree_cleanup
        for planned in plan.tasks:
            tid = planned.spec.id
            result = results.get(tid)
            if result is None or not planned.worktree.exists():
                continue
            remove = policy == "cleanup" or (policy == "auto" and result.status == TaskStatus.COMPLETED)
            if not remove:
                release_port(self.project_root, tid)
                continue
            if not dispose_worktree(self.worktrees, planned.worktree, task_id=tid, branch=planned.branch,
                                    base_sha=plan.base_sha, teardown=self.config.teardown,
                                    log_path=ctx.run_dir / "tasks" / tid / "workflow_manager.log"):
                self.warnings.append(f"kept worktree {planned.worktree}: it has uncommitted changes")


def _both(tracer: Observer, observer: Observer | None) -> Observer:
    """The tracer first (it never raises), then the caller's observer."""
    if observer is None:
        return tracer

    def both(event: EngineEvent) -> None:
        tracer(event)
        observer(event)
    return both


def _step_span(tracer: RunTracer | None, name: str) -> AbstractContextManager[None]:
    return tracer.step(name) if tracer is not None else nullcontext()


def _uses_claude(plan: Plan, config: OrchestrationConfig) -> bool:
    if config.agent_cmd:
        return False
    return any(get_agent(t.spec.agent or config.agent).staggered_launch for t in plan.tasks)
