"""Graph algorithms over the plan's tasks and edges: cycles, conflict orientation, levels, paths.

Conflict edges are oriented greedily (priority, then input order) unless the edges added so far
already order the pair the other way. Reachability is answered with a dynamically maintained
topological order (Pearce & Kelly 2006): most insertions agree with the order and cost O(1), and
the rest only search the region between the two tasks, so thousands of pairs stay cheap.
"""
from __future__ import annotations

import graphlib
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence

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


class ConflictOrienter:
    """Adds ordering edges between conflicting tasks without ever closing a cycle."""

    def __init__(self, ids: Sequence[str], rank: Mapping[str, tuple[int, int]], edges: Sequence[Edge]) -> None:
        self.rank = rank
        self.succ = _successors(ids, edges)
        self.pred: dict[str, list[str]] = {task: [] for task in ids}
        for before, targets in self.succ.items():
            for after in targets:
                self.pred[after].append(before)
        self.position = {task: i for i, task in enumerate(topological_order(ids, edges, rank))}

    def orient(self, x: str, y: str) -> tuple[str, str]:
        """`(before, after)` for the pair: by rank unless the graph already orders it the other way."""
        first, second = (x, y) if self.rank[x] <= self.rank[y] else (y, x)
        if self._insert(first, second):
            return first, second
        inserted = self._insert(second, first)
        assert inserted, "both orientations closing a cycle means the graph already had one"
        return second, first

    def _insert(self, before: str, after: str) -> bool:
        """Add `before -> after` unless `after` already reaches `before`."""
        pos = self.position
        upper, lower = pos[before], pos[after]
        if lower < upper:
            forward = self._search(after, self.succ, lambda t: pos[t] <= upper)
            if before in forward:
                return False
            backward = self._search(before, self.pred, lambda t: pos[t] >= lower)
            moved = sorted(backward, key=pos.__getitem__) + sorted(forward, key=pos.__getitem__)
            slots = sorted(pos[t] for t in moved)
            for task, slot in zip(moved, slots, strict=True):
                pos[task] = slot
        self.succ[before].append(after)
        self.pred[after].append(before)
        return True

    @staticmethod
    def _search(start: str, adjacency: Mapping[str, list[str]], inside: Callable[[str], bool]) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for nxt in adjacency[stack.pop()]:
                if nxt not in seen and inside(nxt):
                    seen.add(nxt)
                    stack.append(nxt)
        return seen


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
