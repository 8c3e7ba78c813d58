"""Front matter keys: a misspelled key is a one-line error with a did-you-mean, never dropped."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from orchestrator.cli.main import main
from orchestrator.errors import InputError
from orchestrator.models import TaskSpec
from orchestrator.plan.front_matter import FrontMatter
from orchestrator.plan.prompts import parse_prompt

from conftest import MakeRepo


def load(tmp_path: Path, front_matter: str) -> TaskSpec:
    path = tmp_path / "prompts" / "x.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{front_matter}---\n# X\nDo it.\n")
    return parse_prompt(path, 0, frozenset()).spec


def error_of(tmp_path: Path, front_matter: str) -> str:
    with pytest.raises(InputError) as info:
        load(tmp_path, front_matter)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("key", "meant"),
    [("dependson", "depends_on"), ("file", "files"), ("depends-on", "depends_on"), ("Depends On", "depends_on"),
     ("conflicts-with", "conflicts_with"), ("maxturns", "max_turns"), ("priorty", "priority")],
)
def test_misspelled_key_names_the_file_the_key_and_the_right_key(tmp_path: Path, key: str, meant: str) -> None:
    message = error_of(tmp_path, f"{key}: [other.md]\n")
    path = tmp_path / "prompts" / "x.md"
    assert message == f"{path}: unknown front-matter key '{key}' (did you mean '{meant}'?)"


def test_unknown_key_without_a_close_one_lists_the_accepted_keys(tmp_path: Path) -> None:
    message = error_of(tmp_path, "colour: blue\n")
    assert "unknown front-matter key 'colour' (accepted: id, title, depends_on, files," in message
    assert all(key in message for key in FrontMatter.model_fields)


def test_a_key_yaml_reads_as_a_boolean_is_unknown(tmp_path: Path) -> None:
    assert "unknown front-matter key 'True'" in error_of(tmp_path, "on: push\n")


def test_wrong_type_is_one_line_naming_what_is_accepted(tmp_path: Path) -> None:
    message = error_of(tmp_path, "priority: [1, 2]\n")
    path = tmp_path / "prompts" / "x.md"
    assert message == f"{path}: front matter 'priority' must be an integer from 1 (first) to 9, got [1, 2]"


def test_every_problem_is_on_the_one_line_misspelling_first(tmp_path: Path) -> None:
    message = error_of(tmp_path, "timeout: 0\ndependson: a\n")
    assert message.index("'dependson' (did you mean 'depends_on'?)") < message.index("front matter 'timeout' must be")


def test_keys_that_are_fine(tmp_path: Path) -> None:
    spec = load(tmp_path, "depends_on: other.md\nfiles: src/\nmax_turns: 3\ntimeout: 90s\nstatus: todo\n")
    assert (spec.depends_on, spec.files, spec.max_turns, spec.timeout_seconds) == (["other.md"], ["src/"], 3, 90)


def test_keys_of_prompt_writer_and_ccpm_files_are_accepted_and_unused(tmp_path: Path) -> None:
    spec = load(tmp_path, "issue_number: 12\ncreated_by: prompt-writer\ndate: 2025-08-01\ndescription: d\n"
                          "name: N\ncreated: 2025-08-01T10:00:00Z\nupdated: x\ngithub: https://x/1\nparallel: true\n")
    assert (spec.id, spec.title, spec.depends_on) == ("x", "X", [])


def test_cli_plan_with_a_misspelled_key_fails_with_one_line_and_creates_nothing(
    make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo({"README.md": "# r\n", "prompts/y.md": "# Y\n",
                      "prompts/x.md": "---\ndependson: [y]\n---\n# X\nDo it after y.\n"})
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(main, ["plan", "x.md", "y.md"], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {repo.resolve() / 'prompts' / 'x.md'}: unknown front-matter key 'dependson' "
                     "(did you mean 'depends_on'?)"]
    assert not (repo / ".worktrees").exists() and not (repo / ".gadugi").exists()
