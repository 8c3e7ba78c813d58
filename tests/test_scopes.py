from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orchestrator.plan.scopes import (
    Scope,
    directories_of,
    find_overlaps,
    glob_fixed_dir,
    glob_to_regex,
    normalize_path,
    parse_scope,
    scopes_overlap,
)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("src/*.py", "src/app.py", True),
        ("src/*.py", "src/sub/app.py", False),
        ("*.py", "app.py", True),
        ("*.py", "src/app.py", False),
        ("**/*.py", "app.py", True),
        ("**/*.py", "a/b/c.py", True),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/x/y/test_a.py", True),
        ("src/**/test_*.py", "lib/test_a.py", False),
        ("docs/**", "docs/a/b.md", True),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file/.txt", False),
        ("[ab].py", "a.py", True),
        ("[!ab].py", "a.py", False),
        ("[!ab].py", "c.py", True),
        ("a[b", "a[b", True),
        ("a.py", "axpy", False),
        ("a+b(1).py", "a+b(1).py", True),
    ],
)
def test_glob_to_regex(pattern: str, path: str, matches: bool) -> None:
    assert (glob_to_regex(pattern).fullmatch(path) is not None) is matches


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("./a/b.py", ("a/b.py", False)),
        ("a//b/", ("a/b", True)),
        ("`src/`", ("src", True)),
        ("./", ("", True)),
        ("/etc/passwd", None),
        ("../outside.py", None),
        ("a/../../b", None),
        ("", None),
    ],
)
def test_normalize_path(raw: str, expected: tuple[str, bool] | None) -> None:
    assert normalize_path(raw) == expected


def test_parse_scope_kinds() -> None:
    dirs = frozenset({"src", "src/pkg"})
    assert parse_scope("src/app.py", dirs) == Scope("file", "src/app.py")
    assert parse_scope("src", dirs) == Scope("dir", "src")
    assert parse_scope("new/", dirs) == Scope("dir", "new")
    assert parse_scope("new", dirs) == Scope("file", "new")
    assert parse_scope("src/*.py", dirs) == Scope("glob", "src/*.py")
    assert parse_scope("src/**", dirs) == Scope("dir", "src")
    assert parse_scope("**", dirs) == Scope("dir", "")
    assert parse_scope("../x", dirs) is None


def test_directories_and_fixed_dir() -> None:
    assert directories_of(["a/b/c.py", "a/d.py", "e.py"]) == {"a", "a/b"}
    assert glob_fixed_dir("src/pkg/*.py") == "src/pkg"
    assert glob_fixed_dir("src/*/x.py") == "src"
    assert glob_fixed_dir("*.py") == ""


def test_same_file_overlaps_after_normalising() -> None:
    assert find_overlaps({"a": ["./src/app.py"], "b": ["src/app.py"]}, []) == {("a", "b"): ["src/app.py"]}


def test_different_files_do_not_overlap() -> None:
    assert find_overlaps({"a": ["src/app.py"], "b": ["src/app.pyc", "app.py"]}, ["src/app.py"]) == {}


def test_file_inside_directory() -> None:
    result = find_overlaps({"a": ["src/"], "b": ["src/pkg/mod.py"], "c": ["srcx/mod.py"]}, [])
    assert result == {("a", "b"): ["src/pkg/mod.py"]}


def test_tracked_directory_without_slash_is_a_directory() -> None:
    result = find_overlaps({"a": ["src"], "b": ["src/app.py"]}, ["src/app.py"])
    assert result == {("a", "b"): ["src/app.py"]}


def test_directory_inside_directory() -> None:
    result = find_overlaps({"a": ["src/pkg/"], "b": ["src/"], "c": ["docs/"]}, [])
    assert result == {("a", "b"): ["src/pkg/"]}


def test_root_scope_overlaps_everything() -> None:
    result = find_overlaps({"a": ["./"], "b": ["x.py"], "c": ["lib/"], "d": ["*.md"]}, [])
    assert set(result) == {("a", "b"), ("a", "c"), ("a", "d")}


