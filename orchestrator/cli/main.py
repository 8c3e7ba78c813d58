"""The command line: parse and validate, build a config, call the core, print. Nothing else."""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from orchestrator.cli.commands import cancel as cancel_cmd
from orchestrator.cli.commands import clean as clean_cmd
from orchestrator.cli.commands import config as config_cmd
from orchestrator.cli.commands import doctor as doctor_cmd
from orchestrator.cli.commands import export as export_cmd
from orchestrator.cli.commands import install_agent as install_agent_cmd
from orchestrator.cli.commands import integrate as integrate_cmd
from orchestrator.cli.commands import merge_check as merge_check_cmd
from orchestrator.cli.commands import schema as schema_cmd
from orchestrator.cli.commands import status as status_cmd
from orchestrator.cli.error_handler import handle_errors
from orchestrator.cli.options import agent_options, prompt_inputs, run_options
from orchestrator.errors import InputError, OrchestratorError, closest
from orchestrator.version import __version__

if TYPE_CHECKING:
    from orchestrator.config.model import OrchestrationConfig
    from orchestrator.config.settings import ResolvedSettings
    from orchestrator.models import OrchestrationResult
    from orchestrator.observe import live

EPILOG = """\b
Examples:
  orchestrator run prompts/add-login.md prompts/fix-cache.md --max-parallel 3
  orchestrator plan prompts/*.md            # what would run, in which order, and why
  echo "Execute these prompts: a.md, b.md" | orchestrator run --stdin
  orchestrator status --watch               # from another terminal
  orchestrator resume                       # after the orchestrator was killed
"""


class DefaultRunGroup(click.Group):
    """`orchestrator a.md b.md` means `orchestrator run a.md b.md`, as run_orchestrator.sh does."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            _refuse_misspelled_command(args[0], list(self.commands))
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _refuse_misspelled_command(word: str, commands: list[str]) -> None:
    """`orchestrator staus` is a typo of `status`, not a prompt called staus, unless such a
    prompt exists: then it runs, as `orchestrator a.md` does."""
    from orchestrator.gitops import git
    from orchestrator.plan.inputs import resolve_prompt_paths

    match = closest(word, commands)
    if match is None or word.startswith("-"):
        return
    try:
        resolve_prompt_paths([word], cwd=Path.cwd(), project_root=git.toplevel(Path.cwd()))
    except OrchestratorError:
        raise click.UsageError(f"no such command {word!r} (did you mean {match!r}?)") from None


@click.group(cls=DefaultRunGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orchestrator")
def main() -> None:
    """Run AI coding agents in parallel, one git worktree and branch per prompt file."""


def _prompt_paths(prompts: tuple[str, ...], from_stdin: bool, interactive: bool, project_root: Path) -> list[Path]:
    from orchestrator.plan.inputs import parse_prompt_list, resolve_prompt_paths

    names = list(prompts)
    if from_stdin:
        names += parse_prompt_list(sys.stdin.read())
    if interactive:
        click.echo("Prompt files, one per line; an empty line starts the run.", err=True)
        while line := click.prompt(">", default="", show_default=False, err=True).strip():
            resolve_prompt_paths([line], cwd=Path.cwd(), project_root=project_root)  # validate now
            names.append(line)
    if not names:
        raise InputError("no prompt files given (pass paths, or --stdin, or --interactive)")
    return resolve_prompt_paths(names, cwd=Path.cwd(), project_root=project_root)


def _explicit(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user actually typed (not click's defaults)."""
    ctx = click.get_current_context()
    return {
        key: value for key, value in options.items()
        if ctx.get_parameter_source(key) not in (ParameterSource.DEFAULT, None)
    }


def _settings(options: dict[str, Any], project_root: str) -> ResolvedSettings:
    """Options given on the command line win over GADUGI_* variables, then the config file."""
    from orchestrator.run.project import load_project

    return load_project(project_root, _explicit(options)).settings


def _config(settings: ResolvedSettings) -> OrchestrationConfig:
    from orchestrator.config.model import OrchestrationConfig

    return OrchestrationConfig(**settings.config_kwargs())


def _run_with_observers(settings: ResolvedSettings, *, plain: bool, quiet: bool, verbose: bool, as_json: bool,
                        start: Callable[[live.Observer], OrchestrationResult]) -> OrchestrationResult:
    from orchestrator.observe import live
    from orchestrator.observe.logs import EventLog
    from orchestrator.observe.metrics import MetricsObserver
    from orchestrator.observe.notify import Notifier

    notifier = Notifier(settings["notify_cmd"], settings["notify_url"])  # a bad URL fails before we start
    display = live.make_observer(plain=plain, quiet=quiet or as_json, verbose=verbose, stream=sys.stdout)
    metrics_file = settings["metrics_file"]
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    # The display goes first so its live table is gone before the summary prints.
    with live.Observers(display, EventLog(settings["log_format"]),
                        MetricsObserver(Path(metrics_file) if metrics_file else None), notifier) as observer:
        return start(observer)


