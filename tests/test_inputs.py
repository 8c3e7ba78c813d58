from __future__ import annotations

from pathlib import Path

import pytest
from orchestrator.errors import InputError
from orchestrator.plan.inputs import parse_prompt_list, resolve_prompt_paths


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "prompts" / "sub").mkdir(parents=True)
    for rel in ["prompts/a.md", "prompts/b.md", "prompts/sub/c.md", "top.md", "other/d.md", "prompts/noext"]:
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text("# x\n")
    (project / "prompts" / "adir.md").mkdir()
    return project


def resolve(names: list[str], root: Path, cwd: Path | None = None) -> list[Path]:
    return resolve_prompt_paths(names, cwd=cwd or root, project_root=root)


def test_name_forms_resolve(root: Path) -> None:
    a = root / "prompts" / "a.md"
    for name in ["a", "a.md", "`a.md`", "'a.md'", '"a"', "prompts/a.md", "prompts/a", str(a), " a.md "]:
        assert resolve([name], root) == [a], name


def test_relative_to_cwd_first(root: Path) -> None:
    cwd = root / "other"
    assert resolve(["d"], root, cwd) == [root / "other" / "d.md"]
    (cwd / "a.md").write_text("# local\n")
    assert resolve(["a.md"], root, cwd) == [cwd / "a.md"]


def test_relative_to_prompts_dir_and_root(root: Path) -> None:
    elsewhere = root.parent
    assert resolve(["sub/c"], root, elsewhere) == [root / "prompts" / "sub" / "c.md"]
    assert resolve(["top"], root, elsewhere) == [root / "top.md"]
    assert resolve(["prompts/a.md"], root, elsewhere) == [root / "prompts" / "a.md"]


def test_bare_name_without_extension_is_taken_when_it_exists(root: Path) -> None:
    assert resolve(["noext"], root) == [root / "prompts" / "noext"]


def test_duplicates_kept_once_in_order(root: Path) -> None:
    assert resolve(["b", "a.md", "prompts/b.md", "a"], root) == [root / "prompts" / "b.md", root / "prompts" / "a.md"]


def test_missing_says_where_it_looked(root: Path) -> None:
    with pytest.raises(InputError) as info:
        resolve(["foo"], root)
    assert str(info.value) == "prompt 'foo' not found in ./, prompts/ (3 prompt files there)"


@pytest.mark.parametrize(("name", "hint"), [
    ("03-wraping.md", "(did you mean 'prompts/03-wrapping.md'?)"),
    ("prompts/topp", "(did you mean 'top.md'?)"),
    ("wrap-bug", ": it is the id of the task in prompts/03-wrapping.md; pass that file"),
])
def test_missing_names_the_prompt_meant(root: Path, name: str, hint: str) -> None:
    (root / "prompts" / "03-wrapping.md").write_text("---\nid: wrap-bug\ndepends_on: [a]\n---\n# Wrap\n")
    with pytest.raises(InputError) as info:
        resolve([name], root)
    assert str(info.value) == f"prompt '{name}' not found{' ' if hint.startswith('(') else ''}{hint}"


def test_suggestions_are_relative_to_where_the_user_is(root: Path) -> None:
    with pytest.raises(InputError, match=r"did you mean '\.\./top\.md'"):
        resolve(["tops"], root, root / "other")
    with pytest.raises(InputError, match=r"not found in \./, \.\./prompts/, \.\./ \(4 prompt files there\)"):
        resolve(["zzz"], root, root / "other")


def test_directory_is_rejected(root: Path) -> None:
    with pytest.raises(InputError, match="is a directory, not a prompt file"):
        resolve(["adir.md"], root)
    with pytest.raises(InputError, match="is a directory"):
        resolve(["sub"], root)


def test_empty_name(root: Path) -> None:
    with pytest.raises(InputError, match="empty"):
        resolve(["``"], root)


# Gadugi's own input (gadugi.md §1.1), which it turned into ['pr270.md','pr280.md','pr282.md'].
GADUGI_INPUT = """- pr278.md
Execute these prompt files:
- pr270.md
* `pr279.md`
2. pr280
prompts/pr281.md
pr282.md
Delegate each to workflow-manager agent
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GADUGI_INPUT, ["pr278.md", "pr270.md", "pr279.md", "pr280", "prompts/pr281.md", "pr282.md"]),
        ("Execute these prompts: a.md", ["a.md"]),
        ("Execute these prompts: a.md, b.md", ["a.md", "b.md"]),
        ("Run a.md and b.md in parallel", ["a.md", "b.md"]),
        ("Execute the following tasks:\n- fix-cache\n- add-login.md\n", ["fix-cache", "add-login.md"]),
        ("+ `x.md`\n3) y\n10. 'z.md'\n", ["x.md", "y", "z.md"]),
        ("- Delegate each to workflow-manager agent\n- Use the WorkflowManager\n", []),
        ("- a.md: the first one\n- b.md - second\n", ["a.md", "b.md"]),
        ("# heading.md\n## prompts.md\n- a.md\n", ["a.md"]),
        ("- a.md\n- a.md\n- b\n- a\n", ["a.md", "b", "a"]),
        ("- Overview:\n- a.md\n", ["a.md"]),
        ("Please run **a.md** and (b.md).\n", ["a.md", "b.md"]),
        ("- /abs/path/x.md\n", ["/abs/path/x.md"]),
        ("\u201ca.md\u201d then \u2018b.md\u2019", ["a.md", "b.md"]),
        ("", []),
        ("no prompts here\n.md\n", []),
    ],
)
def test_parse_prompt_list(text: str, expected: list[str]) -> None:
    assert parse_prompt_list(text) == expected


def test_parsed_names_resolve(root: Path) -> None:
    names = parse_prompt_list("Execute these prompts: `a.md`, prompts/b.md\n- sub/c\n")
    assert resolve(names, root) == [root / "prompts" / p for p in ["a.md", "b.md", "sub/c.md"]]
