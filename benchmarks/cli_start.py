"""How long the CLI takes to answer what editors and scripts ask most, cold, against a bare
interpreter: `--version`, `--help` and `status --json` on a finished run (what an editor polls).

Each figure is the median of `reps` fresh processes, wall clock; the bare interpreter (`python -c
pass`, site included, as the CLI pays it) is the floor no Python CLI can go under.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import PYTHON, median
from benchmarks.overhead import check_run, install_agent, orchestrate

COMMANDS = {"--version": ["--version"], "--help": ["--help"], "status --json": ["status", "--json"]}


@dataclass
class StartResult:
    bare: list[float] = field(default_factory=list)
    commands: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return median(self.commands[name])


def _time(argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run_cli_start(work: Path, reps: int = 5) -> StartResult:
    from benchmarks.common import make_small_repo

    repo = make_small_repo(work / "cli-start")
    (repo / "prompts").mkdir()
    (repo / "prompts" / "a.md").write_text("---\nid: a\n---\n# Task a\nCommit one file.\n")
    check_run(orchestrate(repo, ["prompts/a.md"], 1, agent_dir=install_agent(work)), 1)
    out = StartResult()
    for _ in range(reps):
        out.bare.append(_time([PYTHON, "-c", "pass"], repo))
        for name, args in COMMANDS.items():
            out.commands.setdefault(name, []).append(_time([PYTHON, "-m", "orchestrator", *args], repo))
    return out
