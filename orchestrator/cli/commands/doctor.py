"""`orchestrator doctor [--force]`: orphaned runs and worktrees, dirty worktrees, leftover locks and processes."""
from __future__ import annotations

import os

import click

from orchestrator.cli.error_handler import handle_errors


@click.command("doctor")
@click.option("--force", is_flag=True, help="Prune, unlock and stop what was left behind (never deletes a directory).")
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True)
@handle_errors
def command(force: bool, project_root: str) -> int:
    """List what runs left behind; change nothing unless --force."""
    from orchestrator.config.machine import parse_max_parallel
    from orchestrator.run.maintenance import claude_advice, doctor
    from orchestrator.run.project import load_project

    project = load_project(project_root)
    findings = doctor(project, force=force)
    for finding in findings:
        mark = "fixed" if finding.fixed else "found"
        click.echo(f"{mark}: {finding.kind}: {finding.detail}")
    # Advice for the next run, from the options it would get; it does not change the exit code.
    settings = project.settings
    parallel = 1 if settings["agent"] != "claude" or settings["agent_cmd"] else parse_max_parallel(str(settings["max_parallel"]))
    for note in claude_advice(project.root, os.environ, parallel=parallel, mcp=settings["mcp"]):
        click.echo(f"warning: {note}")
    if not findings:
        click.echo("all clear")
    return 1 if any(not f.fixed for f in findings) else 0
