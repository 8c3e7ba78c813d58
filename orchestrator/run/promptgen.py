"""The prompt each agent actually receives, generated once per task outside the worktree.

Gadugi generated it twice and the second pass replaced the task text with an error string; here the
whole original prompt is embedded verbatim and the file is written once, before launch.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from orchestrator.agents.failures import describe_failure
from orchestrator.models import PlannedTask, TaskResult
from orchestrator.state.atomic import write_text_atomic
from orchestrator.task.wire import Predecessor


def render_prompt(
    planned: PlannedTask,
    *,
    run_id: str,
    start_sha: str,
    predecessors: Sequence[Predecessor] = (),
    verify: str | None = None,
    context: str | None = None,
) -> str:
    spec = planned.spec
    lines = [
        f"# Task {spec.id}: {spec.title}",
        "",
        "You are one of several coding agents working in parallel on this repository. You work",
        "alone in your own git worktree on your own branch; other tasks have their own.",
        "",
        f"- Task id: {spec.id}",
        f"- Run id: {run_id}",
        f"- Branch: {planned.branch} (already checked out; do not switch branches)",
        f"- Worktree: {planned.worktree} (your current directory; stay inside it)",
        f"- Starts from commit: {start_sha}",
    ]
    if predecessors:
        lines.append(f"- Builds on the finished work of: {', '.join(p.task_id for p in predecessors)} (already merged in)")
    if spec.files:
        lines.append(f"- Expected scope: {', '.join(spec.files)}")
    lines += [
        "",
        "## What done means",
        "",
        "- The task below is implemented with real, working changes to the files in this worktree.",
        "- Run the project's relevant tests and make them pass where the task touches tested code.",
        "- Commit your work on this branch with `git add` and `git commit` and a message that says",
        "  why. Anything left uncommitted is committed for you when you finish.",
        "- Do not push, open pull requests, touch other worktrees or delete branches.",
    ]
    if verify:
        lines.append(f"- Afterwards this command must succeed in the worktree: `{verify}`")
    if spec.outputs:
        lines.append(f"- These files must exist, be non-empty and be changed by you: {', '.join(spec.outputs)}")
    lines.append("- Leave no placeholders (TODO, `raise NotImplementedError`, empty bodies or files): "
                 "the lines you add are checked.")
    if spec.requirements:
        lines += _requirements(spec.requirements)
    if context and context.strip():
        lines += ["", "## Context shared by every task of this run", "", context.strip()]
    if predecessors:
        lines += ["", "## What the tasks before you did", ""]
        for pred in predecessors:
            files = ", ".join(pred.changed_files[:20]) + (" ..." if len(pred.changed_files) > 20 else "")
            lines.append(f"- {pred.task_id} ({pred.title}) on {pred.branch}: changed {files or 'no files'}")
            if pred.final_message.strip():
                said = " ".join(pred.final_message.split())
                lines.append(f"  Its agent reported: {said[:600]}{'...' if len(said) > 600 else ''}")
    lines += [
        "",
        "## The task, exactly as written",
        "",
        f"Original prompt file: {spec.prompt_file}",
        "",
        "~~~~~~~~markdown",
        spec.prompt_text.rstrip("\n"),
        "~~~~~~~~",
        "",
    ]
    return "\n".join(lines)


def _requirements(requirements: Sequence[str]) -> list[str]:
    lines = ["", "## Requirements to report on", ""]
    lines += [f"- R{number}: {text}" for number, text in enumerate(requirements, 1)]
    example = {"requirements": [{"id": f"R{n}", "status": "done", "evidence": "path[:line] or test"}
                                for n in range(1, len(requirements) + 1)]}
    lines += [
        "",
        "End your final message with a fenced `json` block that reports each requirement: status `done` or",
        "`not_done`, and as evidence a path on your branch (`path:line`) or a test (`path::test`). The",
        "paths are checked; a requirement without the block, or citing a path that does not exist, is not done.",
        "",
        "```json",
        json.dumps(example),
        "```",
    ]
    return lines


def render_retry_prompt(
    planned: PlannedTask,
    previous: TaskResult,
    *,
    attempt: int,
    resumed: bool,
    run_id: str,
    base_sha: str,
    verify: str | None = None,
    context: str | None = None,
) -> str:
    """What a retry is told. A resumed session already holds the task and its own progress, so it
    gets a short continuation; a fresh session gets the whole prompt again plus what happened."""
    what = previous.error_message or previous.outcome.message or describe_failure(previous.outcome.failure)
    note = [
        f"Attempt {attempt}: the previous attempt ended early ({what}).",
        f"You are still on branch {planned.branch} in {planned.worktree}; everything the previous attempt",
        "changed is committed there. Check `git log` and the files, then finish the task.",
    ]
    if resumed:
        done = f" Afterwards `{verify}` must succeed." if verify else ""
        return "\n".join(note) + f"\nCommit your work when it is done.{done}\n"
    return "\n".join(note) + "\n\n" + render_prompt(planned, run_id=run_id, start_sha=base_sha, verify=verify,
                                                     context=context)


def write_prompt(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return path
