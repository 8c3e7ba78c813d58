from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orchestrator.errors import PlanError
from orchestrator.models import SCHEMA_VERSION, Edge, EdgeKind, Plan, PlannedTask
from orchestrator.plan.analyzer import Analysis, TaskAnalyzer, execution_groups, longest_remaining_path, plan_json
from orchestrator.plan.scopes import find_overlaps

TRACKED = ["src/app.py", "src/util.py", "src/pkg/mod.py", "docs/guide.md", "README.md"]


def prompt(root: Path, name: str, *, body: str = "", **meta: object) -> Path:
    return write_prompt(root, name, meta, body)


def write_prompt(root: Path, name: str, meta: dict[str, object], body: str = "") -> Path:
    lines = [f"{key}: {value!r}" if isinstance(value, str) else f"{key}: {value}" for key, value in meta.items()]
    front = "---\n" + "\n".join(lines) + "\n---\n" if lines else ""
    path = root / "prompts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(front + f"# {name}\n\n{body}\n")
    return path


def analyze(root: Path, paths: list[Path], tracked: list[str] = TRACKED) -> Analysis:
    return TaskAnalyzer(root, tracked).analyze(paths)


def pairs(analysis: Analysis, kind: EdgeKind | None = None) -> list[tuple[str, str]]:
    return [(e.before, e.after) for e in analysis.edges if kind is None or e.kind == kind]


def reachable(edges: list[Edge]) -> Callable[[str, str], bool]:
    succ: dict[str, list[str]] = {}
    for edge in edges:
        succ.setdefault(edge.before, []).append(edge.after)

    def reach(a: str, b: str) -> bool:
        stack, seen = [a], {a}
        while stack:
            for nxt in succ.get(stack.pop(), []):
                if nxt == b:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    return reach


def test_dependencies_by_every_kind_of_name(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "schema.md"),
        prompt(tmp_path, "api.md", id="api-v2"),
        prompt(tmp_path, "sub/ui.md"),
        prompt(tmp_path, "app.md", depends_on=["schema.md", "api-v2"], body="Depends on: `prompts/sub/ui.md`"),
        prompt(tmp_path, "docs.md", depends_on="api", body="- **Depends on**: schema, sub/ui"),
    ]
    analysis = analyze(tmp_path, paths)
    specs = {t.id: t for t in analysis.tasks}
    assert specs["app"].depends_on == ["schema", "api-v2", "ui"]
    assert specs["docs"].depends_on == ["api-v2", "schema", "ui"]
    assert pairs(analysis) == [
        ("schema", "app"), ("api-v2", "app"), ("ui", "app"), ("api-v2", "docs"), ("schema", "docs"), ("ui", "docs")
    ]
    reasons = [e.reason for e in analysis.edges]
    assert reasons[0] == "app depends on schema (front matter depends_on)"
    assert reasons[2] == "app depends on ui (Depends on: line)"
    assert all(e.kind == EdgeKind.DEPENDENCY for e in analysis.edges)
    assert analysis.warnings == []


def test_unknown_dependency(tmp_path: Path) -> None:
    paths = [prompt(tmp_path, "a.md"), prompt(tmp_path, "b.md", depends_on=["zzz"]), prompt(tmp_path, "c.md")]
    with pytest.raises(PlanError, match=r"^task 'b' depends on unknown task 'zzz' \(known: a, b, c\)$"):
        analyze(tmp_path, paths)


def test_unknown_conflicts_with(tmp_path: Path) -> None:
    paths = [prompt(tmp_path, "a.md", conflicts_with="nope")]
    with pytest.raises(PlanError, match="task 'a' declares conflicts_with unknown task 'nope'"):
        analyze(tmp_path, paths)


def test_no_substring_matching(tmp_path: Path) -> None:
    paths = [prompt(tmp_path, "database-migration.md"), prompt(tmp_path, "b.md", body="Depends on: database")]
    with pytest.raises(PlanError, match="unknown task 'database'"):
        analyze(tmp_path, paths)


def test_ambiguous_name(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "one/x.md", id="x1"),
        prompt(tmp_path, "two/x.md", id="x2"),
        prompt(tmp_path, "c.md", depends_on="x.md"),
    ]
    with pytest.raises(PlanError, match="ambiguous"):
        analyze(tmp_path, paths)


