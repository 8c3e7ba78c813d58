"""`orchestrator schema [NAME] [--output DIR]`: the JSON Schemas of every file the tool writes."""
from __future__ import annotations

import json
from pathlib import Path

import click

from orchestrator.cli.error_handler import handle_errors
from orchestrator.errors import InputError

EPILOG = """\b
Examples:
  orchestrator schema                        # all schemas, one JSON object keyed by name
  orchestrator schema process_registry       # one schema
  orchestrator schema --output schemas/      # one <name>.schema.json file per schema
"""


@click.command("schema", epilog=EPILOG)
@click.argument("name", required=False)
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), help="Write one file per schema here.")
@click.option("--list", "list_names", is_flag=True, help="List the schema names and the files they describe.")
@handle_errors
def command(name: str | None, output: Path | None, list_names: bool) -> int:
    """Print (or write) the JSON Schemas of the state files, journal, reports and --json output."""
    from orchestrator.observe.schema import SCHEMAS, generate_schemas, render, schema_for, write_schemas

    if list_names:
        for key, (_, where) in SCHEMAS.items():
            click.echo(f"{key:<18} {where}")
        return 0
    if name is not None and name not in SCHEMAS:
        raise InputError(f"no schema named {name!r} (known: {', '.join(SCHEMAS)})")
    if output is not None:
        if name is not None:
            raise InputError("--output writes every schema; leave out NAME")
        for path in write_schemas(output):
            click.echo(str(path))
        return 0
    if name is not None:
        click.echo(render(schema_for(name)), nl=False)
    else:
        click.echo(json.dumps(generate_schemas(), indent=2, sort_keys=True))
    return 0
