"""Tasks sharing a scope: one chain of conflict edges per scope (not an edge per pair), the group
the engine keeps to one task at a time, and the reasons the plan shows."""
from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.virtual import START, Simulation, VirtualBackend, VirtualClock
from hypothesis import given, settings
from orchestrator.models import Edge, EdgeKind, Plan, PlannedTask
from orchestrator.plan.analyzer import Analysis, execution_groups, longest_remaining_path, never_together
from orchestrator.plan.scopes import find_overlaps, shared_scopes
from orchestrator.run.engine import EngineSettings

from test_analyzer import _task_sets, analyze, pairs, prompt, write_prompt


def as_plan(analysis: Analysis, tmp_path: Path) -> Plan:
    tasks = [PlannedTask(spec=s, branch=f"gadugi/{s.id}", worktree=tmp_path / "wt" / s.id, agent_command=["agent"])
             for s in analysis.tasks]
    return Plan(tasks=tasks, edges=analysis.edges, shared_scopes=analysis.shared_scopes, base_sha="base")


def overlapping(spans: dict[str, tuple[float, float]], a: str, b: str) -> bool:
    return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]


def test_a_thousand_tasks_on_one_file_are_one_chain(tmp_path: Path) -> None:
    paths = [write_prompt(tmp_path, f"t{i}.md", {"files": ["src/app.py"]}) for i in range(1000)]
    analysis = analyze(tmp_path, paths)
    conflicts = pairs(analysis, EdgeKind.CONFLICT)
    assert len(conflicts) <= 999
    ids = [f"t{i}" for i in range(1000)]
    assert analysis.shared_scopes == {"src/app.py": ids}
    # Still fully serialised: no two of them share a level, and the critical path is all of them.
    assert execution_groups(analysis.tasks, analysis.edges) == [[t] for t in ids]


def test_groups_are_cliques_and_cover_every_overlapping_pair() -> None:
    tracked = ["a/b/c.py", "a/b/d.py", "a/e.md", "f.py"]
    scopes = {"dir": ["a/"], "sub": ["a/b/"], "c": ["a/b/c.py"], "d": ["a/b/d.py"], "glob": ["a/b/*.py"],
              "md": ["**/*.md"], "root": ["./"], "f": ["f.py"], "alone": ["g.py"]}
    groups = shared_scopes(scopes, tracked)
    overlaps = set(find_overlaps(scopes, tracked))
    together = {(x, y) for tasks in groups.values() for i, x in enumerate(tasks) for y in tasks[i + 1:]}
    assert together == overlaps
    # c and d both sit in a/b/ but touch different files: no group holds both.
    assert not any({"c", "d"} <= set(tasks) for tasks in groups.values())
    assert groups["a/b/c.py"] == ["dir", "sub", "c", "glob", "root"]


def test_a_chain_keeps_the_reasons_of_each_link(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "a.md", files=["src/app.py", "src/util.py"]),
        prompt(tmp_path, "b.md", files=["src/app.py", "src/util.py"]),
        prompt(tmp_path, "c.md", files=["src/app.py"]),
        prompt(tmp_path, "d.md", files=["README.md"], conflicts_with=["a"]),
    ]
    analysis = analyze(tmp_path, paths)
    reasons = {(e.before, e.after): e.reason for e in analysis.edges}
    assert reasons == {
        ("a", "b"): "a and b both touch src/app.py, src/util.py",  # two scopes, one edge
        ("b", "c"): "b and c both touch src/app.py",
        ("a", "d"): "d declares conflicts_with a",
    }
    plan = as_plan(analysis, tmp_path)
    assert never_together(plan) == [
        (["a", "b", "c"], "all touch src/app.py"),
        (["a", "b"], "a and b both touch src/util.py"),
        (["a", "d"], "d declares conflicts_with a"),
    ]


def test_a_dependency_between_two_tasks_of_a_chain_takes_the_conflict_reason(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "a.md", files=["src/app.py"]),
        prompt(tmp_path, "b.md", files=["src/app.py"]),
        prompt(tmp_path, "c.md", depends_on="a", files=["src/app.py"]),
    ]
    analysis = analyze(tmp_path, paths)
    # a and c are not neighbours in the chain a -> b -> c, yet their dependency says why too.
    dependency = next(e for e in analysis.edges if e.kind == EdgeKind.DEPENDENCY)
    assert dependency.reason == "c depends on a (front matter depends_on); also a and c both touch src/app.py"
    assert pairs(analysis, EdgeKind.CONFLICT) == [("a", "b"), ("b", "c")]


def test_the_engine_keeps_a_whole_group_apart_not_only_chain_neighbours(tmp_path: Path) -> None:
    # Chain a -> b -> c on one file; b waits for x. Were only neighbours kept apart, c (free of b
    # while b waits) would start beside a. Either order stays allowed: c does not wait for b.
    paths = [
        prompt(tmp_path, "x.md", files=["docs/guide.md"]),
        prompt(tmp_path, "a.md", files=["src/app.py"]),
        prompt(tmp_path, "b.md", depends_on="x", files=["src/app.py"]),
        prompt(tmp_path, "c.md", files=["src/app.py"]),
    ]
    analysis = analyze(tmp_path, paths)
    assert analysis.shared_scopes == {"src/app.py": ["a", "b", "c"]}
    assert pairs(analysis, EdgeKind.CONFLICT) == [("a", "b"), ("b", "c")]
    sim = Simulation(as_plan(analysis, tmp_path), VirtualBackend(VirtualClock(), {"x": 40, "a": 10, "b": 10, "c": 10}),
                     tmp_path / "run")
    _, results = sim.run(EngineSettings(max_parallel=4, launch_stagger=0, retries=0))
    spans = sim.backend.spans
    assert {r.status.value for r in results.values()} == {"completed"}
    for first, second in (("a", "b"), ("b", "c"), ("a", "c")):
        assert not overlapping(spans, first, second), (first, second, spans)
    assert spans["c"] == (START + 10, START + 20) and spans["b"][0] == START + 40
    # c starts from the work of the group's task that finished before it.
    assert [p.task_id for p in sim.backend.requests["c"].predecessors] == ["a"]


@settings(max_examples=60, deadline=None)
@given(_task_sets())
def test_a_chain_orders_exactly_what_every_pair_would(task_metas: list[dict[str, object]]) -> None:
    # Adding the edge of every overlapping pair, in the chain's order, changes no level and no path:
    # the chain already implies each of them.
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = [write_prompt(root, f"{meta['id']}.md", meta) for meta in task_metas]
        analysis = analyze(root, paths, ["a.py", "src/x.py", "src/z.py", "docs/y.md"])
    every_pair = [Edge(before=x, after=y, kind=EdgeKind.CONFLICT, reason="pair")
                  for tasks in analysis.shared_scopes.values() for i, x in enumerate(tasks) for y in tasks[i + 1:]]
    both = analysis.edges + every_pair
    assert execution_groups(analysis.tasks, both) == execution_groups(analysis.tasks, analysis.edges)
    assert longest_remaining_path(analysis.tasks, both) == longest_remaining_path(analysis.tasks, analysis.edges)
