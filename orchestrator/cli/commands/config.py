"""`orchestrator config`: the effective run settings and where each one came from."""
from __future__ import annotations

import json

import click

from orchestrator.cli.error_handler import handle_errors

EPILOG = """\b
Examples:
  orchestrator config
  GADUGI_MAX_PARALLEL=2 orchestrator config --json
Sources, highest first: cli > env:GADUGI_<KEY> > file:.gadugi/config.toml > file:pyproject.toml
([tool.gadugi]) > default.
"""


@click.command("config", epilog=EPILOG)
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True,
              help="Any directory inside the target git repository.")
@click.option("--json", "as_json", is_flag=True, help="Print {key: {value, source}} as JSON.")
@handle_errors
def command(project_root: str, as_json: bool) -> int:
    """Print the effective settings (file, GADUGI_* environment, defaults) and their sources."""
    from orchestrator.config.settings import describe
    from orchestrator.run.project import load_project

    settings = load_project(project_root).settings
    if as_json:
        click.echo(json.dumps(settings.as_json(), indent=2))
        return 0
    rows = describe(settings)
    width = max(len(key) for key, _, _ in rows)
    value_width = min(40, max(len(value) for _, value, _ in rows))
    for key, value, source in rows:
        click.echo(f"{key:<{width}}  {value:<{value_width}}  {source}")
    return 0
