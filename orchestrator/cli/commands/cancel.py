"""`orchestrator cancel TASK_ID... | --all`: stop tasks of the active run; the rest carry on."""
from __future__ import annotations

import click

from orchestrator.cli.error_handler import handle_errors
from orchestrator.errors import InputError


@click.command("cancel")
@click.argument("task_ids", nargs=-1)
@click.option("--all", "all_tasks", is_flag=True, help="Cancel every task of the run.")
@click.option("--run", "run_id", metavar="RUN_ID", help="The run (default: the latest).")
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True)
@handle_errors
def command(task_ids: tuple[str, ...], all_tasks: bool, run_id: str | None, project_root: str) -> int:
    """Stop running tasks gracefully (SIGINT, SIGTERM, SIGKILL to the agent) and dequeue queued ones."""
    from orchestrator.run.maintenance import request_cancel
    from orchestrator.run.project import load_project

    if not task_ids and not all_tasks:
        raise InputError("name the task ids to cancel, or pass --all")
    run = load_project(project_root).find_run(run_id)
    cancelled = request_cancel(run, list(task_ids), all_tasks=all_tasks)
    click.echo(f"cancel requested in run {run.run_id}: {', '.join(cancelled)}")
    return 0
