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
    sandbox: str = Field(default="none", description="The boundary the agent runs in (agents.sandbox).")
    sandbox_write: list[str] = Field(default_factory=list, description="Extra paths the sandboxed agent may write.")
    allowed_domains: list[str] = Field(default_factory=list, description="Domains Claude's sandbox lets through.")
    trust_project: bool = Field(default=False, description="Pass the project's Claude Code settings on as flag settings.")

    @property
    def result_path(self) -> Path:
        return self.task_dir / "result.json"


class AgentCheckpoint(BaseModel):
    """`agent_outcome.json`: how the agent of an attempt ended, written the moment it ended, so a
    WorkflowManager killed later (in verify or commit) does not cost a second agent run."""

    attempt: int
    outcome: AgentOutcome


EventName = Literal["phase", "agent_started", "heartbeat", "log", "result"]


class WorkflowEvent(BaseModel):
    """One line of a WorkflowManager's stdout."""

    event: EventName
    task_id: str
    ts: str
    data: dict[str, Any] = Field(default_factory=dict)
