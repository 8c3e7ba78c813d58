from __future__ import annotations

from pathlib import Path

import pytest
from orchestrator.errors import InputError
from orchestrator.models import TaskSpec
from orchestrator.plan.prompts import MAX_PROMPT_BYTES, parse_prompt, sanitize_id

TRACKED = frozenset({"app.py", "src/app.py", "src/util.py", "src/pkg/mod.py", "README.md", "docs/guide.md"})


def load_prompt(path: Path, index: int, tracked: frozenset[str] | set[str]) -> TaskSpec:
    return parse_prompt(path, index, tracked).spec


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, name: str = "task.md", tracked: frozenset[str] = TRACKED) -> TaskSpec:
    return load_prompt(write(tmp_path, name, text), 0, tracked)


FULL = """---
id: add-login
title: Add the login page
depends_on: [schema.md, "auth"]
files:
  - src/app.py
  - src/pkg
  - "tests/**/test_login*.py"
conflicts_with: ui-refresh
priority: 2
agent: claude
model: sonnet
timeout: 90m
max_turns: 40
verify: pytest -q tests/test_login.py
issue_number: 12
created_by: prompt-writer
date: 2025-08-01
description: ignored
---
# Something else

Edit README.md as well.
"""


def test_front_matter_fields(tmp_path: Path) -> None:
    spec = load(tmp_path, FULL)
    assert spec.id == "add-login"
    assert spec.title == "Add the login page"
    assert spec.depends_on == ["schema.md", "auth"]
    assert spec.files == ["src/app.py", "src/pkg/", "tests/**/test_login*.py", "README.md"]
    assert spec.conflicts_with == ["ui-refresh"]
    assert (spec.priority, spec.agent, spec.model) == (2, "claude", "sonnet")
    assert spec.timeout_seconds == 5400
    assert spec.max_turns == 40
    assert spec.verify == "pytest -q tests/test_login.py"
    assert spec.skip_reason is None
    assert spec.prompt_text == FULL
    assert spec.index == 0


def test_defaults_without_front_matter(tmp_path: Path) -> None:
    spec = load(tmp_path, "Just do the thing.\n", name="fix-cache.md")
    assert spec.id == "fix-cache"
    assert spec.title == "Just do the thing."
    assert spec.priority == 5
    assert spec.depends_on == spec.files == spec.conflicts_with == []
    assert spec.timeout_seconds is None and spec.max_turns is None and spec.verify is None


def test_bare_number_timeout_is_hours(tmp_path: Path) -> None:
    assert load(tmp_path, "---\ntimeout: 3\n---\nbody\n").timeout_seconds == 3 * 3600


def test_single_string_depends_on(tmp_path: Path) -> None:
    assert load(tmp_path, "---\ndepends_on: other.md\n---\nbody\n").depends_on == ["other.md"]


def test_front_matter_body_only_separated_by_dots(tmp_path: Path) -> None:
    assert load(tmp_path, "---\ntitle: T\n...\nbody\n").title == "T"


@pytest.mark.parametrize(
    ("body", "title"),
    [
        ("```\n# not a title\n```\n\n# Real Title #\n", "Real Title"),
        ("\n\n   First line of prose that is quite long and keeps going well past sixty characters\n",
         "First line of prose that is quite long and keeps going well"),
        ("#hashtag is not a heading\n", "#hashtag is not a heading"),
    ],
)
def test_title_inference(tmp_path: Path, body: str, title: str) -> None:
    assert load(tmp_path, body).title == title


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("add-login", "add-login"),
        ("Add Login Page", "Add-Login-Page"),
        ("fix: `rm -rf /`; $(evil) && ok", "fix-rm-rf-evil-ok"),
        ("../../etc/passwd", "etc-passwd"),
        ("a..b", "a.b"),
        ("café crème", "cafe-creme"),
        ("日本語", "task"),
        ("...---", "task"),
        ("x" * 100, "x" * 60),
        ("v1.2_final", "v1.2_final"),
    ],
)
def test_sanitize_id(raw: str, expected: str) -> None:
    assert sanitize_id(raw) == expected


