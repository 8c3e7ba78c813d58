"""A repository the orchestrator works on, with its settings: the one way every subcommand finds
the repository's top level, its config file and `GADUGI_*` variables, where the monitoring JSON
and the worktrees are, and which run is meant."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config.settings import ResolvedSettings, resolve_settings
from orchestrator.gitops import git
from orchestrator.state.runs import GADUGI_DIR, RunPaths, find_run


@dataclass(frozen=True)
class Project:
    root: Path
    settings: ResolvedSettings

    @property
    def monitoring_dir(self) -> Path:
        configured = self.settings["monitoring_dir"]
        return self.root / configured if configured else self.root / GADUGI_DIR / "monitoring"

    @property
    def worktrees_dir(self) -> str:
        return str(self.settings["worktrees_dir"])

    @property
    def branch_prefix(self) -> str:
        return str(self.settings["branch_prefix"])

    def find_run(self, run_id: str | None) -> RunPaths:
        return find_run(self.root, run_id, self.monitoring_dir)


def load_project(project_root: str | os.PathLike[str], cli_values: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None) -> Project:
    """The repository containing `project_root`, with options given on the command line over
    `GADUGI_*` variables over its config file."""
    root = git.toplevel(Path(project_root).resolve())
    return Project(root, resolve_settings(root, cli_values or {}, os.environ if environ is None else environ))
