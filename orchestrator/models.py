"""Typed shapes shared by every component: prompts, the plan, task outcomes and run results.

These models are the boundaries between modules and the JSON the tool writes; fields are only ever
added, never renamed, so readers of older files keep working.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime | None = None) -> str:
    """ISO-8601 with a timezone, the one timestamp format in every file we write."""
    return (ts or utcnow()).astimezone(UTC).isoformat(timespec="milliseconds")


class Model(BaseModel):
    """Base of our models: validators are built on first use, not at import, so a process that
    needs three of these models (a WorkflowManager) does not pay for all of them at start."""

    model_config = ConfigDict(defer_build=True)


class TaskStatus(str, Enum):
    """Lifecycle states; the values are Gadugi's, so existing readers keep working."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (TaskStatus.QUEUED, TaskStatus.RUNNING)


class Phase(str, Enum):
    """Where a task is inside its WorkflowManager."""

    QUEUED = "queued"
    SETUP = "setup"
    AGENT = "agent"
    VERIFY = "verify"
    COMMIT = "commit"
    REPORT = "report"
    DONE = "done"


class TaskSpec(Model):
    """One prompt file, parsed: what the task is, what it touches, what it needs first."""

    model_config = ConfigDict(frozen=False, defer_build=True)

    id: str
    title: str
    prompt_file: Path
    prompt_text: str = Field(description="The whole original prompt file, front matter included.")
    index: int = Field(description="Position in the input order (0-based).")
    depends_on: list[str] = Field(default_factory=list, description="Resolved task ids.")
    files: list[str] = Field(
        default_factory=list, description="Scopes: file paths, directories (trailing /) or globs."
    )
    conflicts_with: list[str] = Field(default_factory=list, description="Resolved task ids.")
    priority: int = 5
    agent: str | None = None
    model: str | None = None
    timeout_seconds: float | None = None
    max_turns: int | None = None
    verify: str | None = None
    allow_placeholders: bool = Field(default=False, description="The task may leave placeholders (no scan).")
    outputs: list[str] = Field(
        default_factory=list, description="Paths the task must create or change (non-empty) on its branch."
    )
    requirements: list[str] = Field(
        default_factory=list, description="Requirements R1, R2, ... in order: front matter, else the prompt's list."
    )
    fix_rounds: int | None = Field(default=None, description="Fix-up rounds for this task; the run's when unset.")
    skip_reason: str | None = Field(
        default=None, description="Set when the prompt is marked done; the task is not run."
    )


class EdgeKind(str, Enum):
    DEPENDENCY = "dependency"
    CONFLICT = "conflict"


class Edge(Model):
    """`before` must end before `after` starts. Dependency edges also pass work along."""

    before: str
    after: str
    kind: EdgeKind
    reason: str


class PlannedTask(Model):
    """A task with the names and command it will run under."""

    spec: TaskSpec
    branch: str
    worktree: Path
    agent_command: list[str]
    sandbox: str = Field(default="none", description="The boundary its agent runs in: bubblewrap, claude-sandbox, none.")


class Plan(Model):
    """The DAG the ExecutionEngine runs: tasks, ordering edges with reasons, skipped prompts."""

    tasks: list[PlannedTask]
    edges: list[Edge]
    shared_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Each scope two or more tasks touch -> those tasks in plan order; at most one of them "
        "runs at a time, in either order. Their conflict edges are a chain, not one per pair.",
    )
    skipped: list[TaskSpec] = Field(default_factory=list)
    base_ref: str = "HEAD"
    base_sha: str = ""

    def task(self, task_id: str) -> PlannedTask:
        for planned in self.tasks:
            if planned.spec.id == task_id:
                return planned
        raise KeyError(task_id)


class Tokens(Model):
    input: int = 0
    output: int = 0
    cache_creation: int = 0
    cache_read: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_creation + self.cache_read

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_creation=self.cache_creation + other.cache_creation,
            cache_read=self.cache_read + other.cache_read,
        )


