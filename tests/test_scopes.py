from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orchestrator.plan.scopes import (
    Scope,
    ancestors,
    directories_of,
    find_overlaps,
    glob_fixed_dir,
    glob_to_regex,
    is_glob,
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


# -- sharper cases: three levels deep, bracket classes, backslashes, labels ----------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("[a-c].py", "b.py", True),
        ("[a-c].py", "d.py", False),
        ("[^ab].py", "a.py", False),
        ("[^ab].py", "c.py", True),
        ("[!ab].py", "/.py", False),  # a negated class never matches the separator
        ("[]a].py", "].py", True),  # `]` first in a class is a member, not its end
        ("[]a].py", "a.py", True),
        ("[!]a].py", "].py", False),
        ("[!]a].py", "b.py", True),
        ("[X]]", "X]", True),
        ("[]]", "]", True),
        ("[!]]", "a", True),
        ("[!]]", "]", False),
        ("[a^].py", "^.py", True),
        ("[a^].py", "b.py", False),
        ("[\\]x", "\\x", True),  # a backslash in a class is itself
        ("[[]x", "[x", True),
        ("[a/b].py", "[a/b].py", True),  # a class cannot span directories: then `[` is literal
        ("[a/b].py", "a.py", False),
        ("x[", "x[", True),
        ("x[!", "x[!", True),
        ("x[]", "x[]", True),
        ("a/b/c/*.py", "a/b/c/d.py", True),
        ("a/b/c/*.py", "a/b/c/e/d.py", False),
        ("a/**/d.py", "a/b/c/d.py", True),
        ("a/**/d.py", "a/d.py", True),
        ("a/**/d.py", "ab/d.py", False),
        ("**", "a/b/c", True),
        ("a**", "a/b/c", True),
        ("*", "a/b", False),
        ("?", "ab", False),
        ("a.b", "a.b", True),
        ("a.b", "axb", False),
    ],
)
def test_glob_classes_depth_and_literals(pattern: str, path: str, matches: bool) -> None:
    assert (glob_to_regex(pattern).fullmatch(path) is not None) is matches


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("src\\pkg\\mod.py", ("src/pkg/mod.py", False)),
        ("src\\pkg\\", ("src/pkg", True)),
        ("a/b/c/d.py", ("a/b/c/d.py", False)),
        ("a/./b/./c/", ("a/b/c", True)),
        (" 'src/a.py' ", ("src/a.py", False)),
        ('"src/a.py"', ("src/a.py", False)),
        ("` src/a.py `", ("src/a.py", False)),
        (".", ("", True)),
        ("~/notes.md", None),
        ("\\abs\\path", None),
        ("a/b/..", None),
        ("   ", None),
        ("Xdir/X", ("Xdir/X", False)),  # only quotes and backticks are stripped
    ],
)
def test_normalize_path_backslashes_quotes_and_depth(raw: str, expected: tuple[str, bool] | None) -> None:
    assert normalize_path(raw) == expected


def test_labels_and_glob_detection() -> None:
    assert Scope("dir", "").label == "./"
    assert Scope("dir", "a/b").label == "a/b/"
    assert Scope("file", "a/b.py").label == "a/b.py"
    assert Scope("glob", "a/*.py").label == "a/*.py"
    assert [is_glob(t) for t in ("a*", "a?", "a[b]", "a.py", "a]b", "a!b")] == [True, True, True, False, False, False]


def test_recursive_globs_three_levels_deep_are_directories() -> None:
    assert parse_scope("a/b/c/**") == Scope("dir", "a/b/c")
    assert parse_scope("a/b/c/**/*") == Scope("dir", "a/b/c")
    assert parse_scope("**/*") == Scope("dir", "")
    assert parse_scope("a/*/c/**") == Scope("glob", "a/*/c/**")
    assert parse_scope("src/*/**") == Scope("glob", "src/*/**")
    assert parse_scope("a/b/**/*.py") == Scope("glob", "a/b/**/*.py")
    assert parse_scope("a\\b\\") == Scope("dir", "a/b")
    assert parse_scope("a/b/c") == Scope("file", "a/b/c")
    assert parse_scope("a/b/c", frozenset({"a/b/c"})) == Scope("dir", "a/b/c")


def test_directories_and_ancestors_three_levels_deep() -> None:
    assert directories_of(["a/b/c/d.py"]) == {"a", "a/b", "a/b/c"}
    assert directories_of(["a/b/c/d.py", "a/b/e.py", "a/x/y/z.py", "top.py"]) == {"a", "a/b", "a/b/c", "a/x", "a/x/y"}
    assert directories_of([]) == set()
    assert ancestors("a/b/c/d.py") == ["", "a", "a/b", "a/b/c"]
    assert ancestors("top.py") == [""]
    assert ancestors("") == [""]


def test_fixed_dir_three_levels_deep() -> None:
    assert glob_fixed_dir("a/b/c/*.py") == "a/b/c"
    assert glob_fixed_dir("a/b/*/d/*.py") == "a/b"
    assert glob_fixed_dir("[ab]/c/*.py") == ""
    assert glob_fixed_dir("a/b/c/d.py") == "a/b/c"


