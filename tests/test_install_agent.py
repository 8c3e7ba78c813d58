"""`orchestrator install-agent`: packaged agent files into another repository, never clobbering."""
from __future__ import annotations

import re
import shlex
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from orchestrator.agents.install import (
    AGENT_FILES,
    InstallAction,
    install_agents,
    installed_agent,
    launcher,
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
        assert (repo / ".claude" / "agents" / name).read_text(encoding="utf-8") == installed_agent(name, launcher())
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
    assert (repo / ".claude/agents/workflow-manager.md").read_text() == installed_agent("workflow-manager.md", launcher())


def test_core_returns_data_and_rejects_non_repositories(tmp_path: Path, make_repo: Callable[..., Path]) -> None:
    results = install_agents(make_repo())
    assert [r.action for r in results] == [InstallAction.CREATED, InstallAction.CREATED]
    with pytest.raises(InputError, match="not a git repository"):
        install_agents(tmp_path / "missing")
    result = CliRunner().invoke(cli(), ["install-agent", str(tmp_path)])
    assert result.exit_code == 1 and "error:" in result.output


def test_the_installed_agent_runs_this_orchestrator_in_another_repository(make_repo: Callable[..., Path]) -> None:
    """The agent's own commands, run as Claude Code would run them, in a fresh repository that has
    no run_orchestrator.sh."""
    repo = make_repo({"prompts/a.md": "# Task A\nDo it.\n", "prompts/b.md": "# Task B\nDo b.\n"})
    install_agents(repo)
    text = (repo / ".claude/agents/orchestrator-agent.md").read_text(encoding="utf-8")
    assert "./run_orchestrator.sh" not in text
    # The code blocks sit in a numbered list; as markdown, their indentation is not part of them.
    blocks = [textwrap.dedent(b) for b in re.findall(r"^ *```bash\n(.*?)^ *```", text, re.DOTALL | re.MULTILINE)]
    [plan_step] = [b for b in blocks if " plan --stdin" in b]
    script = plan_step.replace("<the user's list, one per line>", "a.md\nprompts/b.md")
    proc = subprocess.run(["bash", "-c", script], cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Plan: 2 task(s)") and "gadugi/b" in proc.stdout


def test_launcher_prefers_this_installation() -> None:
    command = launcher()
    assert command == "orchestrator" or Path(shlex.split(command)[0]).exists()
    assert "orchestrator" in command