FailureClass = Literal[
    "none",
    "agent_error",
    "max_turns",
    "budget",
    "auth",
    "api_error",
    "rate_limited",
    "crashed",
    "killed",
    "timeout",
    "cancelled",
    "verify_failed",
    "setup_failed",
    "no_result",
    "stalled",
    "lost",
    "session_lost",
    "validation",
]

# Who ended a cancelled task. Only "interrupt" (Ctrl-C or SIGTERM to the orchestrator, or its
# second-Ctrl-C kill) is resumable: `orchestrator resume` re-queues those tasks.
CancelCause = Literal["interrupt", "user", "run_timeout", "budget", "breaker", "dependency"]

# What a cancelled task's message says, by who cancelled it; a running task's own message
# ("cancelled (SIGTERM)") only says how it was stopped. `dependency` keeps the engine's reason,
# which names the dependency.
CANCEL_WORDING: dict[CancelCause, str] = {
    "interrupt": "interrupted (Ctrl-C or SIGTERM to the orchestrator); `orchestrator resume` continues it",
    "user": "cancelled by user (`orchestrator cancel`)",
    "run_timeout": "cancelled: the run timeout was reached before it started",
    "budget": "cancelled: the run budget was spent before it started",
    "breaker": "cancelled: launches were stopped after the same failure repeated (see the run's error)",
}


def cancel_message(cause: CancelCause | None, detail: str | None) -> str:
    """A cancelled task's one-line message: who cancelled it, not how its process was stopped."""
    if cause is None or cause == "dependency":
        return detail or "cancelled"
    return CANCEL_WORDING[cause]


class AgentOutcome(Model):
    """What one agent run amounted to, read from its event stream and exit code."""

    success: bool = False
    failure: FailureClass = "none"
    message: str = ""
    exit_code: int | None = None
    session_id: str | None = None
    num_turns: int = 0
    tokens: Tokens = Field(default_factory=Tokens)
    cost_usd: float | None = None
    cost_estimated: bool = Field(
        default=False, description="cost_usd is a list-price estimate from token counts, not a figure the agent reported."
    )
    final_message: str = ""
    last_tool: str | None = None
    result_subtype: str | None = None
    events: int = 0
    rate_limit_resets_at: float | None = Field(
        default=None, description="Unix time a rejected rate limit resets, when the agent said."
    )


# `ValueError: x`, `E   assert 1 == 2`, `FAILED tests/t.py::x - ...`, `error: x`, `make: *** [x] Error 2`.
_ERROR_LINE = re.compile(r"^\w*(Error|Exception)\b|^E\s|^FAILED\b|\berror\b|\*\*\*", re.IGNORECASE)


class VerifyResult(Model):
    command: str
    exit_code: int
    passed: bool
    output_tail: str = ""
    duration_seconds: float = 0.0

    def last_lines(self, count: int) -> list[str]:
        """The end of the check's output, where a traceback or a test runner names what broke."""
        return [line.rstrip() for line in self.output_tail.rstrip().splitlines()[-count:]]

    def telling_line(self) -> str:
        """The one line that says what broke: the last that names an error, else the last line."""
        lines = [line.strip() for line in self.output_tail.splitlines() if line.strip()]
        for line in reversed(lines):
            if _ERROR_LINE.search(line):
                return line
        return lines[-1] if lines else "no output"


class RequirementCheck(Model):
    """One requirement: what the agent claimed about it, and whether the evidence it cited exists."""

    id: str
    text: str
    status: Literal["done", "not_done", "not_reported"] = Field(
        default="not_reported", description="The agent's own claim; not_reported when its final message had none."
    )
    evidence: str = Field(default="", description="What the agent cited: `path[:line]` or a test.")
    evidence_found: bool = Field(default=False, description="The cited path exists on the task's branch.")

    @property
    def met(self) -> bool:
        return self.status == "done" and self.evidence_found