def test_dependency_on_done_task_is_satisfied(tmp_path: Path) -> None:
    paths = [prompt(tmp_path, "a.md", status="done"), prompt(tmp_path, "b.md", body="Depends on: a.md\nCOMPLETED")]
    paths.append(prompt(tmp_path, "c.md", depends_on=["a", "b"]))
    analysis = analyze(tmp_path, paths)
    assert [t.id for t in analysis.tasks] == ["c"]
    assert [t.id for t in analysis.skipped] == ["a", "b"]
    assert analysis.edges == []
    assert analysis.tasks[0].depends_on == []
    assert any("marked done" in w for w in analysis.warnings)


def test_self_dependency_never_makes_an_edge(tmp_path: Path) -> None:
    paths = [prompt(tmp_path, "a.md", depends_on=["a.md"], conflicts_with="a", files=["src/app.py"])]
    analysis = analyze(tmp_path, paths)
    assert analysis.edges == []
    assert analysis.tasks[0].depends_on == [] and analysis.tasks[0].conflicts_with == []
    assert len(analysis.warnings) == 2 and all("names itself" in w for w in analysis.warnings)


def test_duplicate_ids(tmp_path: Path) -> None:
    first = prompt(tmp_path, "a.md")
    second = prompt(tmp_path, "other.md", id="a")
    with pytest.raises(PlanError) as info:
        analyze(tmp_path, [first, second])
    assert str(first) in str(info.value) and str(second) in str(info.value)


def test_same_file_twice_runs_once(tmp_path: Path) -> None:
    path = prompt(tmp_path, "a.md")
    analysis = analyze(tmp_path, [path, tmp_path / "prompts" / ".." / "prompts" / "a.md"])
    assert [t.id for t in analysis.tasks] == ["a"]
    assert "more than once" in analysis.warnings[0]


def test_cycle(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "a.md", depends_on="c"),
        prompt(tmp_path, "b.md", depends_on="a"),
        prompt(tmp_path, "c.md", depends_on="b"),
        prompt(tmp_path, "d.md"),
    ]
    with pytest.raises(PlanError) as info:
        analyze(tmp_path, paths)
    message = str(info.value)
    assert message.startswith("dependency cycle: ")
    assert set(message.removeprefix("dependency cycle: ").split(" depends on ")) == {"a", "b", "c"}


def test_scope_conflicts_are_ordered(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "a.md", body="Edit src/app.py."),
        prompt(tmp_path, "b.md", files=["src/"]),
        prompt(tmp_path, "c.md", files=["docs/*.md"]),
        prompt(tmp_path, "d.md", body="Update docs/guide.md and nothing else."),
    ]
    analysis = analyze(tmp_path, paths)
    assert [(e.before, e.after, e.kind) for e in analysis.edges] == [
        ("a", "b", EdgeKind.CONFLICT),
        ("c", "d", EdgeKind.CONFLICT),
    ]
    assert analysis.edges[0].reason == "a and b both touch src/app.py"
    assert analysis.edges[1].reason == "c and d both touch docs/guide.md"


def test_declared_conflicts_either_direction(tmp_path: Path) -> None:
    paths = [prompt(tmp_path, "a.md"), prompt(tmp_path, "b.md", conflicts_with=["a"])]
    analysis = analyze(tmp_path, paths)
    assert pairs(analysis) == [("a", "b")]
    assert analysis.edges[0].reason == "b declares conflicts_with a"
    assert analysis.tasks[1].conflicts_with == ["a"]


def test_conflict_orientation_follows_priority_then_input_order(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "late.md", priority=9, files=["README.md"]),
        prompt(tmp_path, "urgent.md", priority=1, files=["README.md"]),
        prompt(tmp_path, "first.md", files=["README.md"]),
        prompt(tmp_path, "second.md", files=["README.md"]),
    ]
    analysis = analyze(tmp_path, paths)
    # One chain in that order, not a pair each: the same order, the same levels.
    assert sorted(pairs(analysis)) == sorted([("urgent", "first"), ("first", "second"), ("second", "late")])
    assert analysis.shared_scopes == {"README.md": ["urgent", "first", "second", "late"]}
    assert execution_groups(analysis.tasks, analysis.edges) == [["urgent"], ["first"], ["second"], ["late"]]


def test_conflict_orientation_respects_dependencies(tmp_path: Path) -> None:
    # b must precede a (dependency). By priority alone a->c and c->b, closing a cycle b->a->c->b.
    # Conflicts follow the ranked order of the dependencies, the order the engine starts them in:
    # c (priority 3) and b (priority 5) are ready first, so c, then b, then a.
    paths = [
        prompt(tmp_path, "a.md", priority=1, depends_on="b", files=["docs/guide.md"]),
        prompt(tmp_path, "b.md", priority=5, files=["src/util.py"]),
        prompt(tmp_path, "c.md", priority=3, files=["docs/", "src/"]),
    ]
    analysis = analyze(tmp_path, paths)
    assert pairs(analysis, EdgeKind.DEPENDENCY) == [("b", "a")]
    assert pairs(analysis, EdgeKind.CONFLICT) == [("c", "a"), ("c", "b")]
    assert execution_groups(analysis.tasks, analysis.edges) == [["c"], ["b"], ["a"]]


