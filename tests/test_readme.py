"""The README's run-option table is the settings table written out: it cannot drift.

To rewrite it after changing a setting: `UPDATE_README=1 python -m pytest tests/test_readme.py`.
"""
from __future__ import annotations

import os
from pathlib import Path

from orchestrator.config.settings import SETTINGS, Setting

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