class ValidationResult(Model):
    """The validation checkpoint after the agent: each check's findings, after the last fix-up round."""

    placeholders: list[str] = Field(
        default_factory=list, description="`file:line: text` of placeholders in the lines the task added."
    )
    missing_outputs: list[str] = Field(
        default_factory=list, description="Declared outputs missing, empty or unchanged by the task, with why."
    )
    requirements: list[RequirementCheck] = Field(default_factory=list)
    verify_passed: bool | None = Field(default=None, description="None when the task has no verify command.")
    fix_rounds: int = Field(default=0, description="Fix-up rounds the agent was given (not retries).")
    placeholder_check: bool = Field(default=True, description="False when the scan was turned off.")

    @property
    def requirements_met(self) -> int:
        return sum(1 for r in self.requirements if r.met)

    @property
    def passed(self) -> bool:
        return (not self.placeholders and not self.missing_outputs and self.verify_passed is not False
                and self.requirements_met == len(self.requirements))

    def findings(self) -> list[str]:
        """Each problem on one line, as the fix-up message and the report list them."""
        lines = [f"placeholder: {p}" for p in self.placeholders]
        lines += [f"missing output: {m}" for m in self.missing_outputs]
        for r in self.requirements:
            if r.met:
                continue
            if r.status != "done":
                lines.append(f"requirement {r.id} {r.status.replace('_', ' ')}: {r.text}")
            else:
                cited = f"evidence `{r.evidence}` not found" if r.evidence else "no evidence cited"
                lines.append(f"requirement {r.id} claimed done, {cited}: {r.text}")
        return lines


class AttemptRecord(Model):
    """One finished attempt of a task that was tried again."""

    attempt: int
    status: TaskStatus
    failure: FailureClass = "none"
    error_message: str | None = None
    session_id: str | None = None
    duration_seconds: float = 0.0
    cost_usd: float | None = None
    retry_delay_seconds: float | None = None
    started_at: str | None = None
    completed_at: str | None = None


class TaskResult(Model):
    """What the WorkflowManager hands back for one task; also written to result.json."""

    task_id: str
    status: TaskStatus
    attempt: int = 1
    branch: str = ""
    worktree: str = ""
    base_sha: str = ""
    head_sha: str = ""
    commits: list[str] = Field(default_factory=list)
    changed_files: list[str] = Field(default_factory=list)
    insertions: int = 0
    deletions: int = 0
    no_changes: bool = False
    auto_committed: bool = False
    outcome: AgentOutcome = Field(default_factory=AgentOutcome)
    verify: VerifyResult | None = None
    validation: ValidationResult | None = Field(default=None, description="Set once the checkpoint ran.")
    error_message: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_seconds: float = 0.0
    start_sha: str = Field(default="", description="Commit the task's branch started from.")
    cancelled_by: CancelCause | None = Field(default=None, description="Set when status is cancelled.")
    attempts: list[AttemptRecord] = Field(default_factory=list, description="Earlier attempts, oldest first.")

    def total_cost_usd(self) -> float | None:
        """Every attempt's cost, this one's included."""
        return sum_costs([*(a.cost_usd for a in self.attempts), self.outcome.cost_usd])


class TaskSummary(Model):
    """One row of the run result, in the shape `--json` prints."""

    task_id: str
    title: str = ""
    status: TaskStatus
    branch: str = ""
    worktree: str = ""
    commits: list[str] = Field(default_factory=list)
    changed_files: list[str] = Field(default_factory=list)
    insertions: int = 0
    deletions: int = 0
    no_changes: bool = False
    duration_seconds: float = 0.0
    attempts: int = 0
    error_message: str | None = None
    cost_usd: float | None = None
    cost_estimated: bool = Field(default=False, description="cost_usd is a list-price estimate (see AgentOutcome).")
    tokens: Tokens = Field(default_factory=Tokens)
    session_id: str | None = None
    verify_passed: bool | None = None
    verify_output: list[str] = Field(
        default_factory=list, description="When verify failed: the last lines of its output, where the error is named."
    )
    validation: ValidationResult | None = None
    started_at: str | None = None
    completed_at: str | None = None