def _report(result: OrchestrationResult, warnings: list[str], as_json: bool) -> int:
    from orchestrator.cli import ui

    if as_json:
        click.echo(result.model_dump_json(indent=2))
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        if result.abort_reason:
            ui.print_error(result.abort_reason)
    else:
        ui.print_summary(result, warnings)
    if result.interrupted:
        click.echo(f"interrupted: continue with `orchestrator resume {result.run_id}`", err=True)
    return result.exit_code


@main.command(epilog=EPILOG)
@prompt_inputs
@agent_options
@run_options
@handle_errors
def run(prompts: tuple[str, ...], from_stdin: bool, interactive: bool, project_root: str, dry_run: bool,
        as_json: bool, plain: bool, verbose: bool, quiet: bool, **options: Any) -> int:
    """Run the prompt files: plan, worktrees, agents in parallel, summary."""
    from orchestrator.tracing import wanted

    settings = _settings(options, project_root)
    launcher = None
    if not dry_run and settings["backend"] == "local" and not wanted(settings["otel"], os.environ):
        from orchestrator.backends.launcher import Launcher

        # Before our own heavy imports: the launcher's imports overlap them, the plan and the run's
        # set-up, so the first task forks from a ready launcher. Not for a traced run, whose
        # launcher also imports the SDK once the coordinator has checked it is installed.
        launcher = Launcher.start(sys.executable, os.environ, home=Path(project_root).resolve())
    try:
        from orchestrator.cli import ui
        from orchestrator.run.coordinator import OrchestratorCoordinator

        coordinator = OrchestratorCoordinator(_config(settings), project_root)
        paths = _prompt_paths(prompts, from_stdin, interactive, coordinator.project_root)
        if dry_run:
            plan, _ = coordinator.plan(paths)
            ui.print_plan(plan, coordinator.warnings, as_json=as_json, machine=coordinator.config.machine)
            return 0
        result = _run_with_observers(
            settings, plain=plain, quiet=quiet, verbose=verbose, as_json=as_json,
            start=lambda observer: coordinator.orchestrate(paths, observer=observer, launcher=launcher))
    finally:
        if launcher is not None:
            launcher.close()
    return _report(result, coordinator.warnings, as_json)


@main.command(epilog=EPILOG)
@prompt_inputs
@agent_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@handle_errors
def plan(prompts: tuple[str, ...], from_stdin: bool, interactive: bool, project_root: str, as_json: bool,
         **options: Any) -> int:
    """Print the plan: tasks, ordering edges and reasons, branches, worktrees, exact commands."""
    from orchestrator.cli import ui
    from orchestrator.run.coordinator import OrchestratorCoordinator

    coordinator = OrchestratorCoordinator(_config(_settings(options, project_root)), project_root)
    paths = _prompt_paths(prompts, from_stdin, interactive, coordinator.project_root)
    the_plan, _ = coordinator.plan(paths)
    ui.print_plan(the_plan, coordinator.warnings, as_json=as_json, machine=coordinator.config.machine)
    return 0


@main.command(epilog=EPILOG)
@click.argument("run_id", required=False)
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True)
@agent_options
@run_options
@handle_errors
def resume(run_id: str | None, project_root: str, dry_run: bool, as_json: bool, plain: bool, verbose: bool,
           quiet: bool, **options: Any) -> int:
    """Continue a run that stopped (killed, Ctrl-C, crashed) with the options it was started
    with: re-attach to running tasks, adopt ended ones, continue interrupted and lost ones on
    their branches, run the rest. Nothing that completed runs twice. Without RUN_ID: the newest
    run with work left. Options given here override the run's own (--dry-run: only say what it
    would do)."""
    from orchestrator.config.settings import cli_overrides
    from orchestrator.run.coordinator import OrchestratorCoordinator

    settings = _settings(options, project_root)
    coordinator = OrchestratorCoordinator(_config(settings), project_root)
    target = coordinator.resume_target(run_id)
    if target.finished_at is not None:
        click.echo(f"run {target.run_id} finished at {target.finished_at}; nothing to resume", err=as_json)
        return 0
    overrides = cli_overrides(coordinator.project_root, _explicit(options))
    if dry_run:
        for line in coordinator.preview_resume(target):
            click.echo(line)
        return 0
    changed = ", ".join(f"{key}={value}" for key, value in sorted(overrides.items()))
    click.echo(f"resuming {target.run_id} with its own options" + (f"; changed: {changed}" if changed else ""),
               err=True)
    result = _run_with_observers(settings, plain=plain, quiet=quiet, verbose=verbose, as_json=as_json,
                                 start=lambda observer: coordinator.resume(target, observer=observer,
                                                                          overrides=overrides))
    return _report(result, coordinator.warnings, as_json)


for _command in (status_cmd.command, cancel_cmd.command, export_cmd.command, clean_cmd.command, doctor_cmd.command,
                 merge_check_cmd.command, integrate_cmd.command, schema_cmd.command, config_cmd.command,
                 install_agent_cmd.command):
    main.add_command(_command)


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
