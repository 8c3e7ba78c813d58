"""The command line: parse and validate, build a config, call the core, print. Nothing else."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from orchestrator import __version__
from orchestrator.admission import parse_size
from orchestrator.config import OrchestrationConfig, parse_max_parallel
from orchestrator.coordinator import OrchestratorCoordinator
from orchestrator.durations import parse_duration
from orchestrator.errors import InputError
from orchestrator.inputs import parse_prompt_list, resolve_prompt_paths
from orchestrator.options import agent_options, prompt_inputs, run_options
from orchestrator import ui
from orchestrator.error_handler import handle_errors

EPILOG = """\b
Examples:
  orchestrator run prompts/add-login.md prompts/fix-cache.md --max-parallel 3
  orchestrator plan prompts/*.md            # what would run, in which order, and why
  echo "Execute these prompts: a.md, b.md" | orchestrator run --stdin
"""


class DefaultRunGroup(click.Group):
    """`orchestrator a.md b.md` means `orchestrator run a.md b.md`, as run_orchestrator.sh does."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultRunGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orchestrator")
def main() -> None:
    """Run AI coding agents in parallel, one git worktree and branch per prompt file."""


def _prompt_paths(prompts: tuple[str, ...], from_stdin: bool, interactive: bool, project_root: Path) -> list[Path]:
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


def _seconds(value: str | None, what: str, *, allow_off: bool = False, allow_zero: bool = False) -> float | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if allow_off and text in ("off", "none", "0"):
        return None
    if allow_zero and text in ("0", "0s"):
        return 0.0
    return parse_duration(text, bare_unit="s", what=what)


def _config(options: dict[str, Any]) -> OrchestrationConfig:
    return OrchestrationConfig(
        max_parallel=parse_max_parallel(str(options.get("max_parallel", "4"))),
        task_timeout_seconds=parse_duration(options.get("timeout", "2h"), what="--timeout"),
        run_timeout_seconds=_seconds(options.get("run_timeout"), "--run-timeout"),
        stall_timeout_seconds=_seconds(options.get("stall_timeout", "15m"), "--stall-timeout", allow_off=True),
        interrupt_timeout=_seconds(options.get("interrupt_timeout", "5s"), "--interrupt-timeout") or 5.0,
        terminate_timeout=_seconds(options.get("terminate_timeout", "5s"), "--terminate-timeout") or 5.0,
        launch_stagger=_seconds(options.get("launch_stagger", "0.5s"), "--launch-stagger", allow_zero=True) or 0.0,
        retries=options.get("retries", 2),
        backoff_base=_seconds(options.get("retry_backoff", "5s"), "--retry-backoff", allow_zero=True) or 0.0,
        min_free_memory=parse_size(str(options.get("min_free_memory", "512M")), what="--min-free-memory"),
        min_free_disk=parse_size(str(options.get("min_free_disk", "1G")), what="--min-free-disk"),
        base_ref=options.get("base_ref"),
        monitoring_dir=Path(options["monitoring_dir"]) if options.get("monitoring_dir") else None,
        fallback_to_sequential=not options.get("no_fallback", False),
        worktree_cleanup=options.get("worktree_cleanup") or "auto",
        agent=options.get("agent") or "claude",
        agent_cmd=options.get("agent_cmd"),
        agent_args=list(options.get("agent_args", ())),
        model=options.get("model"),
        max_turns=options.get("max_turns"),
        permission_mode=options.get("permission_mode") or None,
        allowed_tools=list(options.get("allowed_tools", ())),
        verify=options.get("verify"),
    )


@main.command(epilog=EPILOG)
@prompt_inputs
@agent_options
@run_options
@handle_errors
def run(prompts: tuple[str, ...], from_stdin: bool, interactive: bool, project_root: str, dry_run: bool,
        as_json: bool, verbose: bool, quiet: bool, **options: Any) -> int:
    """Run the prompt files: plan, worktrees, agents in parallel, summary."""
    config = _config(options)
    coordinator = OrchestratorCoordinator(config, project_root)
    paths = _prompt_paths(prompts, from_stdin, interactive, coordinator.project_root)
    if dry_run:
        plan, _ = coordinator.plan(paths)
        ui.print_plan(plan, coordinator.warnings, as_json=as_json)
        return 0
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    progress = ui.ProgressPrinter(quiet=quiet or as_json, verbose=verbose)
    result = coordinator.orchestrate(paths, observer=progress)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        ui.print_summary(result, coordinator.warnings)
    return result.exit_code


@main.command(epilog=EPILOG)
@prompt_inputs
@agent_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@handle_errors
def plan(prompts: tuple[str, ...], from_stdin: bool, interactive: bool, project_root: str, as_json: bool,
         **options: Any) -> int:
    """Print the plan: tasks, ordering edges and reasons, branches, worktrees, exact commands."""
    coordinator = OrchestratorCoordinator(_config(options), project_root)
    paths = _prompt_paths(prompts, from_stdin, interactive, coordinator.project_root)
    the_plan, _ = coordinator.plan(paths)
    ui.print_plan(the_plan, coordinator.warnings, as_json=as_json)
    return 0


@main.command(epilog=EPILOG)
@click.argument("run_id", required=False)
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True)
@agent_options
@run_options
@handle_errors
def resume(run_id: str | None, project_root: str, dry_run: bool, as_json: bool, verbose: bool, quiet: bool,
           **options: Any) -> int:
    """Continue a run whose orchestrator was killed: re-attach to running tasks, adopt finished
    ones, re-queue lost ones, run the rest. Nothing that completed runs twice."""
    coordinator = OrchestratorCoordinator(_config(options), project_root)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    progress = ui.ProgressPrinter(quiet=quiet or as_json, verbose=verbose)
    result = coordinator.resume(run_id, observer=progress)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        ui.print_summary(result, coordinator.warnings)
    return result.exit_code


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
