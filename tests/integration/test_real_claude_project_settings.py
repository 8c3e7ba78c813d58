"""The project's own `.claude/settings.json` in every task's worktree, with the real Claude Code
CLI: applied when the user trusted the main checkout (or says so with --trust-project), ignored
when nobody did. The sandbox is off here so only the project's allow rule can let the command run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import git

from .anthropic_server import Answer, AnthropicServer, ToolCall
from .test_real_claude import run_orchestrator, write_prompt

IDS = ("alpha", "beta")
COMMAND = "python3 -c 'open(\"answer.txt\", \"w\").write(str(6 * 7))'"


def project(make_repo, anthropic_server: AnthropicServer) -> Path:
    settings = json.dumps({"permissions": {"allow": ["Bash(python3:*)"]}})
    repo = make_repo({"README.md": "# demo\n", ".claude/settings.json": settings})
    for tid in IDS:
        write_prompt(repo, tid, f"# Task {tid}\nCompute.\nscripted-model: {tid}\n", front=f"files: [{tid}.txt]\n")
        anthropic_server.add_script(tid, [ToolCall("Bash", {"command": COMMAND, "description": "Compute"}),
                                          Answer("Computed.")])
    git(repo, "add", "prompts")
    git(repo, "commit", "-q", "-m", "prompts")
    return repo


def answers(repo: Path, stdout: str) -> dict[str, str | None]:
    """What each task's branch holds in answer.txt (left uncommitted by the agent, committed by
    the orchestrator), None where the command never ran."""
    out: dict[str, str | None] = {}
    for task in json.loads(stdout)["tasks"]:
        files = git(repo, "ls-tree", "--name-only", task["branch"]).splitlines()
        out[task["task_id"]] = git(repo, "show", f"{task['branch']}:answer.txt") if "answer.txt" in files else None
    return out


@pytest.mark.parametrize(("trusted", "flags", "expected"), [
    (True, (), "42"),
    (False, (), None),
    (False, ("--trust-project",), "42"),
], ids=["main-checkout-trusted", "never-trusted", "trust-project-flag"])
def test_project_settings_apply_in_every_worktree_only_when_trusted(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer, trusted: bool,
    flags: tuple[str, ...], expected: str | None,
) -> None:
    repo = project(make_repo, anthropic_server)
    config = Path(claude_env["HOME"]) / ".claude.json"
    if trusted:
        config.write_text(json.dumps({"projects": {str(repo): {"hasTrustDialogAccepted": True}}}))
    before = config.read_text() if config.exists() else None
    proc = run_orchestrator(repo, claude_env, *IDS, "--max-parallel", "2", "--sandbox", "off", *flags)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert answers(repo, proc.stdout) == {tid: expected for tid in IDS}
    notes = [line for line in proc.stderr.splitlines() if ".claude/settings.json is ignored" in line]
    assert len(notes) == (1 if expected is None else 0), proc.stderr
    # Trust is the user's to give: this tool never wrote it.
    after = json.loads(config.read_text()) if config.exists() else {}
    granted = {path for path, entry in after.get("projects", {}).items() if entry.get("hasTrustDialogAccepted")}
    assert granted == ({str(repo)} if trusted else set()), (before, after)