def test_glob_matches_tracked_and_declared_files() -> None:
    tracked = ["src/app.py", "src/util.py", "README.md"]
    scopes = {"g": ["src/*.py"], "f": ["src/app.py"], "n": ["src/new.py"], "r": ["README.md"]}
    result = find_overlaps(scopes, tracked)
    assert set(result) == {("g", "f"), ("g", "n")}
    assert result[("g", "n")] == ["src/new.py"]


def test_glob_vs_glob_needs_a_common_file_or_equal_text() -> None:
    tracked = ["src/a.py", "src/a.txt", "docs/x.md"]
    scopes = {"p": ["src/*.py"], "q": ["**/a.*"], "r": ["docs/*.rst"], "s": ["docs/*.rst"], "t": ["*.cfg"]}
    result = find_overlaps(scopes, tracked)
    assert set(result) == {("p", "q"), ("r", "s")}
    assert result[("r", "s")] == ["docs/*.rst"]


def test_glob_vs_directory() -> None:
    tracked = ["src/pkg/a.py", "lib/b.py"]
    scopes = {"g": ["**/*.py"], "d": ["src/"], "e": ["docs/"], "h": ["docs/api/*.md"]}
    result = find_overlaps(scopes, tracked)
    # `**/*.py` matches a tracked file under src/; `docs/api/*.md` lives under docs/ whatever exists.
    assert set(result) == {("g", "d"), ("e", "h")}


def test_pair_keys_follow_first_appearance() -> None:
    result = find_overlaps({"z": ["a.py"], "y": ["a.py"], "x": ["a.py"]}, [])
    assert list(result) == [("z", "y"), ("z", "x"), ("y", "x")]


def test_labels_are_short() -> None:
    files = [f"f{i}.py" for i in range(10)]
    result = find_overlaps({"a": files, "b": files}, [])
    assert len(result[("a", "b")]) == 3


def test_out_of_repo_scopes_are_ignored() -> None:
    assert find_overlaps({"a": ["/etc/x"], "b": ["/etc/x"]}, []) == {}


def test_many_tasks_scale_linearly() -> None:
    tracked = [f"pkg{i}/mod{j}.py" for i in range(500) for j in range(20)]
    scopes = {f"t{i}": [f"pkg{i}/mod0.py", f"pkg{i}/*.txt", f"pkg{i}/sub/"] for i in range(2000)}
    scopes["wide"] = ["pkg7/"]
    result = find_overlaps(scopes, tracked)
    assert set(result) == {("t7", "wide")}


_names = st.sampled_from(["a", "b", "c", "a/b", "a/c", "b/a", "a/b/c"])
_files = st.builds(lambda d, f: f"{d}/{f}", _names, st.sampled_from(["x.py", "y.md", "z.py"]))
_raw_scope = st.one_of(
    _files,
    _names.map(lambda d: d + "/"),
    st.builds(lambda d, g: f"{d}/{g}", _names, st.sampled_from(["*.py", "*", "**/*.md", "?.py", "**/x.py"])),
    st.sampled_from(["*.py", "**/*.py", "./"]),
)


@settings(max_examples=200, deadline=None)
@given(
    scopes=st.lists(st.lists(_raw_scope, max_size=3), min_size=2, max_size=6),
    tracked=st.lists(_files, max_size=6),
)
def test_indexed_overlaps_equal_pairwise_rule(scopes: list[list[str]], tracked: list[str]) -> None:
    by_task = {f"t{i}": s for i, s in enumerate(scopes)}
    universe = set(tracked) | {s for ss in scopes for s in ss if parse_scope(s) == Scope("file", s)}
    dirs = frozenset(directories_of(tracked))
    parsed = {t: [p for s in ss if (p := parse_scope(s, dirs))] for t, ss in by_task.items()}
    expected = {
        (x, y)
        for x, y in combinations(by_task, 2)
        if any(scopes_overlap(a, b, universe) for a in parsed[x] for b in parsed[y])
    }
    assert set(find_overlaps(by_task, tracked)) == expected