def test_conflict_against_a_dependency_chain_follows_the_chain(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "x.md", priority=1, depends_on="y", files=["README.md"]),
        prompt(tmp_path, "y.md", depends_on="z"),
        prompt(tmp_path, "z.md", priority=9, files=["README.md"]),
    ]
    analysis = analyze(tmp_path, paths)
    assert pairs(analysis, EdgeKind.CONFLICT) == [("z", "x")]


def test_direct_dependency_absorbs_the_conflict(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "a.md", priority=9, files=["src/app.py"]),
        prompt(tmp_path, "b.md", priority=1, depends_on="a", files=["src/app.py"], conflicts_with="a"),
    ]
    analysis = analyze(tmp_path, paths)
    assert pairs(analysis) == [("a", "b")]
    assert analysis.edges[0].kind == EdgeKind.DEPENDENCY
    assert analysis.edges[0].reason == (
        "b depends on a (front matter depends_on); also a and b both touch src/app.py; b declares conflicts_with a"
    )


def test_prose_paths_use_word_boundaries(tmp_path: Path) -> None:
    tracked = ["app.py", "myapp.py"]
    paths = [prompt(tmp_path, "a.md", body="Fix myapp.py."), prompt(tmp_path, "b.md", body="Fix app.py.bak and `app.py`.")]
    analysis = analyze(tmp_path, paths, tracked)
    assert [t.files for t in analysis.tasks] == [["myapp.py"], ["app.py"]]
    assert analysis.edges == []


def test_tracked_files_from_a_real_repo(tmp_path: Path, make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"lib/core.py": "x = 1\n", "lib/extra.py": "y = 2\n", "prompts/a.md": "# A\nRefactor lib/core.py\n",
                      "prompts/b.md": "---\nfiles: [lib]\n---\n# B\n"})
    tracked = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    analysis = TaskAnalyzer(repo, tracked).analyze([repo / "prompts" / "a.md", repo / "prompts" / "b.md"])
    assert analysis.tasks[1].files == ["lib/"]
    assert pairs(analysis) == [("a", "b")]
    assert analysis.edges[0].reason == "a and b both touch lib/core.py"


def test_groups_and_remaining_path(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "a.md"),
        prompt(tmp_path, "b.md", depends_on="a"),
        prompt(tmp_path, "c.md", depends_on="b"),
        prompt(tmp_path, "d.md", depends_on="a"),
        prompt(tmp_path, "e.md"),
    ]
    analysis = analyze(tmp_path, paths)
    assert execution_groups(analysis.tasks, analysis.edges) == [["a", "e"], ["b", "d"], ["c"]]
    assert longest_remaining_path(analysis.tasks, analysis.edges) == {"a": 3, "b": 2, "c": 1, "d": 1, "e": 1}
    assert execution_groups([], []) == []


def test_plan_json(tmp_path: Path) -> None:
    paths = [
        prompt(tmp_path, "a.md", files=["src/app.py"], timeout="30m", max_turns=5, verify="true", model="m", agent="x"),
        prompt(tmp_path, "b.md", files=["src/"]),
        prompt(tmp_path, "c.md"),
        prompt(tmp_path, "d.md", body="IMPLEMENTED"),
    ]
    analysis = analyze(tmp_path, paths)
    plan = Plan(
        tasks=[PlannedTask(spec=s, branch=f"feature/{s.id}", worktree=tmp_path / s.id, agent_command=["claude", "-p"])
               for s in analysis.tasks],
        edges=analysis.edges,
        skipped=analysis.skipped,
        base_ref="main",
        base_sha="abc123",
    )
    data = plan_json(plan)
    assert data["schema_version"] == SCHEMA_VERSION
    assert (data["total_tasks"], data["parallelizable_tasks"], data["sequential_tasks"]) == (3, 2, 1)
    assert data["execution_groups"] == 2
    assert data["groups"] == [
        {"group_id": 0, "tasks": ["a", "c"], "parallelizable": True},
        {"group_id": 1, "tasks": ["b"], "parallelizable": False},
    ]
    assert data["edges"] == [{"before": "a", "after": "b", "kind": "conflict", "reason": "a and b both touch src/app.py"}]
    first = data["tasks"][0]
    assert first["id"] == "a" and first["branch"] == "feature/a" and first["worktree"] == str(tmp_path / "a")
    assert (first["timeout_seconds"], first["max_turns"], first["verify"], first["model"], first["agent"]) == (
        1800, 5, "true", "m", "x")
    assert set(first) == {"id", "title", "prompt_file", "priority", "depends_on", "files", "conflicts_with", "branch",
                          "worktree", "agent_command", "timeout_seconds", "max_turns", "verify", "model", "agent",
                          "sandbox"}
    assert first["sandbox"] == "none"
    assert data["skipped"][0]["id"] == "d" and "line" in data["skipped"][0]["skip_reason"]
    assert (data["base_ref"], data["base_sha"]) == ("main", "abc123")
    assert not any("estimated" in key for key in data)


