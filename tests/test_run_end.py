"""The end of a run: each step on its own, so one that fails cannot skip the registry's final
state or the report."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from orchestrator import OrchestrationConfig, OrchestratorCoordinator
from orchestrator.worktrees.manager import WorktreeManager

from test_e2e import write_prompt


def test_a_failing_cleanup_step_still_finalizes_and_reports(make_repo, path_with: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo()
    prompt = write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")

    def broken_remove(self: WorktreeManager, path: Path, *, force: bool = False) -> bool:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(WorktreeManager, "remove", broken_remove)
    config = OrchestrationConfig(env=dict(os.environ, PATH=path_with), launch_stagger=0, worktree_pool=0)
    coordinator = OrchestratorCoordinator(config, repo)
    result = coordinator.orchestrate([prompt])
    assert result.successful_tasks == 1
    assert any("removing finished worktrees failed: RuntimeError: disk on fire" in w for w in coordinator.warnings)
    run_dir = repo / ".gadugi" / "runs" / result.run_id
    assert (run_dir / "report.md").exists() and "disk on fire" in (run_dir / "report.md").read_text()
    final = json.loads((repo / ".gadugi" / "monitoring" / f"{result.run_id}_final.json").read_text())
    assert final["processes"]["a"]["status"] == "completed"
    events = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1] == "run_finished" and "registry_finalized" in events
