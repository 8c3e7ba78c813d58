"""Looking after runs: finding them, cancelling tasks, exporting, cleaning worktrees, diagnosing.

Nothing here deletes work: a worktree with uncommitted changes is kept unless `force`, and then
its changes are committed to its branch first; only processes this tool recorded starting are
ever signalled.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.agents.claude_shared import mcp_note, mcp_server_count, shared_login_note
from orchestrator.errors import InputError, StateError, did_you_mean
from orchestrator.gitops import git
from orchestrator.observe.status import orphan_notice, orphaned_runs
from orchestrator.proctree import is_alive, wait_gone
from orchestrator.run.lifecycle import saved_plan
from orchestrator.run.project import Project
from orchestrator.state.atomic import read_json, write_bytes_atomic
from orchestrator.state.runlock import RunLock
from orchestrator.state.runs import RunPaths, run_dirs
from orchestrator.worktrees.disposal import dispose_worktree
from orchestrator.worktrees.manager import WorktreeManager
from orchestrator.worktrees.pool import POOL_LOCK_REASON, WorktreePool

LEFTOVER_STOP_WAIT = 30.0  # seconds for a WorkflowManager told to stop: its agent's escalation and more


def _json(path: Path) -> Any:
    try:
        return read_json(path)
    except StateError:
        return None


def _plan_tasks(run: RunPaths) -> list[dict[str, Any]]:
    return list(saved_plan(run.run_dir).get("tasks", []))


# -- cancel -------------------------------------------------------------------------------------


def request_cancel(run: RunPaths, task_ids: list[str], *, all_tasks: bool) -> list[str]:
    """Ask the active run to stop these tasks; it acts within a second and carries on with the rest."""
    lock = RunLock(run.project_root / ".gadugi")
    holder = lock.holder()
    if not lock.held_by_other() or holder.get("run_id") != run.run_id:
        raise InputError(f"run {run.run_id} is not active; nothing to cancel")
    known = {t["spec"]["id"] for t in _plan_tasks(run)}
    unknown = [t for t in task_ids if t not in known]
    if unknown:
        hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
        raise InputError(f"unknown task(s) {', '.join(unknown)} in run {run.run_id}{hint} "
                         f"(known: {', '.join(sorted(known))})")
    control = run.run_dir / "control"
    control.mkdir(exist_ok=True)
    targets = ["--all"] if all_tasks else task_ids
    for target in targets:
        write_bytes_atomic(control / f"cancel-{target}", b"")
    return sorted(known) if all_tasks else task_ids


# -- export -------------------------------------------------------------------------------------


def export_run(run: RunPaths) -> dict[str, Any]:
    """One JSON with the registry, its stats and every task's result."""
    monitoring = run.monitoring_dir
    registry = _json(monitoring / f"{run.run_id}_final.json")
    current = _json(monitoring / "process_registry.json")
    if isinstance(current, dict) and current.get("run_id") == run.run_id:
        registry = current
    stats = _json(monitoring / "registry_stats.json")
    if isinstance(stats, dict) and stats.get("run_id") != run.run_id:
        stats = None
    results = {}
    for task_dir in sorted((run.run_dir / "tasks").glob("*")):
        result = _json(task_dir / "result.json")
        if result is not None:
            results[task_dir.name] = result
    return {
        "schema_version": 1,
        "run_id": run.run_id,
        "registry": registry,
        "registry_stats": stats,
        "status": _json(monitoring / f"{run.run_id}_status.json"),
        "report": _json(run.run_dir / "report.json"),
        "results": results,
    }


# -- clean --------------------------------------------------------------------------------------


@dataclass
class CleanOutcome:
    removed: list[str] = field(default_factory=list)
    saved_and_removed: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)


def clean_runs(project: Project, run_id: str | None, *, all_runs: bool, force: bool) -> CleanOutcome:
    """Remove the worktrees of finished runs; their branches always stay."""
    root = project.root
    lock = RunLock(root / ".gadugi")
    active = lock.holder().get("run_id") if lock.held_by_other() else None
    runs = [project.find_run(run_id)] if not all_runs else [
        RunPaths(root, p, project.monitoring_dir) for p in run_dirs(root)
    ]
    manager = _manager(project)
    outcome = CleanOutcome()
    registered = {e.path.resolve() for e in git.list_worktrees(root)}
    for run in runs:
        if run.run_id == active:
            if not all_runs:
                raise InputError(f"run {run.run_id} is still active; wait for it or cancel it first")
            continue
        plan = saved_plan(run.run_dir)
        run_base = plan.get("base_sha")
        for task in plan.get("tasks", []):
            path = Path(task["worktree"])
            if not path.exists() or path.resolve() not in registered:
                continue
            tid = str(task["spec"]["id"])
            dirty = git.is_dirty(path)
            saved = f"{tid}: work saved by `orchestrator clean --force`" if force else None
            removed = dispose_worktree(manager, path, task_id=tid, branch=str(task.get("branch") or ""),
                                       base_sha=str(run_base or ""), teardown=project.settings["teardown"],
                                       log_path=run.run_dir / "tasks" / tid / "workflow_manager.log",
                                       save_work_as=saved)
            if not removed:
                outcome.kept.append((str(path), "uncommitted changes (use --force to commit them to the branch and remove)"))
            elif dirty:
                outcome.saved_and_removed.append(str(path))
            else:
                outcome.removed.append(str(path))
    if active is None:
        # Pooled worktrees belong to no task and hold nothing but a clean checkout.
        outcome.removed += [str(p) for p in WorktreePool(manager, size=0).drain()]
    git.prune_worktrees(root)
    return outcome


