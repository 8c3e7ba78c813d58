"""`orchestrator status [RUN_ID] [--watch] [--json]`: the live table, from another terminal."""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import click

from orchestrator.cli.error_handler import handle_errors

if TYPE_CHECKING:
    from rich.console import Console

    from orchestrator.observe.status import RunView

WATCH_INTERVAL = 1.0
EPILOG = """\b
Examples:
  orchestrator status                      # the latest run
  orchestrator status --watch              # redraw every second until the run ends
  orchestrator status orchestration-20250101-120000-ab12 --json
"""


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # a seam: tests replace it to advance the run instead of waiting


def _over(view: RunView) -> bool:
    """Nothing more will change: the run finished, or its orchestrator is gone."""
    return view.finished or view.orphaned


def _finish(console: Console, view: RunView, watch: bool) -> int:
    """Say why nothing moves any more, if the orchestrator is gone, and pick the exit code."""
    from rich.text import Text

    notice = view.notice()
    if notice is not None:
        # soft_wrap: one line, never cut at the console width, so the resume command pastes whole.
        console.print(Text(notice, style="bold red"), soft_wrap=True)
    # A watcher (a script waiting for the run) must not take an abandoned run for a finished one.
    return 1 if watch and view.orphaned else 0


@click.command("status", epilog=EPILOG)
@click.argument("run_id", required=False)
@click.option("--watch", is_flag=True,
              help="Redraw every second until the run finishes (exit 0) or its orchestrator is gone (exit 1).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with --watch: one object per line).")
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True,
              help="Any directory inside the target git repository.")
@click.option("--monitoring-dir", type=click.Path(file_okay=False, path_type=str),
              help="Where the registry JSON is (default: .gadugi/monitoring).")
@handle_errors
def command(run_id: str | None, watch: bool, as_json: bool, project_root: str, monitoring_dir: str | None) -> int:
    """Show each task of a run (default: the latest): status, phase, attempt, elapsed, cost.

    A run whose orchestrator died is reported as such, with the command that continues it."""
    # The table's imports (rich, the live view) wait until a table is drawn: an editor polls `--json`.
    from orchestrator.observe.status import load_run
    from orchestrator.run.project import load_project

    project = load_project(project_root, {"monitoring_dir": monitoring_dir} if monitoring_dir else {})
    # Resolved once: --watch follows this run even if another one starts meanwhile.
    run = project.find_run(run_id or None)

    def load() -> RunView:
        return load_run(run.monitoring_dir, run.run_id, runs_dir=run.run_dir.parent)

    view = load()
    if as_json:
        click.echo(json.dumps(view.to_json(), indent=None if watch else 2))
        while watch and not _over(view):
            _sleep(WATCH_INTERVAL)
            view = load()
            click.echo(json.dumps(view.to_json()))
        if not watch:
            return 0
        from rich.console import Console

        # The JSON has the fields; a watch also says on stderr why it stopped (stdout stays JSON).
        return _finish(Console(stderr=True), view, watch)
    from rich.console import Console
    from rich.live import Live

    from orchestrator.observe.live import render_view, summary_line

    console = Console()
    if not watch or _over(view):
        console.print(render_view(view, width=console.width))
        return _finish(console, view, watch)
    try:
        if console.is_terminal:
            with Live(render_view(view, width=console.width), console=console, auto_refresh=False) as live:
                while not _over(view):
                    _sleep(WATCH_INTERVAL)
                    view = load()
                    live.update(render_view(view, width=console.width), refresh=True)
        else:
            # No redrawing on a pipe: one progress line whenever the counts change, the table at the end.
            last = None
            while not _over(view):
                counts = view.progress.counts
                if counts != last:
                    console.print(summary_line(view))
                    last = dict(counts)
                _sleep(WATCH_INTERVAL)
                view = load()
            console.print(render_view(view, width=console.width))
    except KeyboardInterrupt:  # the usual way out of --watch, not an error
        return 0
    return _finish(console, view, watch)
