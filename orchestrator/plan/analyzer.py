"""TaskAnalyzer: prompt files → tasks, dependency edges and conflict edges, plus the plan JSON.

Unlike Gadugi's analyzer, names are resolved exactly (id, file name, stem or relative path; never a
substring), a task never depends on itself, a cycle is an error, and tasks whose file scopes overlap
never run at the same time: the tasks sharing a scope form one group, ordered by a chain of edges.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from orchestrator.config.machine import Machine
from orchestrator.errors import PlanError, did_you_mean
from orchestrator.models import SCHEMA_VERSION, Edge, EdgeKind, Plan, TaskSpec
from orchestrator.plan.graph import check_acyclic, execution_groups, longest_remaining_path, topological_order
from orchestrator.plan.inputs import PROMPTS_DIR
from orchestrator.plan.prompts import LoadedPrompt, parse_prompt, sanitize_id
from orchestrator.plan.scopes import MAX_SHARED, directories_of, shared_scopes

__all__ = ["Analysis", "TaskAnalyzer", "execution_groups", "longest_remaining_path", "never_together", "plan_json"]

MAX_KNOWN_LISTED = 20


@dataclass
class Analysis:
    tasks: list[TaskSpec]
    skipped: list[TaskSpec]
    edges: list[Edge]
    shared_scopes: dict[str, list[str]] = field(default_factory=dict)  # see Plan.shared_scopes
    warnings: list[str] = field(default_factory=list)


class _Names:
    """Resolves what prompt writers call a task: its id, `x.md`, `x`, or a path relative to the root."""

    def __init__(self, specs: Sequence[TaskSpec], project_root: Path) -> None:
        self.ids = [s.id for s in specs]
        self.levels: list[dict[str, set[str]]] = [{s.id: {s.id} for s in specs}, {}, {}]
        for spec in specs:
            keys = [spec.prompt_file.name, spec.prompt_file.stem]
            paths = [str(spec.prompt_file)]
            for base in (project_root / PROMPTS_DIR, project_root):
                if spec.prompt_file.is_relative_to(base):
                    relative = spec.prompt_file.relative_to(base).as_posix()
                    paths += [relative, relative.removesuffix(".md")]
            for level, names in ((1, keys), (2, paths)):
                for name in names:
                    self.levels[level].setdefault(name, set()).add(spec.id)

    def resolve(self, raw: str) -> str | None:
        name = raw.strip().strip("`'\"").replace("\\", "/")
        while name.startswith("./"):
            name = name[2:]
        for candidate in dict.fromkeys([name, sanitize_id(name)]):
            for level in self.levels:
                found = level.get(candidate)
                if found and len(found) > 1:
                    raise PlanError(f"'{raw}' is ambiguous: it could mean any of {', '.join(sorted(found))}")
                if found:
                    return next(iter(found))
        return None

    def known(self) -> str:
        shown = ", ".join(self.ids[:MAX_KNOWN_LISTED])
        return shown + (", ..." if len(self.ids) > MAX_KNOWN_LISTED else "")


class TaskAnalyzer:
    """Builds the task DAG from prompt files; `tracked_files` are repo-relative (git ls-files)."""

    def __init__(self, project_root: Path, tracked_files: Iterable[str]) -> None:
        self.project_root = project_root.resolve()
        self.tracked_files = frozenset(tracked_files)
        self.tracked_dirs = frozenset(directories_of(self.tracked_files))

    def analyze(self, paths: Sequence[Path]) -> Analysis:
        warnings: list[str] = []
        loaded = self._load(paths, warnings)
        names = _Names([p.spec for p in loaded], self.project_root)
        done = {p.spec.id for p in loaded if p.spec.skip_reason is not None}
        runnable = [p for p in loaded if p.spec.skip_reason is None]
        edges: list[Edge] = []
        for prompt in runnable:
            edges += self._resolve_relations(prompt, names, done, warnings)
        ids = [p.spec.id for p in runnable]
        check_acyclic(ids, edges)
        conflicts, shared = _conflict_edges([p.spec for p in runnable], edges, self.tracked_files)
        return Analysis(
            tasks=[p.spec for p in runnable],
            skipped=[p.spec for p in loaded if p.spec.id in done],
            edges=edges + conflicts,
            shared_scopes=shared,
            warnings=warnings,
        )

    def _load(self, paths: Sequence[Path], warnings: list[str]) -> list[LoadedPrompt]:
        loaded: list[LoadedPrompt] = []
        by_path: set[Path] = set()
        by_id: dict[str, Path] = {}
        for raw in paths:
            path = raw.resolve()
            if path in by_path:
                warnings.append(f"{path} was given more than once; it runs once")
                continue
            by_path.add(path)
            prompt = parse_prompt(path, len(loaded), self.tracked_files, tracked_dirs=self.tracked_dirs)
            other = by_id.get(prompt.spec.id)
            if other is not None:
                raise PlanError(
                    f"duplicate task id '{prompt.spec.id}' in {other} and {path}; "
                    "give one of them a different `id:` in its front matter"
                )
            by_id[prompt.spec.id] = path
            loaded.append(prompt)
        return loaded

    @staticmethod
    def _resolve_relations(prompt: LoadedPrompt, names: _Names, done: set[str], warnings: list[str]) -> list[Edge]:
        """Resolve depends_on/conflicts_with to ids in place; return the dependency edges."""
        spec = prompt.spec
        edges: list[Edge] = []
        for field_name, verb in (("depends_on", "depends on"), ("conflicts_with", "declares conflicts_with")):
            resolved: list[str] = []
            for raw in getattr(spec, field_name):
                target = names.resolve(raw)
                if target is None:
                    hint = did_you_mean(raw, names.ids)
                    raise PlanError(f"task '{spec.id}' {verb} unknown task '{raw}'{hint} (known: {names.known()})")
                if target == spec.id:
                    warnings.append(f"task '{spec.id}' names itself in {field_name}; ignored")
                elif target in done:
                    warnings.append(f"task '{spec.id}' {verb} '{target}', which is marked done; nothing to wait for")
                elif target not in resolved:
                    resolved.append(target)
                    if field_name == "depends_on":
                        source = prompt.dependency_sources.get(raw, "front matter depends_on")
                        edges.append(Edge(before=target, after=spec.id, kind=EdgeKind.DEPENDENCY,
                                          reason=f"{spec.id} depends on {target} ({source})"))
            setattr(spec, field_name, resolved)
        return edges


def _conflict_edges(
    specs: Sequence[TaskSpec], dependency_edges: list[Edge], tracked: frozenset[str]
) -> tuple[list[Edge], dict[str, list[str]]]:
    """Conflict edges, and the tasks sharing each scope in plan order.

    The tasks sharing a scope are chained, an edge from each to the next, not joined pair by pair:
    a thousand tasks on one file make 999 edges, not 499,500. The chain orders them all (so the
    plan's levels and paths see them serialised) and the group tells the engine to run one at a
    time. Chains and declared conflicts follow one ranked topological order of the dependencies
    (priority, then input order), so they never close a cycle. A pair joined directly by a
    dependency edge only gets the conflict added to that edge's reason.
    """
    ids = [s.id for s in specs]
    index = {s.id: s.index for s in specs}
    ranked = topological_order(ids, dependency_edges, {s.id: (s.priority, s.index) for s in specs})
    position = {task: i for i, task in enumerate(ranked)}
    groups = {
        label: sorted(tasks, key=position.__getitem__)
        for label, tasks in shared_scopes({s.id: s.files for s in specs}, tracked).items()
    }
    touched: dict[tuple[str, str], list[str]] = {}  # (before, after) -> shared scope labels
    member_of: dict[str, list[str]] = {}
    for label, chain in groups.items():
        for task in chain:
            member_of.setdefault(task, []).append(label)
        for pair in pairwise(chain):
            labels = touched.setdefault(pair, [])
            if len(labels) < MAX_SHARED:
                labels.append(label)
    declared: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        for other in spec.conflicts_with:
            pair = (spec.id, other) if position[spec.id] < position[other] else (other, spec.id)
            declared.setdefault(pair, []).append(f"{spec.id} declares conflicts_with {other}")

    def touch(pair: tuple[str, str], labels: Sequence[str]) -> list[str]:
        first, second = sorted(pair, key=index.__getitem__)
        return [f"{first} and {second} both touch {', '.join(labels)}"] if labels else []

    for dependency in dependency_edges:
        pair = (dependency.before, dependency.after)
        later = set(member_of.get(dependency.after, ()))
        shared = [label for label in member_of.get(dependency.before, ()) if label in later][:MAX_SHARED]
        why = touch(pair, shared) + declared.pop(pair, [])
        touched.pop(pair, None)
        if why:
            dependency.reason += "; also " + "; ".join(why)
    edges = [
        Edge(before=before, after=after, kind=EdgeKind.CONFLICT,
             reason="; ".join(touch((before, after), touched.get((before, after), [])) + declared.get((before, after), [])))
        for before, after in sorted(touched.keys() | declared.keys(),
                                    key=lambda pair: sorted(index[t] for t in pair))
    ]
    return edges, dict(sorted(groups.items(), key=lambda item: (position[item[1][0]], item[0])))


def never_together(plan: Plan) -> list[tuple[list[str], str]]:
    """What never runs at the same time, as a reader wants it: the tasks sharing scopes, one line
    per set of tasks with what they share, then each conflict edge not inside such a set (a
    declared `conflicts_with`). A chain's edges would read as if only neighbours were kept apart."""
    labels_by_members: dict[tuple[str, ...], list[str]] = {}
    for label, tasks in plan.shared_scopes.items():
        labels_by_members.setdefault(tuple(tasks), []).append(label)
    groups_of: dict[str, set[int]] = {}
    lines: list[tuple[list[str], str]] = []
    for number, (members, labels) in enumerate(labels_by_members.items()):
        for task in members:
            groups_of.setdefault(task, set()).add(number)
        shown = ", ".join(labels[:MAX_SHARED]) + (", ..." if len(labels) > MAX_SHARED else "")
        who = f"{members[0]} and {members[1]} both" if len(members) == 2 else "all"
        lines.append((list(members), f"{who} touch {shown}"))
    for edge in plan.edges:
        if edge.kind == EdgeKind.CONFLICT and not groups_of.get(edge.before, set()) & groups_of.get(edge.after, set()):
            lines.append(([edge.before, edge.after], edge.reason))
    return lines


def plan_json(plan: Plan, machine: Machine | None = None) -> dict[str, Any]:
    """The plan with Gadugi's top-level keys (no invented time estimates) plus edges and tasks,
    and what `--max-parallel auto` detected when the limit came from it."""
    specs = [t.spec for t in plan.tasks]
    groups = execution_groups(specs, plan.edges)
    parallel = sum(len(g) for g in groups if len(g) > 1)
    return {
        "schema_version": SCHEMA_VERSION,
        "total_tasks": len(specs),
        "parallelizable_tasks": parallel,
        "sequential_tasks": len(specs) - parallel,
        "execution_groups": len(groups),
        "groups": [
            {"group_id": i, "tasks": group, "parallelizable": len(group) > 1} for i, group in enumerate(groups)
        ],
        "edges": [edge.model_dump(mode="json") for edge in plan.edges],
        "shared_scopes": plan.shared_scopes,
        "tasks": [
            {
                "id": t.spec.id,
                "title": t.spec.title,
                "prompt_file": str(t.spec.prompt_file),
                "priority": t.spec.priority,
                "depends_on": t.spec.depends_on,
                "files": t.spec.files,
                "conflicts_with": t.spec.conflicts_with,
                "branch": t.branch,
                "worktree": str(t.worktree),
                "agent_command": t.agent_command,
                "timeout_seconds": t.spec.timeout_seconds,
                "max_turns": t.spec.max_turns,
                "verify": t.spec.verify,
                "model": t.spec.model,
                "agent": t.spec.agent,
                "sandbox": t.sandbox,
            }
            for t in plan.tasks
        ],
        "skipped": [
            {"id": s.id, "prompt_file": str(s.prompt_file), "skip_reason": s.skip_reason} for s in plan.skipped
        ],
        "base_ref": plan.base_ref,
        "base_sha": plan.base_sha,
        "machine": asdict(machine) if machine is not None else None,
    }
