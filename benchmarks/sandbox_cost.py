"""What the sandbox adds to each task start: `python -m benchmarks.sandbox_cost [--reps N]`.

Per start, a sandboxed task pays for `confine` (the worktree's git paths, two or three
`git rev-parse`) and, for a non-Claude agent, for bubblewrap setting up its mounts before the
agent's first instruction. Measured here against the floor of starting the same no-op agent
(`true`) unconfined in the same worktree; Claude Code's own sandbox costs us only `confine` (the
CLI then pays per Bash command, inside its own run). Once per run, planning probes bubblewrap.
Not part of `python -m benchmarks` (it needs bubblewrap); numbers go to docs/benchmarks.md by hand.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.common import git, make_small_repo, median, percentile


def _timed(reps: int, action: Callable[[], object]) -> list[float]:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        action()
        samples.append(time.perf_counter() - t0)
    return samples


def _start(argv: Sequence[str], cwd: Path) -> None:
    subprocess.run(list(argv), cwd=cwd, check=True, stdin=subprocess.DEVNULL)


def measure(reps: int) -> dict[str, list[float]]:
    from orchestrator.agents.sandbox import BUBBLEWRAP, CLAUDE_SANDBOX, confine, missing_tools

    env = dict(os.environ)
    missing = missing_tools(BUBBLEWRAP, env)
    if missing:
        raise SystemExit(f"sandbox_cost needs bubblewrap: {', '.join(missing)} unavailable")
    with tempfile.TemporaryDirectory(prefix="gadugi-bench-sandbox-") as tmp:
        repo = make_small_repo(Path(tmp) / "repo")
        worktree = repo / ".worktrees" / "t"
        git(repo, "worktree", "add", "-q", "-b", "gadugi/t", str(worktree))
        agent = ["true"]

        def confined(policy: str) -> list[str]:
            agent_name = "claude" if policy == CLAUDE_SANDBOX else "generic"
            result = confine(agent, policy, agent=agent_name, worktree=worktree, branch="gadugi/t", project_root=repo,
                             env=env)
            result.cleanup()  # the private TMPDIR a Claude agent would get: part of the cost
            return result.argv

        return {
            "plain start": _timed(reps, lambda: _start(agent, worktree)),
            "confine (bubblewrap)": _timed(reps, lambda: confined(BUBBLEWRAP)),
            "confine + start in bubblewrap": _timed(reps, lambda: _start(confined(BUBBLEWRAP), worktree)),
            "confine (Claude settings)": _timed(reps, lambda: confined(CLAUDE_SANDBOX)),
            "probe at plan time (once per run)": _timed(reps, lambda: missing_tools(BUBBLEWRAP, env)),
        }


def report(samples: dict[str, list[float]]) -> str:
    lines = ["| step | median | p90 |", "|---|---|---|"]
    for name, values in samples.items():
        lines.append(f"| {name} | {median(values) * 1000:.1f} ms | {percentile(values, 90) * 1000:.1f} ms |")
    added = median(samples["confine + start in bubblewrap"]) - median(samples["plain start"])
    lines.append(f"\nAdded per task start in bubblewrap: {added * 1000:.1f} ms (median).")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox_cost")
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args(argv)
    print(report(measure(args.reps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
