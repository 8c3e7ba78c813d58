"""Graph algorithms over the plan's tasks and edges: cycles, ranked topological order, levels, paths.

Conflict edges follow one ranked topological order of the dependencies (the analyzer chains the
tasks sharing a scope in it), so they cannot close a cycle and need no reachability search; every
function here is linear in tasks and edges, apart from the heap of the ranked order.
"""
from __future__ import annotations

import graphlib
import heapq
from collections.abc import Iterable, Mapping, Sequence

from orchestrator.errors import PlanError
from orchestrator.models import Edge, PlannedTask, TaskSpec

TaskLike = TaskSpec | PlannedTask


def task_ids(tasks: Iterable[TaskLike]) -> list[str]:
    return [t.spec.id if isinstance(t, PlannedTask) else t.id for t in tasks]


def check_acyclic(ids: Sequence[str], edges: Sequence[Edge]) -> None:
    """Raise PlanError naming the tasks of a cycle, written as a chain of dependencies."""
    sorter = _sorter(ids, edges)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))
        raise PlanError("dependency cycle: " + " depends on ".join(cycle)) from None


def _sorter(ids: Sequence[str], edges: Sequence[Edge]) -> graphlib.TopologicalSorter[str]:
    known = set(ids)
    preds: dict[str, list[str]] = {task: [] for task in ids}
    for edge in edges:
        if edge.before in known and edge.after in known:
            preds[edge.after].append(edge.before)
    return graphlib.TopologicalSorter(preds)


def _successors(ids: Sequence[str], edges: Sequence[Edge]) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {task: [] for task in ids}
    for edge in edges:
        if edge.before in succ and edge.after in succ:
            succ[edge.before].append(edge.after)
    return succ


def topological_order(ids: Sequence[str], edges: Sequence[Edge], rank: Mapping[str, tuple[int, int]]) -> list[str]:
    """Kahn's algorithm, picking the ready task with the smallest `rank` first."""
    succ = _successors(ids, edges)
    indegree = dict.fromkeys(ids, 0)
    for targets in succ.values():
        for target in targets:
            indegree[target] += 1
    ready = [(rank[t], t) for t in ids if indegree[t] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, task = heapq.heappop(ready)
        order.append(task)
        for target in succ[task]:
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, (rank[target], target))
    if len(order) != len(ids):
        check_acyclic(ids, edges)
    return order


def execution_groups(tasks: Sequence[TaskLike], edges: Sequence[Edge]) -> list[list[str]]:
    """Longest-path levels: tasks in one level have no ordering between them (display only)."""
    ids = task_ids(tasks)
    index = {task: i for i, task in enumerate(ids)}
    order = topological_order(ids, edges, {t: (0, index[t]) for t in ids})
    succ = _successors(ids, edges)
    level = dict.fromkeys(ids, 0)
    for task in order:
        for target in succ[task]:
            level[target] = max(level[target], level[task] + 1)
    groups: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for task in ids:
        groups[level[task]].append(task)
    return groups


def longest_remaining_path(tasks: Sequence[TaskLike], edges: Sequence[Edge]) -> dict[str, int]:
    """Tasks on the longest path from each task to a sink, itself included (a scheduling tie-breaker)."""
    ids = task_ids(tasks)
    index = {task: i for i, task in enumerate(ids)}
    succ = _successors(ids, edges)
    remaining: dict[str, int] = {}
    for task in reversed(topological_order(ids, edges, {t: (0, index[t]) for t in ids})):
        remaining[task] = 1 + max((remaining[t] for t in succ[task]), default=0)
    return {task: remaining[task] for task in ids}
