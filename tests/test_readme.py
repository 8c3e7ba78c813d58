"""The README stays true: its option table is the settings table written out, its Python example
runs, and its command list names only commands and options that exist.

To rewrite it after changing a setting: `UPDATE_README=1 python -m pytest tests/test_readme.py`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from orchestrator.config.settings import SETTINGS, Setting

from conftest import git

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- run options: generated from orchestrator/config/settings.py (tests/test_readme.py) -->"
END = "<!-- end of run options -->"


def _option_cell(setting: Setting) -> str:
    if setting.type.shape == "switch":
        name = setting.flag.removeprefix("--")
        return f"`--{name}` / `--no-{name}`"
    metavar = setting.metavar or setting.type.metavar
    spelled = f"`{setting.flag} {metavar}`".replace("|", "\\|")
    return ", ".join([spelled, *(f"`{flag}`" for flag, _, _ in setting.shortcuts)])


def options_table() -> str:
    rows = ["| option | default | what it does |", "|---|---|---|"]
    for setting in SETTINGS:
        help_text = setting.help.replace("|", "\\|")
        for flag, value, _ in setting.shortcuts:
            help_text += f"; `{flag}` = {value}"
        rows.append(f"| {_option_cell(setting)} | {setting.shown_default()} | {help_text} |")
    return "\n".join(rows)


def test_readme_option_table_is_the_settings_table() -> None:
    text = README.read_text(encoding="utf-8")
    before, _, rest = text.partition(BEGIN + "\n")
    table, found_end, after = rest.partition(END)
    assert found_end, f"README.md lacks the markers {BEGIN!r} ... {END!r}"
    expected = options_table() + "\n"
    if os.environ.get("UPDATE_README") and table != expected:
        README.write_text(before + BEGIN + "\n" + expected + END + after, encoding="utf-8")
        return
    assert table == expected, "README's option table drifted; rerun with UPDATE_README=1 to rewrite it"


def test_every_option_is_in_the_table_once() -> None:
    table = options_table()
    for setting in SETTINGS:
        spelled = f"`{setting.flag}`" if setting.type.shape == "switch" else f"`{setting.flag} "
        assert table.count(spelled) == 1, setting.key


def _blocks(language: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def test_the_python_example_runs(make_repo, path_with: str) -> None:
    """The README's Python example, as a user would paste it, in a repository with that prompt."""
    [example] = _blocks("python")
    repo = make_repo({"prompts/a.md": "# Task A\nfake-claude: commit\n"})
    env = dict(os.environ, PATH=path_with)
    proc = subprocess.run([sys.executable, "-c", example], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    successful, speedup = proc.stdout.split()
    assert successful == "1" and float(speedup) > 0
    assert git(repo, "log", "--format=%s", "gadugi/a").count("\n") >= 1  # the agent's commit is on the branch


def test_every_command_in_the_command_list_exists_with_its_options() -> None:
    """`orchestrator X [--flag]` lines in the README: X is a subcommand and takes each --flag shown."""
    from click.testing import CliRunner
    from orchestrator.cli.main import main

    commands = [b for b in _blocks("bash") if "orchestrator status" in b]
    assert commands, "the README's command list is gone"
    checked = 0
    for line in commands[0].splitlines():
        words = line.split("#")[0].split()
        if "orchestrator" not in words:
            continue
        sub = words[words.index("orchestrator") + 1]
        help_text = CliRunner().invoke(main, [sub, "--help"]).output
        assert help_text.startswith(f"Usage: main {sub}"), line
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-o)\b", line.split("#")[0]):
            assert re.search(rf"(?<![\w-]){flag}\b", help_text), f"{sub} has no {flag}: {line}"
            checked += 1
    assert checked >= 15