# -- doctor -------------------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str
    detail: str
    fixed: bool = False


def claude_advice(project_root: Path, env: Mapping[str, str], *, parallel: int, mcp: str) -> list[str]:
    """What `parallel` Claude agents would share with the user's setup that is worth changing:
    many MCP server processes, one subscription login refreshed by all."""
    servers = mcp_server_count(mcp, project_root, env)
    notes = [mcp_note(servers, parallel, only_many=True), shared_login_note(parallel, env)]
    return [note for note in notes if note]


def _manager(project: Project) -> WorktreeManager:
    return WorktreeManager(project.root, worktrees_dir=project.worktrees_dir, branch_prefix=project.branch_prefix)


def doctor(project: Project, *, force: bool) -> list[Finding]:
    """Orphaned runs and worktrees, dirty worktrees, leftover locks and processes; fixes only with force."""
    root = project.root
    manager = _manager(project)
    # First, since it is the one to act on: nothing --force does continues a run; resume does.
    findings = [Finding("orphaned run", orphan_notice(run.run_id, run.last_seen)) for run in orphaned_runs(root)]
    lock = RunLock(root / ".gadugi")
    active = lock.held_by_other()
    holder = lock.holder()
    if not active and holder:
        finding = Finding("stale lock", f"{lock.holder_path} names run {holder.get('run_id')} "
                                        f"(pid {holder.get('pid')}), which is gone")
        if force:
            lock.holder_path.unlink(missing_ok=True)
            finding.fixed = True
        findings.append(finding)
    for orphan in manager.orphans():
        if orphan.kind == "missing":
            finding = Finding("orphaned registration", f"{orphan.path} is registered but its directory is gone")
            if force:
                git.prune_worktrees(root)
                finding.fixed = True
        else:
            finding = Finding("orphaned directory", f"{orphan.path} is not a registered worktree (inspect and remove by hand)")
        findings.append(finding)
    for entry in git.list_worktrees(root):
        if entry.path.resolve() == root or not entry.path.is_dir():
            continue
        if not str(entry.path.resolve()).startswith(str(manager.worktrees_root.resolve())):
            continue
        if git.is_dirty(entry.path):
            findings.append(Finding("dirty worktree", f"{entry.path} ({entry.branch}) has uncommitted changes; "
                                                      "never removed automatically"))
        if entry.locked and entry.lock_reason == POOL_LOCK_REASON:
            continue  # the pool's own idle checkout, kept on purpose for the next task
        if entry.locked and not active:
            finding = Finding("leftover worktree lock", f"{entry.path}: {entry.lock_reason}")
            if force:
                git.unlock_worktree(root, entry.path)
                finding.fixed = True
            findings.append(finding)
    if not active:
        findings += _leftover_processes(root, force=force)
    return findings


def _leftover_processes(root: Path, *, force: bool) -> list[Finding]:
    """WorkflowManagers (and their agents) we started that outlived every orchestrator."""
    findings = []
    for wm_file in sorted((root / ".gadugi" / "runs").glob("*/tasks/*/wm.json")):
        try:
            data = json.loads(wm_file.read_text(encoding="utf-8"))
            pid, created = int(data["pid"]), float(data["create_time"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not is_alive(pid, created):
            continue
        task_dir = wm_file.parent
        finding = Finding("leftover process", f"WorkflowManager pid {pid} of task {task_dir.name} in run "
                                              f"{task_dir.parent.parent.name} still runs with no orchestrator "
                                              "(`orchestrator resume` adopts it)")
        if force:
            # SIGTERM: it stops its agent with the usual escalation (SIGINT, SIGTERM, SIGKILL with
            # their graces), so it is given that long to go; only gone counts as fixed.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            finding.fixed = wait_gone(pid, created, timeout=LEFTOVER_STOP_WAIT)
            if not finding.fixed:
                finding.detail += f"; still running {LEFTOVER_STOP_WAIT:g}s after SIGTERM"
        findings.append(finding)
    return findings
