"""`orchestrator install-agent [REPO] [--force]`: the Claude Code agent files, into another repo."""
from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.error_handler import handle_errors

EPILOG = """\b
Examples:
  orchestrator install-agent ../my-service       # then in Claude Code: /agent:orchestrator-agent
  orchestrator install-agent --force             # replace locally edited copies in this repo
"""


@click.command("install-agent", epilog=EPILOG)
@click.argument("repo", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace agent files that differ from the packaged ones.")
@handle_errors
def command(repo: Path, force: bool) -> int:
    """Copy orchestrator-agent.md and workflow-manager.md into REPO/.claude/agents/ (default: this
    repository). Exits 1 when a changed file was left in place."""
    from orchestrator.agents.install import InstallAction, install_agents

    results = install_agents(repo, force=force)
    for result in results:
        click.echo(result.line)
    return 1 if any(r.action is InstallAction.REFUSED for r in results) else 0