def test_thousand_prompts(tmp_path: Path) -> None:
    tracked = [f"pkg{i}/mod{j}.py" for i in range(200) for j in range(10)] + ["README.md"]
    paths = []
    for i in range(1000):
        meta: dict[str, object] = {"files": [f"pkg{i % 200}/mod{i % 7}.py", f"new/t{i}.py"]}
        if i % 10 == 9:
            meta["depends_on"] = f"t{i - 1}"
        if i % 250 == 0:
            meta["files"] = ["pkg3/"]
        paths.append(write_prompt(tmp_path, f"t{i}.md", meta, f"Task {i}. See pkg{i % 200}/mod9.py."))
    analysis = analyze(tmp_path, paths, tracked)
    assert len(analysis.tasks) == 1000
    assert len(pairs(analysis, EdgeKind.DEPENDENCY)) == 100
    reach = reachable(analysis.edges)
    scopes = {t.id: t.files for t in analysis.tasks}
    overlaps = find_overlaps(scopes, tracked)
    assert ("t3", "t203") in overlaps and ("t0", "t3") in overlaps
    for a, b in overlaps:
        assert reach(a, b) or reach(b, a)
    groups = execution_groups(analysis.tasks, analysis.edges)
    assert sum(len(g) for g in groups) == 1000


_FILES = ["a.py", "b.py", "src/", "src/x.py", "src/*.py", "docs/", "docs/y.md", "**/*.md"]


@st.composite
def _task_sets(draw: st.DrawFn) -> list[dict[str, object]]:
    count = draw(st.integers(min_value=2, max_value=9))
    tasks: list[dict[str, object]] = []
    for i in range(count):
        meta: dict[str, object] = {"priority": draw(st.integers(1, 9))}
        files = draw(st.lists(st.sampled_from(_FILES), max_size=3, unique=True))
        if files:
            meta["files"] = files
        earlier = [f"t{j}" for j in range(i)]
        if earlier:
            meta["depends_on"] = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True))
            conflicts = draw(st.lists(st.sampled_from(earlier), max_size=1))
            if conflicts:
                meta["conflicts_with"] = conflicts
        tasks.append(meta)
    order = draw(st.permutations(range(count)))
    return [dict(tasks[i], id=f"t{i}") for i in order]


@settings(max_examples=60, deadline=None)
@given(_task_sets())
def test_edges_are_acyclic_and_order_every_conflict(task_metas: list[dict[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = [write_prompt(root, f"{meta['id']}.md", meta) for meta in task_metas]
        analysis = analyze(root, paths, ["a.py", "src/x.py", "src/z.py", "docs/y.md"])
    ids = [t.id for t in analysis.tasks]
    reach = reachable(analysis.edges)
    assert not any(reach(t, t) for t in ids)
    assert sum(len(g) for g in execution_groups(analysis.tasks, analysis.edges)) == len(ids)
    conflicting = set(find_overlaps({t.id: t.files for t in analysis.tasks}, ["a.py", "src/x.py", "src/z.py", "docs/y.md"]))
    # The engine keeps overlapping tasks apart through their shared scope's group.
    together = {(x, y) for tasks in analysis.shared_scopes.values() for x in tasks for y in tasks}
    assert all((a, b) in together for a, b in conflicting)
    conflicting |= {(t.id, other) for t in analysis.tasks for other in t.conflicts_with}
    for a, b in conflicting:
        assert reach(a, b) or reach(b, a), (a, b)
    for task in analysis.tasks:
        for dep in task.depends_on:
            assert (dep, task.id) in pairs(analysis, EdgeKind.DEPENDENCY)
