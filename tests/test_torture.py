"""Crash torture: whole runs stopped at kill points (SIGKILL, Ctrl-C, double Ctrl-C), resumed, checked.

The harness is benchmarks/torture.py (also `python -m benchmarks.torture --points 100`). The fixed
points below run in the normal suite; `-m torture` runs 20 seeded points of the benchmark's mix.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.torture import KillPoint, make_scenario, pick_point, point_seeds, run_point

FIXED = {
    "early": KillPoint("kill-9", "register", 3),  # planning: registration half written
    "worktree": KillPoint("kill-9", "worktree", 2),  # a WorkflowManager is creating its worktree
    "spawn": KillPoint("kill-9", "spawn", 3),  # a WorkflowManager is being started
    "adoption": KillPoint("kill-9", "result", 2),  # a result is in, not yet adopted
    "merge-check": KillPoint("kill-9", "finalized", 1),  # registry final; merge check and report remain
    "ctrl-c": KillPoint("sigint", "agent", 2),
    "double-ctrl-c": KillPoint("double-sigint", "spawn", 2),
}


@pytest.mark.parametrize("name, seed", [pytest.param(name, 101 + i, id=f"{name}-{point.signal}-seed{101 + i}")
                                        for i, (name, point) in enumerate(FIXED.items())])
def test_fixed_point_then_resume(name: str, seed: int, tmp_path: Path) -> None:
    # Each point is an event of the run (a record, a result, a spawn), so where it lands does not
    # depend on how long the agents work: here they work 0.1-0.5 s, not the benchmark's 0.1-1.5 s,
    # which is still long enough for two to four of them to be in flight at once.
    outcome = run_point(make_scenario(seed, tasks=6, slowest=0.5), FIXED[name], tmp_path)
    if outcome.problems:
        pytest.fail(outcome.line(), pytrace=False)
    assert not outcome.too_late, f"the point landed after the run had ended; pick an earlier one: {outcome.line()}"


SEEDED = [(seed, pick_point(seed, make_scenario(seed))) for seed in point_seeds(7, 20)]


@pytest.mark.torture
@pytest.mark.parametrize("seed, point", [pytest.param(s, p, id=f"seed{s}-{p.signal}-{p.trigger}{p.n}")
                                         for s, p in SEEDED])
def test_seeded_point_then_resume(seed: int, point: KillPoint, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "torture" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("long: select it with -m torture")
    outcome = run_point(make_scenario(seed), point, tmp_path)
    if outcome.problems:
        pytest.fail(outcome.line(), pytrace=False)
