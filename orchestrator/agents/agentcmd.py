"""The exact agent command line for a task, and the up-front check that the agent exists."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator.agents import generic
from orchestrator.agents.commands import KNOWN_AGENTS, build_agent_command
from orchestrator.agents.permissions import DEFAULT_ALLOWED_TOOLS, check_permission_policy
from orchestrator.cmd import which
from orchestrator.config.model import OrchestrationConfig
from orchestrator.errors import AgentUnavailable, InputError
from orchestrator.models import Plan, TaskSpec

INSTALL_HINT = {
    "claude": "install Claude Code with `npm install -g @anthropic-ai/claude-code`, then run `claude` "
    "once and /login (or set ANTHROPIC_API_KEY)",
    "codex": "install Codex with `npm install -g @openai/codex`, then `codex login` (or set OPENAI_API_KEY)",
    "gemini": "install Gemini CLI with `npm install -g @google/gemini-cli`, then set GEMINI_API_KEY",
    "aider": "install aider with `pipx install aider-chat`",
}


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
    if config.agent_cmd:
        values = {
            "prompt_file": str(prompt_file) if prompt_file else f".gadugi/runs/{run_id}/tasks/{spec.id}/prompt.md",
            "worktree": str(worktree),
            "task_id": spec.id,
            "branch": branch,
            "run_id": run_id,
        }
        argv = generic.build_command(config.agent_cmd, values)
        return [_resolve(argv[0], env) or argv[0], *argv[1:], *config.agent_args]
    agent = spec.agent or config.agent
    if agent not in KNOWN_AGENTS:
        raise InputError(
            f"task '{spec.id}': unknown agent {agent!r} (known: {', '.join(KNOWN_AGENTS)}; or use --agent-cmd)"
        )
    return build_agent_command(
        agent,
        executable=_resolve(agent, env) or agent,
        model=spec.model or config.model,
        max_turns=spec.max_turns or config.max_turns,
        permission_mode=config.permission_mode,
        # Added to, never replaced: allowing `Bash(pytest:*)` must not take away committing.
        allowed_tools=tuple(dict.fromkeys((*DEFAULT_ALLOWED_TOOLS, *config.allowed_tools))),
        extra_args=tuple(config.agent_args),
        worktree=str(worktree),
        prompt_file=str(prompt_file) if prompt_file else f".gadugi/runs/{run_id}/tasks/{spec.id}/prompt.md",
        resume_session=resume_session,
        max_budget_usd=config.max_budget_usd,
    )


def supports_resume(agent: str) -> bool:
    """Agents whose retries can continue the same session instead of starting over."""
    return agent in ("claude", "codex", "gemini")


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
        check_permission_policy(planned.agent_command, env=env)
        if not executable:
            continue
        exe = planned.agent_command[0]
        if exe in seen:
            continue
        seen.add(exe)
        if _resolve(exe, env) is None:
            name = Path(exe).name
            hint = INSTALL_HINT.get(name, "check --agent-cmd and PATH")
            raise AgentUnavailable(f"agent `{name}` not found on PATH: {hint}")
