"""What the ExecutionEngine hands a WorkflowManager, and the events it sends back.

The request is a file (`request.json` in the task's run directory) so a WorkflowManager can be
started, inspected and re-attached without the orchestrator; environment values (API keys) are
never written into it, they reach the subprocess only through its environment.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from orchestrator.models import AgentOutcome

AGENT_ARGV_ENV = "GADUGI_AGENT_ARGV"  # the unmasked agent argv, when it holds a secret
FRESH_ARGV_ENV = "GADUGI_FRESH_AGENT_ARGV"  # the same for fresh_agent_command
AGENT_CHECKPOINT = "agent_outcome.json"
FIXUP_ARGV_ENV = "GADUGI_FIXUP_ARGV"  # the unmasked fix-up commands, when they hold a secret
SESSION_TOKEN = "{session_id}"  # in a fix-up resume command: the agent's session, known only once it ran


class Validation(BaseModel):
    """What the validation checkpoint holds the task to, and how a fix-up round is started."""

    fix_rounds: int = Field(default=0, description="Fix-up rounds when a check fails; 0 = fail at once.")
    placeholder_check: bool = True
    placeholder_patterns: list[str] = Field(default_factory=list, description="Regexes; the built-in ones when empty.")
    prompt_text: str = Field(default="", description="The task's own prompt: what it asks for is not a finding.")
    outputs: list[str] = Field(default_factory=list)
    requirements: list[str] = Field(default_factory=list, description="R1, R2, ... in order.")
    resume_command: list[str] | None = Field(
        default=None, description=f"Continues the agent's session ({SESSION_TOKEN} stands for it) with the "
        "fix-up message; None when the agent cannot resume."
    )
    fresh_command: list[str] | None = Field(
        default=None, description="Starts the agent afresh on the full prompt and the fix-up message."
    )
    prompt_path: Path | None = Field(default=None, description="Where the fix-up prompt is written for them.")
    budget_usd: float | None = Field(
        default=None, description="What was left of the run budget at launch: no round starts once the task spent it."
    )


class Predecessor(BaseModel):
    task_id: str
    branch: str
    head_sha: str
    title: str = ""
    final_message: str = Field(default="", description="What its agent said at the end, shortened.")
    changed_files: list[str] = Field(default_factory=list)


class TaskRequest(BaseModel):
    run_id: str
    task_id: str
    title: str = ""
    attempt: int = 1
    project_root: Path
    task_dir: Path
    prompt_path: Path
    branch: str
    worktree: Path
    base_sha: str
    predecessors: list[Predecessor] = Field(default_factory=list)
    agent: str = Field(default="claude", description="claude, codex, gemini, aider or generic (--agent-cmd).")
    model: str | None = None
    agent_command: list[str]
    timeout_seconds: float
    verify: str | None = None
    in_place: bool = Field(default=False, description="Sequential fallback: work in the main checkout.")
    worktrees_dir: str = ".worktrees"
    branch_prefix: str = "gadugi/"
    interrupt_timeout: float = 5.0
    terminate_timeout: float = 5.0
    stall_timeout: float | None = Field(default=900.0, description="Seconds of no sign of life before a stall.")
    start_sha: str = Field(default="", description="On a retry: the commit the task's branch started from.")
    reuse_worktree: bool = Field(default=False, description="On a retry: continue in the task's worktree.")
    resume_session: str | None = None
    fresh_agent_command: list[str] | None = Field(
        default=None, description="With resume_session: the command that starts afresh if the session is gone."
    )
    fresh_prompt_path: Path | None = None
    agent_outcome: AgentOutcome | None = Field(
        default=None, description="Set when an earlier, interrupted attempt's agent already succeeded: "
        "the agent is not run again, only the checks after it."
    )
    setup: str | None = Field(default=None, description="Shell command run in the new worktree before the agent.")
    port_range: tuple[int, int] | None = None
    worktree_include: str | None = ".worktreeinclude"
    pool_size: int = Field(default=0, description="Recycle pooled worktrees (and return this one) when > 0.")
    sparse_scopes: list[str] = Field(
        default_factory=list, description="Declared `files:` scopes to check out sparsely (--sparse); empty = full."
    )
    validation: Validation = Field(default_factory=Validation)
    sandbox: str = Field(default="none", description="The boundary the agent runs in (agents.sandbox).")
    sandbox_write: list[str] = Field(default_factory=list, description="Extra paths the sandboxed agent may write.")
    allowed_domains: list[str] = Field(default_factory=list, description="Domains Claude's sandbox lets through.")
    trust_project: bool = Field(default=False, description="Pass the project's Claude Code settings on as flag settings.")
    claude_config_dir: Path | None = Field(
        default=None, description="The task's own Claude Code config directory (CLAUDE_CONFIG_DIR), seeded from the user's.")

    @property
    def result_path(self) -> Path:
        return self.task_dir / "result.json"


class AgentCheckpoint(BaseModel):
    """`agent_outcome.json`: how the agent of an attempt ended, written the moment it ended, so a
    WorkflowManager killed later (in verify or commit) does not cost a second agent run."""

    attempt: int
    outcome: AgentOutcome


EventName = Literal["phase", "agent_started", "heartbeat", "log", "fixup", "result"]


class WorkflowEvent(BaseModel):
    """One line of a WorkflowManager's stdout."""

    event: EventName
    task_id: str
    ts: str
    data: dict[str, Any] = Field(default_factory=dict)