class RunSegment(Model):
    """One orchestrator process's share of a run, read from the run's journal."""

    started_at: str = Field(description="Its run_started or run_resumed record.")
    ended_at: str = Field(
        description="Its run_finished (the moment it took the run's figures); for a killed process, its last record."
    )
    seconds: float
    pid: int | None = None
    resumed: bool = Field(default=False, description="Started by `orchestrator resume`.")
    killed: bool = Field(default=False, description="It left no run_finished: it was killed or crashed.")


def sum_costs(costs: Iterable[float | None]) -> float | None:
    """Dollars summed the one way every figure is: unknown costs are left out, and no known cost
    at all is None (not $0), rounded to a millionth."""
    known = [c for c in costs if c is not None]
    return round(sum(known), 6) if known else None


def money(amount: float | None, *, estimated: bool = False) -> str:
    """`$0.0123`, or `~$0.0123` for a list-price estimate, or `-` when unknown."""
    if amount is None:
        return "-"
    return f"{'~' if estimated else ''}${amount:.4f}"


def cost_line(result: OrchestrationResult) -> str:
    """The run's cost, saying how much of it is estimated rather than reported by the agents."""
    line = money(result.total_cost_usd)
    if result.estimated_cost_usd:
        line += f" ({money(result.estimated_cost_usd, estimated=True)} of it estimated from token counts at list prices)"
    return line


class OrchestrationResult(Model):
    """The whole run; `orchestrator run --json` prints exactly this."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    total_tasks: int
    successful_tasks: int
    failed_tasks: int
    cancelled_tasks: int = 0
    skipped_tasks: int = 0
    execution_time_seconds: float = Field(
        description="Wall time of the run: the sum of its orchestrator processes' `segments`, from the journal. "
        "Time between them, while no orchestrator ran, is `gap_seconds` and is not included."
    )
    parallel_speedup: float | None = Field(
        default=None,
        description="Task time while an orchestrator ran (`task_seconds` - `task_seconds_in_gaps`) / "
        "`execution_time_seconds`, measured.",
    )
    segments: list[RunSegment] = Field(default_factory=list, description="The run's orchestrator processes, in order.")
    gap_seconds: float = Field(default=0.0, description="Time between segments while no orchestrator of the run ran.")
    task_seconds: float | None = Field(default=None, description="Sum of the tasks' durations, every attempt.")
    task_seconds_in_gaps: float = Field(
        default=0.0, description="Part of the final attempts' time measured inside the gaps; not in the speedup."
    )
    max_parallel: int = 0
    base_sha: str = ""
    total_cost_usd: float | None = None
    estimated_cost_usd: float | None = Field(
        default=None, description="The part of total_cost_usd that is list-price estimates from tokens, not reported."
    )
    tasks: list[TaskSummary] = Field(default_factory=list)
    requirements_total: int = Field(default=0, description="Requirements declared by all tasks.")
    requirements_met: int = Field(
        default=0, description="Of those, claimed done by the agent with the cited evidence found on its branch."
    )
    fallback_sequential: bool = False
    interrupted: bool = False
    abort_reason: str | None = Field(
        default=None, description="Why the run stopped launching tasks early (circuit breaker)."
    )
    report_path: str | None = None

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.successful_tasks == self.total_tasks else 1


class ResourceUsage(BaseModel):
    """One psutil sample of a task's process tree (the pid and all its descendants)."""

    model_config = ConfigDict(extra="allow")

    cpu_percent: float = 0.0
    memory_mb: float = 0.0
    memory_percent: float = 0.0
    num_threads: int = 0
    status: str = ""
    create_time: float | None = None
    process_count: int = 0
    sampled_at: str | None = None