@pytest.mark.parametrize(
    ("a", "b", "universe", "overlap"),
    [
        (Scope("file", "a/b/c.py"), Scope("file", "a/b/c.py"), [], True),
        (Scope("file", "a/b/c.py"), Scope("file", "a/b/d.py"), [], False),
        (Scope("file", "a"), Scope("file", "a/b"), [], False),  # files never contain files
        (Scope("file", "a"), Scope("dir", "a/b"), [], False),  # nor directories
        (Scope("file", "a/b/c/d.py"), Scope("dir", "a/b"), [], True),
        (Scope("dir", "a/b"), Scope("file", "a/b/c/d.py"), [], True),
        (Scope("dir", "a/b"), Scope("file", "a/bc/d.py"), [], False),
        (Scope("dir", "a/b/c"), Scope("dir", "a/b"), [], True),
        (Scope("dir", "a/b"), Scope("dir", "a/b/c"), [], True),
        (Scope("dir", "a/b"), Scope("dir", "a/c"), [], False),
        (Scope("dir", ""), Scope("file", "x.py"), [], True),
        (Scope("glob", "a/*/c/*.py"), Scope("file", "a/b/c/d.py"), [], True),
        (Scope("file", "a/b/c/d.py"), Scope("glob", "a/*/c/*.py"), [], True),
        (Scope("file", "a/b/x/d.py"), Scope("glob", "a/*/c/*.py"), [], False),
        (Scope("glob", "a/b/c/*.py"), Scope("dir", "a/b"), [], True),  # matches live under a/b whatever exists
        (Scope("dir", "a/b/c/e"), Scope("glob", "a/b/*/e/*.py"), ["a/b/c/e/f.py"], True),
        (Scope("dir", "a/b/c/e"), Scope("glob", "a/b/*/e/*.py"), ["a/b/d/e/f.py"], False),
        (Scope("glob", "a/*.py"), Scope("glob", "a/*.py"), [], True),
        (Scope("glob", "a/*.py"), Scope("glob", "*/x.*"), ["a/x.py"], True),
        (Scope("glob", "a/*.py"), Scope("glob", "*/x.*"), ["a/x.md", "b/x.py"], False),
    ],
)
def test_pairwise_rule(a: Scope, b: Scope, universe: list[str], overlap: bool) -> None:
    assert scopes_overlap(a, b, universe) is overlap
    assert scopes_overlap(b, a, universe) is overlap


def test_the_more_specific_label_names_what_is_shared() -> None:
    result = find_overlaps({"d": ["a/"], "f": ["a/b/c/d.py"], "g": ["a/b/c/*.py"]}, ["a/b/c/d.py"])
    assert result == {("d", "f"): ["a/b/c/d.py"], ("d", "g"): ["a/b/c/*.py", "a/b/c/d.py"], ("f", "g"): ["a/b/c/d.py"]}


def test_labels_are_not_repeated_and_stop_at_three() -> None:
    result = find_overlaps({"a": ["x.py", "./x.py", "y.py", "z.py", "w.py"], "b": ["w.py", "z.py", "y.py", "x.py"]}, [])
    assert result == {("a", "b"): ["x.py", "y.py", "z.py"]}


def test_glob_against_directories_at_every_level_of_its_fixed_part() -> None:
    scopes = {"g": ["a/b/c/*.py"], "root": ["./"], "a": ["a/"], "ab": ["a/b/"], "abc": ["a/b/c/"], "abd": ["a/b/d/"],
              "deeper": ["a/b/c/e/"]}
    result = find_overlaps(scopes, ["a/b/c/e/f.py"])
    assert {pair for pair in result if "g" in pair} == {("g", "root"), ("g", "a"), ("g", "ab"), ("g", "abc")}
    assert result[("g", "abc")] == ["a/b/c/*.py"]


def test_a_glob_with_no_fixed_directory_meets_only_the_root() -> None:
    result = find_overlaps({"g": ["*.md"], "root": ["./"], "docs": ["docs/"]}, ["docs/a.md"])
    assert set(result) == {("g", "root"), ("root", "docs")}


def test_glob_expansion_scans_only_its_literal_prefix() -> None:
    tracked = ["src/a1.py", "src/a2.py", "src/b.py", "src/a3.txt", "srcx/a.py", "sr/a.py", "src/a/z.py"]
    scopes = {"g": ["src/a*.py"]} | {f"f{i}": [path] for i, path in enumerate(tracked)}
    result = find_overlaps(scopes, tracked)
    assert {pair[1] for pair in result if pair[0] == "g"} == {"f0", "f1"}


def test_directories_meet_their_parents_three_levels_up() -> None:
    result = find_overlaps({"deep": ["a/b/c/"], "top": ["a/"], "mid": ["a/b/"], "side": ["a/c/"], "root": ["./"]}, [])
    assert set(result) == {("deep", "top"), ("deep", "mid"), ("deep", "root"), ("top", "mid"), ("top", "side"),
                           ("top", "root"), ("mid", "root"), ("side", "root")}
    assert result[("deep", "top")] == ["a/b/c/"]


def test_a_file_claimed_twice_by_one_task_is_one_claim() -> None:
    assert find_overlaps({"a": ["x.py", "x.py", "*.py"]}, ["x.py"]) == {}


def test_pairs_are_ordered_by_both_tasks_not_by_when_they_were_found() -> None:
    # (c, d) is found first (a shared file), (a, d) later (a file inside a's directory).
    result = find_overlaps({"a": ["src/"], "b": [], "c": ["x.py"], "d": ["x.py", "src/m.py"]}, [])
    assert list(result) == [("a", "d"), ("c", "d")]