def test_front_matter_id_is_sanitised_and_title_kept(tmp_path: Path) -> None:
    spec = load(tmp_path, "---\nid: \"Fix 'the' bug!\"\n---\nbody\n")
    assert spec.id == "Fix-the-bug"
    assert spec.title == "body"


def test_numeric_id(tmp_path: Path) -> None:
    assert load(tmp_path, "---\nid: 42\n---\nbody\n").id == "42"


def test_files_section(tmp_path: Path) -> None:
    text = """# T

## Target Files
- `src/new_module.py` (new)
- src/pkg — the package
* docs/
- lib/*.py
- Anything else mentioned below
  1. `__init__.py`

### Notes
- still-in-section.py

## Other
- not/a/scope.py
"""
    spec = load(tmp_path, text)
    assert spec.files == ["src/new_module.py", "src/pkg/", "docs/", "lib/*.py", "__init__.py", "still-in-section.py"]


def test_files_heading_case_and_level(tmp_path: Path) -> None:
    spec = load(tmp_path, "#### FILES:\n- a/b.txt\n")
    assert spec.files == ["a/b.txt"]


def test_paths_in_text_are_matched_on_word_boundaries(tmp_path: Path) -> None:
    text = """# T
Fix myapp.py and src/app.py.bak, not xsrc/util.py; see `app.py`.
Also (src/util.py), "docs/guide.md", [link](src/pkg/mod.py) and README.md.
Line refs like src/app.py:42 count too. Mentioning src or app alone does not.
"""
    spec = load(tmp_path, text)
    assert spec.files == ["app.py", "src/util.py", "docs/guide.md", "src/pkg/mod.py", "README.md", "src/app.py"]


def test_paths_in_front_matter_are_not_scanned(tmp_path: Path) -> None:
    spec = load(tmp_path, "---\ndescription: touches README.md\n---\nbody\n")
    assert spec.files == []


def test_scopes_are_deduplicated_in_order(tmp_path: Path) -> None:
    spec = load(tmp_path, "---\nfiles: [./README.md, src/]\n---\n## Files\n- README.md\n- src\n\nsee README.md\n")
    assert spec.files == ["README.md", "src/"]


def test_out_of_repo_scopes_are_dropped(tmp_path: Path) -> None:
    assert load(tmp_path, "---\nfiles: [/etc/passwd, ../x.py, ok.py]\n---\nbody\n").files == ["ok.py"]


@pytest.mark.parametrize(
    "line",
    [
        "Depends on: other.md",
        "depends on: other",
        "Depends-on: other",
        "- **Depends on**: `other.md`",
        "* **Depends on:** other.md (needs its schema)",
        "DEPENDS ON : 'other.md'",
    ],
)
def test_depends_on_lines(tmp_path: Path, line: str) -> None:
    expected = ["other.md"] if "md" in line else ["other"]
    assert load(tmp_path, f"# T\n\n{line}\n").depends_on == expected


def test_depends_on_lists_and_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "t.md", "---\ndepends_on: [a.md]\n---\nDepends on: a.md, b.md and `c.md`\nDepends on: none\n")
    loaded = parse_prompt(path, 0, TRACKED)
    assert loaded.spec.depends_on == ["a.md", "b.md", "c.md"]
    assert loaded.dependency_sources == {
        "a.md": "front matter depends_on",
        "b.md": "Depends on: line",
        "c.md": "Depends on: line",
    }


@pytest.mark.parametrize(
    "text",
    [
        "This depends on the database being up.\n",
        "It requires auth.md first, after schema.md.\n",
        "```\nDepends on: inside-a-fence.md\n```\n",
        "The task depends on: nothing in particular\n",
    ],
)
def test_prose_is_never_a_dependency(tmp_path: Path, text: str) -> None:
    assert load(tmp_path, "# T\n" + text).depends_on == []


def test_depends_line_is_not_a_file_scope(tmp_path: Path) -> None:
    assert load(tmp_path, "# T\nDepends on: README.md\n").files == []


@pytest.mark.parametrize("status", ["done", "Completed", "IMPLEMENTED"])
def test_done_by_front_matter(tmp_path: Path, status: str) -> None:
    spec = load(tmp_path, f"---\nstatus: {status}\n---\n# T\n")
    assert spec.skip_reason is not None and "front matter" in spec.skip_reason


