"""`orchestrator install-agent`: packaged agent files into another repository, never clobbering."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from orchestrator.agents.install import (
    AGENT_FILES,
    InstallAction,
    install_agents,
    packaged_agent,
)
from orchestrator.cli.commands.install_agent import command
from orchestrator.errors import InputError

PROJECT = Path(__file__).resolve().parent.parent


def cli() -> click.Group:
    group = click.Group("orchestrator")
    group.add_command(command)
    return group


@pytest.mark.parametrize("name", AGENT_FILES)
def test_packaged_copies_match_the_repositorys_agent_files(name: str) -> None:
    # The package ships copies (so an installed wheel has them); edit .claude/agents/ and copy.
    source = (PROJECT / ".claude" / "agents" / name).read_text(encoding="utf-8")
    assert packaged_agent(name) == source, f"orchestrator/data/agents/{name} drifted from .claude/agents/{name}"
    assert source.startswith("---\nname: ") and "\ndescription: " in source


def test_install_then_reinstall_is_a_no_op(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"README.md": "x\n"})
    first = CliRunner().invoke(cli(), ["install-agent", str(repo)])
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [f"created  {repo / '.claude/agents' / n}" for n in AGENT_FILES]
    for name in AGENT_FILES:
        assert (repo / ".claude" / "agents" / name).read_text(encoding="utf-8") == packaged_agent(name)
    again = CliRunner().invoke(cli(), ["install-agent", str(repo / ".claude")])  # any dir inside the repo
    assert again.exit_code == 0 and again.output.count("unchanged") == 2


def test_changed_file_is_refused_without_force(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({".claude/agents/workflow-manager.md": "my own version\n"})
    result = CliRunner().invoke(cli(), ["install-agent", str(repo)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("created ") and lines[1].startswith("refused ") and "--force" in lines[1]
    assert (repo / ".claude/agents/workflow-manager.md").read_text() == "my own version\n"

    forced = CliRunner().invoke(cli(), ["install-agent", str(repo), "--force"])
    assert forced.exit_code == 0 and forced.output.splitlines()[1].startswith("replaced ")
    assert (repo / ".claude/agents/workflow-manager.md").read_text() == packaged_agent("workflow-manager.md")


def test_core_returns_data_and_rejects_non_repositories(tmp_path: Path, make_repo: Callable[..., Path]) -> None:
    results = install_agents(make_repo())
    assert [r.action for r in results] == [InstallAction.CREATED, InstallAction.CREATED]
    with pytest.raises(InputError, match="not a git repository"):
        install_agents(tmp_path / "missing")
    result = CliRunner().invoke(cli(), ["install-agent", str(tmp_path)])
    assert result.exit_code == 1 and "error:" in result.output
