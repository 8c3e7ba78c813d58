"""The exact agent command line for a task, and the up-front check that the agent exists."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator.agents import agent_of_command, get_agent
from orchestrator.agents.base import Invocation
from orchestrator.cmd import which
from orchestrator.config.model import OrchestrationConfig
from orchestrator.errors import AgentUnavailable, InputError
from orchestrator.models import Plan, TaskSpec


def agent_command(
    config: OrchestrationConfig,
    spec: TaskSpec,
    *,
    env: Mapping[str, str],
    worktree: Path,
    branch: str,
    prompt_file: Path | None,
    run_id: str = "<run-id>",
    resume_session: str | None = None,
) -> list[str]:
    """argv for the task's agent; the prompt itself always goes on stdin (or via {prompt_file})."""
    name = "generic" if config.agent_cmd else (spec.agent or config.agent)
    try:
        agent = get_agent(name)
    except InputError as exc:
        raise InputError(f"task '{spec.id}': {exc}") from None
    argv = agent.command(Invocation(
        worktree=str(worktree),
        prompt_file=str(prompt_file) if prompt_file else f".gadugi/runs/{run_id}/tasks/{spec.id}/prompt.md",
        model=spec.model or config.model,
        max_turns=spec.max_turns or config.max_turns,
        permission_mode=config.permission_mode,
        allowed_tools=tuple(config.allowed_tools),
        extra_args=tuple(config.agent_args),
        resume_session=resume_session,
        mcp=config.mcp,
        max_budget_usd=config.max_budget_usd,
        template=config.agent_cmd,
        task_id=spec.id,
        branch=branch,
        run_id=run_id,
    ))
    return [_resolve(argv[0], env) or argv[0], *argv[1:]]


def supports_resume(agent: str) -> bool:
    """Agents whose retries can continue the same session instead of starting over."""
    return get_agent(agent).resumes_sessions


def _resolve(executable: str, env: Mapping[str, str]) -> str | None:
    if os.sep in executable:
        path = Path(executable).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return which(executable, path=env.get("PATH", ""))


def check_agent_available(
    config: OrchestrationConfig, plan: Plan, *, env: Mapping[str, str], executable: bool = True
) -> None:
    """One clear line, before anything is created, when the agent's flags will be refused or
    (with `executable`) its executable cannot be found."""
    seen: set[str] = set()
    for planned in plan.tasks:
        agent_of_command(planned.agent_command).check_command(planned.agent_command, env=env)
        if not executable:
            continue
        exe = planned.agent_command[0]
        if exe in seen:
            continue
        seen.add(exe)
        if _resolve(exe, env) is None:
            hint = agent_of_command([exe]).install_hint
            raise AgentUnavailable(f"agent `{Path(exe).name}` not found on PATH: {hint}")
