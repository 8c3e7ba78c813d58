"""The per-phase timing the benchmarks report is read from a real run's journal: every phase of a
task is there, in order, and together they fit inside the run."""
from __future__ import annotations

import time

from benchmarks.phases import PHASES, read_phases

from test_e2e import run_cli, write_prompt


def test_every_phase_of_a_task_is_in_the_journal(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    write_prompt(repo, "b.md", "id: b\ndepends_on: [a]", "# B\nfake-claude: commit")
    started = time.time()
    done = run_cli(repo, path_with, "run", "a", "b", "--json")
    ended = time.time()
    assert done.returncode == 0, done.stderr
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    phases = read_phases(run_dir)
    assert set(phases.per_task) == {"a", "b"}
    for task, spent in phases.per_task.items():
        assert list(spent) == [p for p in PHASES if p in spent], f"{task}: phases out of order: {spent}"
        assert set(spent) == set(PHASES), f"{task} lacks {set(PHASES) - set(spent)}"
        assert all(seconds >= 0 for seconds in spent.values()), spent
        assert sum(spent.values()) <= ended - started
    # b waited in the queue for all of a, so its queued time covers a's whole life.
    a = phases.per_task["a"]
    assert phases.per_task["b"]["queued"] >= sum(a[p] for p in PHASES if p != "queued")
    first = phases.time_to_first_agent(started)
    assert first is not None and 0 < first < ended - started
    assert set(phases.medians()) == set(PHASES)
    # Each task's hold on a slot, from `running` to its end: b's starts only after a's ended.
    assert phases.run_started_at is not None and started <= phases.run_started_at
    (a_start, a_end), (b_start, b_end) = phases.slots["a"], phases.slots["b"]
    assert phases.run_started_at <= a_start < a_end <= b_start < b_end <= ended
