"""One entry point for every agent's command line, so callers never branch on the agent name."""
from __future__ import annotations

from collections.abc import Sequence

from orchestrator.agents import aider, claude, codex, gemini
from orchestrator.errors import InputError

KNOWN_AGENTS = ("claude", "codex", "gemini", "aider")


def build_agent_command(
    agent: str,
    *,
    model: str | None,
    max_turns: int | None,
    permission_mode: str | None,
    allowed_tools: Sequence[str],
    extra_args: Sequence[str],
    worktree: str,
    prompt_file: str,
    resume_session: str | None = None,
    executable: str | None = None,
    max_budget_usd: float | None = None,
) -> list[str]:
    """argv for one headless run of `agent` in `worktree`.

    The prompt reaches each CLI the way it reads it best: stdin for claude, codex and gemini,
    `prompt_file` for aider. Options an agent has no flag for are not passed: `max_turns` and
    `max_budget_usd` only to claude, `allowed_tools` (Claude tool patterns) only to claude.
    `executable` overrides the program name (a resolved path)."""
    exe = executable or agent
    if agent == "claude":
        return claude.build_command(
            executable=exe, model=model, max_turns=max_turns, permission_mode=permission_mode,
            allowed_tools=tuple(allowed_tools), extra_args=tuple(extra_args),
            resume_session=resume_session, max_budget_usd=max_budget_usd,
        )
    if agent == "codex":
        return codex.build_command(
            executable=exe, worktree=worktree, model=model, permission_mode=permission_mode,
            extra_args=extra_args, resume_session=resume_session,
        )
    if agent == "gemini":
        return gemini.build_command(
            executable=exe, model=model, permission_mode=permission_mode, extra_args=extra_args,
            resume_session=resume_session,
        )
    if agent == "aider":
        return aider.build_command(
            executable=exe, prompt_file=prompt_file, model=model, extra_args=extra_args,
            resume_session=resume_session,
        )
    raise InputError(f"unknown agent {agent!r} (known: {', '.join(KNOWN_AGENTS)}; or use --agent-cmd)")


def prompt_on_stdin(agent: str) -> bool:
    """Whether the agent reads its prompt from stdin (all but aider, which reads the file)."""
    return agent != "aider"
