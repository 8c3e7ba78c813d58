"""JSON Schemas for every JSON file the orchestrator writes (and the JSON it prints).

Generated from the pydantic models that write or describe each file, so the schema cannot drift
from the code: `tests/test_schema.py` fails when a shipped file under `data/schemas/` differs
from what the models generate now, and validates a real run's files against them. The models for
files built as plain dicts elsewhere (report.json, the plan, journal lines) live here.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.config.machine import Machine
from orchestrator.config.model import OrchestrationConfig
from orchestrator.gitops.merge import MergeReport
from orchestrator.models import (
    SCHEMA_VERSION,
    Edge,
    OrchestrationResult,
    Plan,
    TaskResult,
)
from orchestrator.state.registry_models import (
    FinalFile,
    HeartbeatsFile,
    ProcessRegistryFile,
    RegistryStatsFile,
    RunStatusFile,
)
from orchestrator.task.wire import AgentCheckpoint, TaskRequest
from orchestrator.worktrees.pool import PoolFile
from orchestrator.worktrees.provision import PortsFile

DRAFT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://gadugi-orchestrator.invalid/schemas/"


class SkippedPrompt(BaseModel):
    task_id: str
    prompt_file: str
    reason: str | None = None


class ReportFile(OrchestrationResult):
    """`.gadugi/runs/<run-id>/report.json`: the run result plus the plan's edges and every result."""

    model_config = ConfigDict(extra="allow")

    warnings: list[str] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    skipped: list[SkippedPrompt] = Field(default_factory=list)
    task_results: dict[str, TaskResult] = Field(default_factory=dict, description="Keyed by task id.")
    merge_check: MergeReport | None = Field(default=None, description="The after-run merge check.")


class PlanGroup(BaseModel):
    group_id: int
    tasks: list[str]
    parallelizable: bool


class PlanTask(BaseModel):
    id: str
    title: str
    prompt_file: str
    priority: int
    depends_on: list[str]
    files: list[str]
    conflicts_with: list[str]
    branch: str
    worktree: str
    agent_command: list[str]
    timeout_seconds: float | None
    max_turns: int | None
    verify: str | None
    model: str | None
    agent: str | None
    sandbox: str = Field(default="none", description="The boundary its agent runs in: bubblewrap, claude-sandbox, none.")


class PlanSkipped(BaseModel):
    id: str
    prompt_file: str
    skip_reason: str | None


class PlanFile(BaseModel):
    """`orchestrator plan --json` / `run --dry-run --json` (analyzer.plan_json)."""

    schema_version: int = SCHEMA_VERSION
    total_tasks: int
    parallelizable_tasks: int
    sequential_tasks: int
    execution_groups: int
    groups: list[PlanGroup]
    edges: list[Edge]
    shared_scopes: dict[str, list[str]] = Field(
        default_factory=dict, description="Each scope two or more tasks touch -> those tasks; one at a time."
    )
    tasks: list[PlanTask]
    skipped: list[PlanSkipped]
    base_ref: str
    base_sha: str
    machine: Machine | None = Field(default=None, description="What `--max-parallel auto` detected, when it was used.")


class JournalRecord(BaseModel):
    """One line of `.gadugi/runs/<run-id>/events.jsonl`; each event adds its own fields."""

    model_config = ConfigDict(extra="allow")

    ts: str = Field(description="ISO-8601 with a timezone.")
    seq: int = Field(description="Strictly increasing within the file, from 1.")
    run_id: str
    event: str = Field(description="register, transition, update, run_started, run_finished, ...")


class RunPlanFile(BaseModel):
    """`.gadugi/runs/<run-id>/plan.json`: what a run was started with, so it can be resumed."""

    model_config = ConfigDict(extra="allow")

    plan: Plan
    config: OrchestrationConfig = Field(description="The run's settings; `env` is never written.")
    in_place: bool = Field(description="Sequential fallback in the main checkout.")
    warnings: list[str] = Field(default_factory=list)


class WorkflowManagerFile(BaseModel):
    """`.gadugi/runs/<run-id>/tasks/<task-id>/wm.json`: the WorkflowManager of the latest attempt,
    written before anything else so a resumed orchestrator can find it (pid + create time)."""

    pid: int
    create_time: float
    attempt: int


class TaskSetupFile(BaseModel):
    """`.gadugi/runs/<run-id>/tasks/<task-id>/setup.json`: where the task's worktree started."""

    model_config = ConfigDict(extra="allow")

    attempt: int
    start_sha: str


class ActiveRunFile(BaseModel):
    """`.gadugi/active_run.json`: who holds the repository's run lock (informational)."""

    model_config = ConfigDict(extra="allow")

    run_id: str
    pid: int
    create_time: float
    since: str


# name -> (model, where the file lives / what prints it)
SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "process_registry": (ProcessRegistryFile, ".gadugi/monitoring/process_registry.json"),
    "heartbeats": (HeartbeatsFile, ".gadugi/monitoring/heartbeats.json"),
    "registry_stats": (RegistryStatsFile, ".gadugi/monitoring/registry_stats.json"),
    "run_status": (RunStatusFile, ".gadugi/monitoring/<run-id>_status.json"),
    "run_final": (FinalFile, ".gadugi/monitoring/<run-id>_final.json"),
    "journal_record": (JournalRecord, ".gadugi/runs/<run-id>/events.jsonl (one per line)"),
    "request": (TaskRequest, ".gadugi/runs/<run-id>/tasks/<task-id>/request.json"),
    "result": (TaskResult, ".gadugi/runs/<run-id>/tasks/<task-id>/result.json"),
    "report": (ReportFile, ".gadugi/runs/<run-id>/report.json"),
    "run_result": (OrchestrationResult, "stdout of `orchestrator run --json`"),
    "plan": (PlanFile, "stdout of `orchestrator plan --json`"),
    "merge_report": (MergeReport, "stdout of `orchestrator merge-check --json`"),
    "ports": (PortsFile, ".gadugi/ports.json"),
    "run_plan": (RunPlanFile, ".gadugi/runs/<run-id>/plan.json"),
    "task_setup": (TaskSetupFile, ".gadugi/runs/<run-id>/tasks/<task-id>/setup.json"),
    "workflow_manager": (WorkflowManagerFile, ".gadugi/runs/<run-id>/tasks/<task-id>/wm.json"),
    "agent_outcome": (AgentCheckpoint, ".gadugi/runs/<run-id>/tasks/<task-id>/agent_outcome.json"),
    "active_run": (ActiveRunFile, ".gadugi/active_run.json"),
    "pool": (PoolFile, ".gadugi/pool.json"),
}


def schema_for(name: str) -> dict[str, Any]:
    model, where = SCHEMAS[name]
    # Serialization mode: the shape as written, which is what readers see.
    body = model.model_json_schema(mode="serialization")
    head = {"$schema": DRAFT, "$id": f"{ID_BASE}{name}.schema.json", "$comment": f"Describes {where}."}
    return {**head, **body}


def generate_schemas() -> dict[str, dict[str, Any]]:
    return {name: schema_for(name) for name in SCHEMAS}


def render(schema: dict[str, Any]) -> str:
    """The exact text shipped, so regenerating and comparing is byte-for-byte."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def file_name(name: str) -> str:
    return f"{name}.schema.json"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in generate_schemas().items():
        path = directory / file_name(name)
        path.write_text(render(schema), encoding="utf-8")
        paths.append(path)
    return paths


def shipped_schema(name: str) -> dict[str, Any]:
    """A schema as shipped inside the installed package."""
    text = resources.files("orchestrator").joinpath("data", "schemas", file_name(name)).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def shipped_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "schemas"
