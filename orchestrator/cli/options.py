"""Shared click options, as decorators, so every command spells them the same way."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func
    return apply


prompt_inputs = _stack(
    click.argument("prompts", nargs=-1),
    click.option("--stdin", "from_stdin", is_flag=True, help="Read a free-text list of prompt files from stdin."),
    click.option("--interactive", is_flag=True, help="Ask for prompt files one per line, until an empty line."),
    click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".",
                 show_default=True, help="Any directory inside the target git repository."),
    click.option("--base", "base_ref", metavar="REF", help="Commit, branch or tag to branch from (default: HEAD)."),
)

agent_options = _stack(
    click.option("--agent", default="claude", show_default=True, help="Agent CLI to run for each task."),
    click.option("--agent-cmd", metavar="TEMPLATE",
                 help="Replace the agent command, e.g. 'tool --prompt-file {prompt_file}'. "
                      "Placeholders: {prompt_file} {worktree} {task_id} {branch} {run_id}."),
    click.option("--agent-arg", "agent_args", multiple=True, metavar="ARG", help="Extra argument for the agent (repeatable)."),
    click.option("--model", help="Model passed to the agent (front matter `model` wins)."),
    click.option("--max-turns", type=click.IntRange(min=1), help="Turn limit passed to the agent."),
    click.option("--permission-mode", default="acceptEdits", show_default=True,
                 help="Claude Code permission mode for unattended runs."),
    click.option("--allowed-tools", multiple=True, metavar="TOOL", help="Tools the agent may use without asking (repeatable)."),
    click.option("--context", metavar="FILE",
                 help="Included in every task's prompt (default: prompts/_context.md when present)."),
    click.option("--max-budget-usd", metavar="USD", help="Per-task budget, passed to the agent where supported."),
    click.option("--verify", metavar="CMD", help="Shell command that must pass in the worktree for a task to count as done."),
)

run_options = _stack(
    click.option("--max-parallel", default="4", show_default=True, metavar="N|auto",
                 help="Tasks running at once; 'auto' sizes it from CPUs and memory."),
    click.option("--timeout", default="2h", show_default=True, metavar="DURATION",
                 help="Per-task timeout: 90s, 30m, 2h; a bare number means hours."),
    click.option("--monitoring-dir", type=click.Path(file_okay=False, path_type=str),
                 help="Where the registry JSON goes (default: .gadugi/monitoring)."),
    click.option("--worktree-pool", type=click.IntRange(min=0), metavar="N",
                 help="Keep up to N clean finished worktrees and recycle them for later tasks "
                      "(default: --max-parallel; 0 = off)."),
    click.option("--no-fallback", is_flag=True, help="Fail instead of running one at a time when worktrees cannot be created."),
    click.option("--keep-worktrees", "worktree_cleanup", flag_value="keep", help="Keep every task's worktree."),
    click.option("--cleanup-worktrees", "worktree_cleanup", flag_value="cleanup",
                 help="Remove every clean worktree, failed ones too (branches always stay)."),
    click.option("--backend", type=click.Choice(["local", "dask", "dask-local"]), default="local", show_default=True,
                 help="Where tasks run: local subprocesses, a Dask cluster (--scheduler), or an in-process Dask cluster."),
    click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler for --backend dask, e.g. tcp://10.0.0.5:8786."),
    click.option("--retries", default=2, show_default=True, type=click.IntRange(min=0),
                 help="Extra attempts for transient failures (API overloaded, crashed, stalled)."),
    click.option("--retry-backoff", default="5s", show_default=True, metavar="DURATION",
                 help="Base of the exponential backoff (full jitter, capped at 5m) between attempts."),
    click.option("--run-timeout", metavar="DURATION", help="Stop the whole run after this long."),
    click.option("--run-budget-usd", metavar="USD", help="Start no new task once the run has spent this much."),
    click.option("--stall-timeout", default="15m", show_default=True, metavar="DURATION|off",
                 help="Kill an agent with no event, no file change and no CPU for this long."),
    click.option("--interrupt-timeout", default="5s", show_default=True, metavar="DURATION",
                 help="Grace after SIGINT before SIGTERM when stopping an agent."),
    click.option("--terminate-timeout", default="5s", show_default=True, metavar="DURATION",
                 help="Grace after SIGTERM before SIGKILL when stopping an agent."),
    click.option("--launch-stagger", default="0.5s", show_default=True, metavar="DURATION|0",
                 help="Jittered pause between agent launches."),
    click.option("--min-free-memory", default="512M", show_default=True, metavar="SIZE",
                 help="New launches wait while available memory is below this."),
    click.option("--min-free-disk", default="1G", show_default=True, metavar="SIZE",
                 help="New launches wait while free disk is below this."),
    click.option("--dry-run", is_flag=True,
                 help="Print the plan and the exact commands (resume: what it would re-attach, adopt, re-queue "
                      "and run); create nothing."),
    click.option("--json", "as_json", is_flag=True, help="Print the result (or plan) as JSON on stdout."),
    click.option("--plain", is_flag=True, help="Plain progress lines instead of the live table."),
    click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
                 help="Run log: .gadugi/runs/<run-id>/orchestrator.log or orchestrator.jsonl."),
    click.option("--notify-cmd", metavar="CMD",
                 help="Shell command run on task end, on a task needing attention and on run end (JSON on stdin)."),
    click.option("--notify-url", metavar="URL", help="POST a JSON notification to URL on the same events."),
    click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=str),
                 help="Prometheus textfile (default: .gadugi/monitoring/metrics.prom)."),
    click.option("--verbose", "-v", is_flag=True, help="Show phases and agent log lines."),
    click.option("--quiet", "-q", is_flag=True, help="Print only the summary and errors."),
)
