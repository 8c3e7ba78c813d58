"""`orchestrator export [RUN_ID] [--output FILE]`: registry, stats and results in one JSON."""
from __future__ import annotations

import json
from pathlib import Path

import click

from orchestrator.cli.error_handler import handle_errors


@click.command("export")
@click.argument("run_id", required=False)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True)
@handle_errors
def command(run_id: str | None, output: Path | None, project_root: str) -> int:
    """Write one JSON with the run's registry, stats and per-task results."""
    from orchestrator.run.maintenance import export_run
    from orchestrator.run.project import load_project
    from orchestrator.state.atomic import write_text_atomic

    run = load_project(project_root).find_run(run_id)
    data = json.dumps(export_run(run), indent=2)
    if output is None:
        click.echo(data)
    else:
        write_text_atomic(output, data + "\n")
        click.echo(f"wrote {output}", err=True)
    return 0
