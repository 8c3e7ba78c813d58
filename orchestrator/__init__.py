"""gadugi-orchestrator: run AI coding agents in parallel, one git worktree and branch per prompt."""
from __future__ import annotations

from orchestrator.version import __version__

__all__ = [
    "ExecutionEngine",
    "OrchestrationConfig",
    "OrchestrationResult",
    "OrchestratorCoordinator",
    "ProcessRegistry",
    "TaskAnalyzer",
    "WorktreeManager",
    "__version__",
]


def __getattr__(name: str) -> object:
    # Lazy, so `python -m orchestrator.task` doesn't import the whole CLI stack.
    if name == "OrchestratorCoordinator":
        from orchestrator.run.coordinator import OrchestratorCoordinator
        return OrchestratorCoordinator
    if name == "OrchestrationConfig":
        from orchestrator.config.model import OrchestrationConfig
        return OrchestrationConfig
    if name == "OrchestrationResult":
        from orchestrator.models import OrchestrationResult
        return OrchestrationResult
    if name == "ExecutionEngine":
        from orchestrator.run.engine import ExecutionEngine
        return ExecutionEngine
    if name == "ProcessRegistry":
        from orchestrator.state.registry import ProcessRegistry
        return ProcessRegistry
    if name == "TaskAnalyzer":
        from orchestrator.plan.analyzer import TaskAnalyzer
        return TaskAnalyzer
    if name == "WorktreeManager":
        from orchestrator.worktrees.manager import WorktreeManager
        return WorktreeManager
    raise AttributeError(name)
