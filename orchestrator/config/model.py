"""Run settings: one typed object built by the CLI (or a Python caller) and passed to the core."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from orchestrator.config.machine import Machine
from orchestrator.config.settings import DEFAULT_TASK_TIMEOUT


class OrchestrationConfig(BaseModel):
    """Everything a run needs to know; defaults match what the CLI does with no flags."""

    max_parallel: int = Field(default=4, description="Tasks running at once; never exceeded.")
    machine: Machine | None = Field(
        default=None, description="What `--max-parallel auto` detected and decided; None for a given number."
    )
    task_timeout_seconds: float = DEFAULT_TASK_TIMEOUT
    base_ref: str | None = Field(default=None, description="Base ref; HEAD when unset.")
    monitoring_dir: Path | None = Field(
        default=None, description="Where the registry JSON goes; <root>/.gadugi/monitoring when unset."
    )
    worktrees_dir: str = ".worktrees"
    branch_prefix: str = "gadugi/"
    fallback_to_sequential: bool = True
    worktree_cleanup: Literal["auto", "keep", "cleanup"] = "auto"
    agent: str = "claude"
    agent_cmd: str | None = Field(default=None, description="Command template replacing the agent.")
    agent_args: list[str] = Field(default_factory=list)
    model: str | None = None
    max_turns: int | None = None
    permission_mode: str | None = "acceptEdits"
    allowed_tools: list[str] = Field(default_factory=list)
    verify: str | None = None
    fix_rounds: int = Field(default=2, ge=0, description="Fix-up rounds when the checks after the agent fail.")
    placeholder_check: bool = Field(default=True, description="Scan the lines a task added for placeholders.")
    placeholder_patterns: list[str] = Field(default_factory=list, description="Regexes; built-in ones when empty.")
    sandbox: Literal["auto", "on", "off"] = Field(default="auto", description="auto = when the platform has it.")
    sandbox_write: list[str] = Field(default_factory=list, description="Extra paths a sandboxed agent may write.")
    allowed_domains: list[str] = Field(default_factory=list, description="Domains Claude's sandbox lets through.")
    mcp: str = Field(default="inherit", description="inherit, none, or an MCP config file for Claude agents.")
    claude_config: Literal["auto", "isolated", "shared"] = Field(
        default="auto", description="Claude Code's config directory: one per task, or the user's shared.")
    trust_project: bool = Field(default=False, description="Apply .claude/settings.json in worktrees, trusted or not.")
    interrupt_timeout: float = Field(default=5.0, description="Seconds after SIGINT before SIGTERM.")
    terminate_timeout: float = Field(default=5.0, description="Seconds after SIGTERM before SIGKILL.")
    run_timeout_seconds: float | None = None
    stall_timeout_seconds: float | None = Field(default=900.0, description="None turns stall detection off.")
    retries: int = Field(default=2, ge=0)
    backoff_base: float = Field(default=5.0, ge=0)
    backoff_cap: float = Field(default=300.0, ge=0)
    launch_stagger: float = Field(default=0.5, ge=0, description="Seconds between launches (jittered).")
    min_free_memory: int = Field(default=512 * 2**20, ge=0, description="Bytes; launches wait below it.")
    min_free_disk: int = Field(default=1024 * 2**20, ge=0, description="Bytes; launches wait below it.")
    breaker_threshold: int = Field(default=3, ge=1)
    max_budget_usd: float | None = Field(default=None, gt=0, description="Per task, passed to the agent.")
    run_budget_usd: float | None = Field(default=None, gt=0, description="No task starts once this is spent.")
    context: str | None = Field(default=None, description="File included in every task's prompt.")
    worktree_pool: int | None = Field(
        default=None, ge=0, description="Clean finished worktrees kept for reuse; max_parallel when unset, 0 = off."
    )
    sparse: bool = Field(default=False, description="Sparse worktrees of the `files:` scopes prompts declare.")
    setup: str | None = Field(default=None, description="Shell command run in each new worktree.")
    teardown: str | None = Field(default=None, description="Shell command run before a worktree is removed.")
    port_range: tuple[int, int] | None = Field(default=None, description="$PORT is allocated from this range.")
    worktree_include: str | None = Field(default=".worktreeinclude", description="Patterns file of ignored files to copy.")
    backend: str = Field(default="local", description="local, dask (needs scheduler) or dask-local.")
    scheduler: str | None = Field(default=None, description="Dask scheduler address for backend dask.")
    otel: bool = Field(default=False, description="Export the run as an OpenTelemetry trace (also on with OTEL_* set).")
    env: dict[str, str] | None = Field(
        default=None, description="Environment for agents; the orchestrator's own when unset."
    )

    @field_validator("max_parallel")
    @classmethod
    def _positive_parallel(cls, value: int) -> int:
        if value < 1:
            raise ValueError("--max-parallel must be at least 1")
        return value

    def environment(self) -> dict[str, str]:
        return dict(self.env) if self.env is not None else dict(os.environ)

