"""The plan's graph algorithms directly: cycles, ranked topological order, execution levels and
longest remaining paths."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from orchestrator.errors import PlanError
from orchestrator.models import Edge, EdgeKind, PlannedTask, TaskSpec
from orchestrator.plan.graph import (
    check_acyclic,
    execution_groups,
    longest_remaining_path,
    task_ids,
    topological_order,
)


def edges(*pairs: tuple[str, str]) -> list[Edge]:
    return [Edge(before=b, after=a, kind=EdgeKind.DEPENDENCY, reason="test") for b, a in pairs]


def spec(tid: str, index: int = 0) -> TaskSpec:
    return TaskSpec(id=tid, title=tid, prompt_file=Path(f"{tid}.md"), prompt_text=tid, index=index)


def by_input(ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    return {t: (0, i) for i, t in enumerate(ids)}


def test_task_ids_of_specs_and_planned_tasks() -> None:
    planned = PlannedTask(spec=spec("p"), branch="b", worktree=Path("w"), agent_command=["x"])
    assert task_ids([spec("s"), planned, spec("t")]) == ["s", "p", "t"]


@pytest.mark.parametrize("cycle", [["a", "b", "c"], ["a", "b"], ["a"]])
def test_a_cycle_is_named_as_a_chain_of_dependencies(cycle: list[str]) -> None:
    ring = [(cycle[i], cycle[(i + 1) % len(cycle)]) for i in range(len(cycle))]
    with pytest.raises(PlanError) as caught:
        check_acyclic(["z", *cycle], edges(("z", cycle[0]), *ring))
    message = str(caught.value)
    assert message.startswith("dependency cycle: ")
    chain = message.removeprefix("dependency cycle: ").split(" depends on ")
    assert chain[0] == chain[-1] and set(chain) == set(cycle) and len(chain) == len(cycle) + 1
    for task, dependency in zip(chain, chain[1:], strict=False):
        assert (dependency, task) in ring, (task, dependency)


def test_edges_to_unknown_tasks_are_ignored() -> None:
    check_acyclic(["a", "b"], edges(("a", "b"), ("b", "x"), ("x", "a")))
    assert topological_order(["a", "b"], edges(("b", "x"), ("x", "a"), ("y", "b")), by_input("ab")) == ["a", "b"]
    assert execution_groups([spec("a"), spec("b")], edges(("a", "x"), ("x", "b"))) == [["a", "b"]]
    assert longest_remaining_path([spec("a"), spec("b")], edges(("a", "x"), ("x", "b"))) == {"a": 1, "b": 1}


def test_topological_order_takes_the_best_ranked_ready_task() -> None:
    ids = ["a", "b", "c", "d", "e"]
    rank = {"a": (5, 0), "b": (1, 1), "c": (5, 2), "d": (0, 3), "e": (5, 4)}
    # d waits for c; among the ready ones the smallest rank goes first, ties by the second key.
    assert topological_order(ids, edges(("c", "d"), ("a", "e")), rank) == ["b", "a", "c", "d", "e"]
    assert topological_order(ids, edges(("e", "a")), by_input(ids)) == ["b", "c", "d", "e", "a"]
    assert topological_order([], [], {}) == []


def test_topological_order_refuses_a_cycle() -> None:
    with pytest.raises(PlanError, match="^dependency cycle: "):
        topological_order(["a", "b", "c"], edges(("a", "b"), ("b", "a")), by_input("abc"))


def test_execution_groups_are_longest_path_levels_in_input_order() -> None:
    tasks = [spec(t, i) for i, t in enumerate(["e", "c", "a", "b", "d", "f"])]
    deps = edges(("a", "b"), ("b", "c"), ("a", "d"), ("d", "c"), ("e", "c"), ("a", "f"))
    assert execution_groups(tasks, deps) == [["e", "a"], ["b", "d", "f"], ["c"]]
    assert execution_groups([], []) == []
    assert execution_groups([spec("solo")], []) == [["solo"]]


def test_longest_remaining_path_counts_tasks_to_the_furthest_sink() -> None:
    tasks = [spec(t, i) for i, t in enumerate(["a", "b", "c", "d", "e", "f"])]
    deps = edges(("a", "b"), ("b", "c"), ("c", "d"), ("a", "e"), ("e", "d"), ("f", "e"))
    assert longest_remaining_path(tasks, deps) == {"a": 4, "b": 3, "c": 2, "d": 1, "e": 2, "f": 3}
    assert list(longest_remaining_path(tasks, deps)) == ["a", "b", "c", "d", "e", "f"]
    assert longest_remaining_path([], []) == {}