def test_status_other_than_done_runs(tmp_path: Path) -> None:
    assert load(tmp_path, "---\nstatus: todo\n---\n# T\n").skip_reason is None


@pytest.mark.parametrize(
    "line",
    ["IMPLEMENTED", "# COMPLETED: login page", "> ✅ IMPLEMENTED in #123", "**Status**: COMPLETED", "- Status: IMPLEMENTED"],
)
def test_done_marker_lines(tmp_path: Path, line: str) -> None:
    spec = load(tmp_path, f"---\ntitle: T\n---\n# T\n\n{line}\n")
    assert spec.skip_reason is not None
    assert "line 6" in spec.skip_reason


@pytest.mark.parametrize(
    "line",
    [
        "Completed tasks are archived nightly.",
        "Status: implemented soon",
        "The feature was IMPLEMENTED badly before.",
        "NOT_IMPLEMENTED yet",
        "```\nCOMPLETED\n```",
        "IMPLEMENTEDLY",
    ],
)
def test_prose_is_not_a_done_marker(tmp_path: Path, line: str) -> None:
    assert load(tmp_path, f"# T\n\n{line}\n").skip_reason is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  \n\t\n", "empty"),
        ("---\ntitle: x\n---\n\n  \n", "no text after its front matter"),
        ("---\ntitle: [unclosed\n---\nbody\n", "malformed YAML front matter at line 2"),
        ("---\ntitle: ok\nfiles: [a,\n  b: c\n---\nbody\n", "malformed YAML front matter at line"),
        ("---\n- a\n- b\n---\nbody\n", "must be a mapping"),
        ("---\ntitle: x\nbody without end\n", "never closed"),
        ("---\npriority: 0\n---\nbody\n", "'priority'"),
        ("---\npriority: 10\n---\nbody\n", "'priority'"),
        ("---\npriority: high\n---\nbody\n", "'priority'"),
        ("---\npriority: true\n---\nbody\n", "'priority'"),
        ("---\nmax_turns: 0\n---\nbody\n", "'max_turns'"),
        ("---\nmax_turns: 2.5\n---\nbody\n", "'max_turns'"),
        ("---\ntimeout: soon\n---\nbody\n", "timeout"),
        ("---\ntimeout: [1]\n---\nbody\n", "'timeout'"),
        ("---\nfiles: {a: 1}\n---\nbody\n", "'files'"),
        ("---\ndepends_on: [[a]]\n---\nbody\n", "'depends_on'"),
        ("---\ntitle: {a: 1}\n---\nbody\n", "'title'"),
        ("---\nverify: [a]\n---\nbody\n", "'verify'"),
    ],
)
def test_bad_input(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.md", text)
    with pytest.raises(InputError) as info:
        load_prompt(path, 0, TRACKED)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_yaml_error_reports_file_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at line 3"):
        load(tmp_path, "---\ntitle: ok\nbad: [x\n---\nbody\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_prompt(tmp_path / "nope.md", 0, TRACKED)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        load_prompt(tmp_path, 0, TRACKED)


def test_binary_nul(tmp_path: Path) -> None:
    path = tmp_path / "b.md"
    path.write_bytes(b"# T\x00\x01\x02")
    with pytest.raises(InputError, match="binary"):
        load_prompt(path, 0, TRACKED)


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "b.md"
    path.write_bytes(b"# caf\xe9\n")
    with pytest.raises(InputError, match="UTF-8"):
        load_prompt(path, 0, TRACKED)


def test_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.md"
    path.write_text("# T\n" + "x" * MAX_PROMPT_BYTES)
    with pytest.raises(InputError, match="limit"):
        load_prompt(path, 0, TRACKED)


def test_utf8_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "w.md"
    path.write_bytes("\ufeff---\r\nid: win\r\n---\r\n# Windows \u00e9\r\nsee README.md\r\n".encode())
    spec = load_prompt(path, 3, TRACKED)
    assert (spec.id, spec.title, spec.files, spec.index) == ("win", "Windows \u00e9", ["README.md"], 3)
