"""Finding a run: `.gadugi/runs/<run_id>` by its id, or the latest one.

The latest run is the one the monitoring registry names (the run started or resumed last, which
is what someone typing `status` or `cancel` means), else the newest run directory: run ids start
with their start time, so name order is start order.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import InputError
from orchestrator.state.registry import REGISTRY_FILE

GADUGI_DIR = ".gadugi"


@dataclass(frozen=True)
class RunPaths:
    project_root: Path
    run_dir: Path
    monitoring_dir: Path

    @property
    def run_id(self) -> str:
        return self.run_dir.name


def runs_dir(project_root: Path) -> Path:
    return project_root / GADUGI_DIR / "runs"


def run_dirs(project_root: Path) -> list[Path]:
    """Every run's directory, oldest first."""
    runs = runs_dir(project_root)
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


def find_run(project_root: Path, run_id: str | None, monitoring_dir: Path | None = None) -> RunPaths:
    """The run `run_id`, or the latest run when None; InputError naming the runs there are when
    there is no such run. `project_root` is the repository's top level."""
    runs = runs_dir(project_root)
    monitoring = monitoring_dir or project_root / GADUGI_DIR / "monitoring"
    if run_id:
        path = runs / run_id
        # A plain name only: an id is never a path out of the runs directory.
        if run_id in (".", "..") or "/" in run_id or not path.is_dir():
            raise InputError(f"no run {run_id!r} under {runs}{_suggestion(run_id, run_dirs(project_root))}")
        return RunPaths(project_root, path, monitoring)
    current = _registry_run_id(monitoring)
    if current is not None and "/" not in current and (runs / current).is_dir():
        return RunPaths(project_root, runs / current, monitoring)
    known = run_dirs(project_root)
    if not known:
        raise InputError(f"no run found under {runs} (start one with `orchestrator run`)")
    return RunPaths(project_root, known[-1], monitoring)


def _registry_run_id(monitoring_dir: Path) -> str | None:
    # Read without the registry's lock or repair: only its run id matters, and a damaged file is
    # left for `status` to report and the next run to replace.
    try:
        data = json.loads((monitoring_dir / REGISTRY_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return run_id if isinstance(run_id, str) and run_id not in ("", ".", "..") else None


def _suggestion(run_id: str, known: list[Path]) -> str:
    names = [p.name for p in known]
    if not names:
        return " (there are no runs yet)"
    close = difflib.get_close_matches(run_id, names, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(close)}?"
    latest = names[-3:][::-1]
    return f"; the latest: {', '.join(latest)}"
