"""StallWatch: idle means no event, no worktree change and no CPU over the whole window."""
from __future__ import annotations

from pathlib import Path

import pytest
from orchestrator.task import stall


class Scripted:
    """A clock and a CPU counter the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.cpu = 0.0

    def clock(self) -> float:
        return self.now


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Scripted:
    state = Scripted()
    monkeypatch.setattr(stall, "tree_cpu_seconds", lambda pid: state.cpu)
    monkeypatch.setattr(stall, "worktree_fingerprint", lambda worktree: ("same",))
    return state


def watch(state: Scripted, timeout: float = 1.0) -> stall.StallWatch:
    return stall.StallWatch(1, Path("/w"), timeout, last_event=lambda: 0.0, clock=state.clock)


def test_a_starved_but_busy_tree_is_not_stalled(scripted: Scripted) -> None:
    """On a loaded machine a busy tree gets a little CPU at each check: it adds up over the window."""
    w = watch(scripted)
    for _ in range(40):
        scripted.now += 0.25
        scripted.cpu += stall.CPU_EPSILON / 2
        assert w.check() is None


def test_an_idle_tree_is_stalled_after_the_window(scripted: Scripted) -> None:
    w = watch(scripted)
    scripted.now = 0.9
    assert w.check() is None
    scripted.now = 1.0
    reason = w.check()
    assert reason is not None and reason.startswith("stalled: no agent event") and "--stall-timeout 1s" in reason


def test_cpu_noise_below_the_threshold_does_not_keep_it_alive(scripted: Scripted) -> None:
    w = watch(scripted)
    scripted.now, scripted.cpu = 0.5, stall.CPU_EPSILON * 0.9
    assert w.check() is None
    scripted.now = 1.0
    assert w.check() is not None


def test_a_child_that_exits_does_not_hide_later_work(scripted: Scripted) -> None:
    """The tree's CPU sum drops when a child exits; work after that still counts from there."""
    w = watch(scripted)
    scripted.now, scripted.cpu = 0.5, 5.0
    assert w.check() is None  # activity at 0.5
    scripted.now, scripted.cpu = 0.8, 1.0  # the busy child exited
    assert w.check() is None
    scripted.now, scripted.cpu = 1.4, 1.0 + stall.CPU_EPSILON * 2
    assert w.check() is None  # activity at 1.4
    scripted.now = 2.3
    assert w.check() is None
    scripted.now = 2.4
    assert w.check() is not None
