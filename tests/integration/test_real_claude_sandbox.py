"""The real Claude Code CLI inside its own sandbox, as a default run sets it up: each agent runs
Python and commits in its worktree unasked, and its writes to the main checkout, the other task's
worktree and HOME fail."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from orchestrator.agents.sandbox import CLAUDE_SANDBOX, missing_tools

from conftest import git

from .anthropic_server import SANDBOX_SETUP_FAILED, Answer, AnthropicServer, Recorded, ToolCall, _reply, _State
from .test_real_claude import run_orchestrator, write_prompt

NO_SANDBOX = missing_tools(CLAUDE_SANDBOX, os.environ)
pytestmark = pytest.mark.skipif(bool(NO_SANDBOX), reason=f"Claude Code's sandbox needs bubblewrap and socat "
                                f"({', '.join(NO_SANDBOX)} unavailable): apt-get install bubblewrap socat")


def build_and_escape(task: str, main: Path, other: Path, home: Path) -> str:
    """One Bash command: build with Python and commit, wait for the other task's worktree, then
    try the three writes that must fail, recording what each said, and commit that record."""
    tries = " ".join(
        f"touch {shlex.quote(str(target / f'leak-{task}.txt'))} 2>> blocked.txt || true;"
        for target in (main, other, home)
    )
    return (
        f"python3 -c 'import sys; print(\"built by\", sys.argv[1])' {task} > built.txt && "
        f"git add built.txt && git commit -q -m '{task}: built with python' && "
        f"until [ -e {shlex.quote(str(other / '.git'))} ]; do sleep 0.05; done; {tries} "
        f"git update-ref refs/heads/main HEAD 2>> refused.txt || true; "
        f"touch {shlex.quote(str(main / '.git' / 'hooks' / 'pre-commit'))} 2>> refused.txt || true; "
        f"git add refused.txt && "
        f"git add blocked.txt && git commit -q -m '{task}: what was blocked'"
    )


def _show(repo: Path, spec: str) -> str | None:
    proc = subprocess.run(["git", "show", spec], cwd=repo, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _what_the_agent_did(repo: Path, task: str) -> str:
    """For a failure message: the end of the task's WorkflowManager log and of its agent log."""
    task_dir = next((repo / ".gadugi" / "runs").iterdir()) / "tasks" / task
    tails = []
    for log in sorted(task_dir.glob("*.log")) + sorted(task_dir.glob("*.jsonl")):
        tails.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(tails)[-6000:]


def test_two_agents_build_and_commit_inside_and_write_nothing_outside(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer
) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    home = Path(claude_env["HOME"])
    ids = ("alpha", "beta")
    for tid, other in zip(ids, reversed(ids), strict=True):
        write_prompt(repo, tid, f"# Task {tid}\nBuild and commit.\nscripted-model: {tid}\n", front=f"files: [{tid}.txt]\n")
        command = build_and_escape(tid, repo, repo / ".worktrees" / other, home)
        anthropic_server.add_script(tid, [ToolCall("Bash", {"command": command, "description": "Build and commit"}),
                                          Answer("Built and committed.")])
    git(repo, "add", "prompts")
    git(repo, "commit", "-q", "-m", "prompts")
    main_sha = git(repo, "rev-parse", "main")
    # A default run: no --allowed-tools beyond the built-in git ones, no --sandbox flag.
    proc = run_orchestrator(repo, claude_env, *ids, "--max-parallel", "2", "--keep-worktrees")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    tasks = {t["task_id"]: t for t in result["tasks"]}
    for tid in ids:
        branch = tasks[tid]["branch"]
        assert _show(repo, f"{branch}:built.txt") == f"built by {tid}", _what_the_agent_did(repo, tid)
        # Both commits are the agent's own, made by git inside the sandbox.
        assert git(repo, "log", "--format=%s", branch).splitlines()[:2] == [f"{tid}: what was blocked",
                                                                              f"{tid}: built with python"]
        blocked = git(repo, "show", f"{branch}:blocked.txt")
        assert blocked.count("Read-only file system") == 3, blocked
        # The shared git directory's parts beyond the task: the main branch, hooks git would run.
        refused = git(repo, "show", f"{branch}:refused.txt").splitlines()
        assert len(refused) == 2 and "main" in refused[0] and "Read-only file system" in refused[1], refused
    assert [*repo.rglob("leak-*"), *home.rglob("leak-*")] == []
    assert git(repo, "rev-parse", "main") == main_sha
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    assert git(repo, "status", "--porcelain") == ""
    registry = json.loads((repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())
    assert {registry["processes"][t]["sandbox"] for t in ids} == {CLAUDE_SANDBOX}


def test_the_scripted_model_makes_a_call_again_when_the_sandbox_could_not_start_it() -> None:
    # The scripted model stands in for a real one, which would run such a command again (see
    # SANDBOX_SETUP_FAILED): the next request gets the same call, any other failure moves on.
    call = ToolCall("Bash", {"command": "make", "description": "Build"})
    state = _State(scripts={"t": [call, Answer("Done.")]})

    def next_call(result: str) -> Any:
        asked = {"role": "user", "content": "scripted-model: t"}
        made = {"role": "assistant", "content": [{"type": "tool_use", "id": "u1", "name": "Bash", "input": call.input}]}
        answered = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "u1", "is_error": True,
                                                 "content": result}]}
        body = {"model": "m", "tools": [{"name": "Bash"}], "messages": [asked, made, answered]}
        return _reply(state, body, Recorded("POST", "/v1/messages", "", {}, body))["content"]

    (again,) = next_call(f"Exit code 1\n{SANDBOX_SETUP_FAILED} /repo/.git/config.lock: No such file or directory")
    assert again["type"] == "tool_use" and again["input"] == call.input
    (answer,) = next_call("Exit code 2\nmake: *** No rule to make target")
    assert answer == {"type": "text", "text": "Done."}
