"""`orchestrator clean [RUN_ID|--all] [--force]`: remove finished runs' worktrees, keep branches."""
from __future__ import annotations

import click

from orchestrator.cli.error_handler import handle_errors
from orchestrator.run.maintenance import clean_runs
from orchestrator.run.project import load_project


@click.command("clean")
@click.argument("run_id", required=False)
@click.option("--all", "all_runs", is_flag=True, help="Every finished run, not just the newest.")
@click.option("--force", is_flag=True, help="Also worktrees with uncommitted changes, after committing them to their branch.")
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True)
@handle_errors
def command(run_id: str | None, all_runs: bool, force: bool, project_root: str) -> int:
    """Remove the worktrees of finished runs (branches stay) and prune stale registrations."""
    outcome = clean_runs(load_project(project_root), run_id, all_runs=all_runs, force=force)
    for path in outcome.removed:
        click.echo(f"removed {path}")
    for path in outcome.saved_and_removed:
        click.echo(f"committed leftovers to its branch and removed {path}")
    for path, why in outcome.kept:
        click.echo(f"kept {path}: {why}")
    if not (outcome.removed or outcome.saved_and_removed or outcome.kept):
        click.echo("nothing to clean")
    return 0
