"""`orchestrator clean [RUN_ID|--all] [--branches] [--force]`: remove finished runs' worktrees, and
with --branches the branches that lose nothing by going."""
from __future__ import annotations

import click

from orchestrator.cli.error_handler import handle_errors


@click.command("clean")
@click.argument("run_id", required=False)
@click.option("--all", "all_runs", is_flag=True, help="Every finished run, not just the newest.")
@click.option("--force", is_flag=True, help="Also worktrees with uncommitted changes, after committing them to their branch; "
                                            "with --branches, also branches with unmerged work (kept under refs/gadugi/trash/).")
@click.option("--branches", is_flag=True, help="Then delete the runs' branches that are merged into their base or hold "
                                               "no commits; list the others and why they stay.")
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True)
@handle_errors
def command(run_id: str | None, all_runs: bool, force: bool, branches: bool, project_root: str) -> int:
    """Remove the worktrees of finished runs and prune stale registrations; with --branches, then
    their branches that lose nothing by going."""
    from orchestrator.run.branches import clean_branches
    from orchestrator.run.maintenance import clean_runs
    from orchestrator.run.project import load_project

    project = load_project(project_root)
    outcome = clean_runs(project, run_id, all_runs=all_runs, force=force)
    for path in outcome.removed:
        click.echo(f"removed {path}")
    for path in outcome.saved_and_removed:
        click.echo(f"committed leftovers to its branch and removed {path}")
    for path, why in outcome.kept:
        click.echo(f"kept {path}: {why}")
    if not branches:
        if not (outcome.removed or outcome.saved_and_removed or outcome.kept):
            click.echo("nothing to clean")
        return 0
    pruned = clean_branches(project, run_id, all_runs=all_runs, force=force)
    for branch, why in pruned.deleted:
        click.echo(f"deleted branch {branch}: {why}")
    for branch, ref, dropped in pruned.trashed:
        shown = ", ".join(c[:10] for c in dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        click.echo(f"deleted branch {branch} with {len(dropped)} unmerged commit(s) ({shown}); "
                   f"they stay reachable as {ref}")
    for branch, why in pruned.kept:
        click.echo(f"kept branch {branch}: {why}")
    if not (outcome.removed or outcome.saved_and_removed or outcome.kept or pruned.deleted or pruned.trashed
            or pruned.kept):
        click.echo("nothing to clean")
    return 0
