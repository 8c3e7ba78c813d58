"""`orchestrator doctor [--force]`: orphaned runs and worktrees, dirty worktrees, leftover locks and processes."""
from __future__ import annotations

import click

from orchestrator.cli.error_handler import handle_errors
from orchestrator.run.maintenance import doctor
from orchestrator.run.project import load_project


@click.command("doctor")
@click.option("--force", is_flag=True, help="Prune, unlock and stop what was left behind (never deletes a directory).")
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True)
@handle_errors
def command(force: bool, project_root: str) -> int:
    """List what runs left behind; change nothing unless --force."""
    findings = doctor(load_project(project_root), force=force)
    for finding in findings:
        mark = "fixed" if finding.fixed else "found"
        click.echo(f"{mark}: {finding.kind}: {finding.detail}")
    if not findings:
        click.echo("all clear")
    return 1 if any(not f.fixed for f in findings) else 0
