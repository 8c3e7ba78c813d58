"""The orchestrator driving the real Claude Code CLI (pinned by tools/install_claude.sh) against a
scripted Anthropic API on 127.0.0.1: real tool calls edit and commit in real worktrees."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from orchestrator.agents.permissions import DEFAULT_ALLOWED_TOOLS

from cli_in_process import run_with_environment
from conftest import git

from .anthropic_server import Answer, AnthropicServer, write_and_commit

UUID_LEN = 36


def write_prompt(repo: Path, task_id: str, body: str, front: str = "") -> None:
    path = repo / "prompts" / f"{task_id}.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"---\nid: {task_id}\n{front}---\n{body.strip()}\n")


def task_prompt(repo: Path, task_id: str) -> None:
    """A prompt whose scripted model writes notes/<id>.txt and commits it with the Bash tool."""
    write_prompt(
        repo,
        task_id,
        f"# Task {task_id}\nWrite notes/{task_id}.txt and commit it.\nscripted-model: {task_id}\n",
        front=f"files: [notes/{task_id}.txt]\n",
    )


def run_orchestrator(repo: Path, env: dict[str, str], *args: str, as_json: bool = True) -> subprocess.CompletedProcess[str]:
    """`orchestrator run ARGS` in this process with exactly `env` as its environment: the agents
    (real `claude`), their WorkflowManagers and the launcher are real processes either way."""
    json_flag = ["--json"] if as_json else []
    return run_with_environment(repo, ["run", *args, *json_flag, "--launch-stagger", "0"], env)


def allowed_tools_args() -> list[str]:
    return [f"--allowed-tools={tool}" for tool in DEFAULT_ALLOWED_TOOLS]


def task_result(repo: Path, run_id: str, task_id: str) -> dict[str, Any]:
    data = json.loads((repo / ".gadugi" / "runs" / run_id / "tasks" / task_id / "result.json").read_text())
    assert isinstance(data, dict)
    return data


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_three_tasks_commit_through_the_real_cli(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer, claude_version: str
) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    ids = ["alpha", "beta", "gamma"]
    for tid in ids:
        task_prompt(repo, tid)
        anthropic_server.add_script(tid, write_and_commit(f"notes/{tid}.txt", f"{tid} was here\n", f"{tid}: scripted change"))
    # The permission policy without a sandbox (what runs where bubblewrap is missing): the git
    # rules alone let the agent commit. test_real_claude_sandbox covers the sandboxed default.
    proc = run_orchestrator(repo, claude_env, *ids, "--max-parallel", "3", "--sandbox", "off", *allowed_tools_args())
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    assert result["successful_tasks"] == 3
    tasks = {t["task_id"]: t for t in result["tasks"]}

    for tid in ids:
        branch = tasks[tid]["branch"]
        # The commit is the CLI's own (its Bash tool ran `git commit` in the worktree), not a
        # leftover commit made by the orchestrator afterwards.
        assert git(repo, "log", "-1", "--format=%s", branch) == f"{tid}: scripted change"
        assert git(repo, "show", f"{branch}:notes/{tid}.txt") == f"{tid} was here"
        outcome = task_result(repo, result["run_id"], tid)
        assert outcome["auto_committed"] is False
        assert outcome["outcome"]["success"] and outcome["outcome"]["num_turns"] == 3
        assert "git commit" in outcome["outcome"]["last_tool"]
    registry = json.loads((repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())
    for tid in ids:
        info = registry["processes"][tid]
        assert info["status"] == "completed"
        assert len(info["session_id"]) == UUID_LEN
        assert info["cost_usd"] > 0  # the CLI prices the scripted usage itself
        assert info["tokens"]["input"] > 0 and info["tokens"]["output"] > 0
    assert result["total_cost_usd"] == pytest.approx(sum(registry["processes"][t]["cost_usd"] for t in ids))

    calls = anthropic_server.message_requests()
    # Three turns per task: Write, Bash, final answer; nothing else when non-essential traffic is off.
    assert sorted((r.script, r.turn) for r in calls) == sorted((t, n) for t in ids for n in range(3))
    for call in calls:
        assert call.query == "beta=true"
        assert call.headers["x-api-key"] == claude_env["ANTHROPIC_API_KEY"]
        assert call.headers["anthropic-version"] == "2023-06-01"
        assert call.headers["user-agent"].startswith(f"claude-cli/{claude_version}")
        assert call.body["stream"] is True
        assert {"Bash", "Write"} <= {tool["name"] for tool in call.body["tools"]}
    assert all(r.path == "/v1/messages" for r in anthropic_server.requests)


def test_overloaded_api_cli_retries_then_task_fails_as_api_error(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer
) -> None:
    repo = make_repo()
    task_prompt(repo, "busy")
    anthropic_server.add_script("busy", write_and_commit("notes/busy.txt", "x\n", "busy: change"))
    anthropic_server.fail(529)
    env = dict(claude_env, CLAUDE_CODE_MAX_RETRIES="2")
    proc = run_orchestrator(repo, env, "busy", "--retries", "0", *allowed_tools_args())
    assert proc.returncode == 1, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    assert result["failed_tasks"] == 1
    # The CLI's own retries: the first request and CLAUDE_CODE_MAX_RETRIES more, all answered 529.
    assert [r.status for r in anthropic_server.message_requests()] == [529, 529, 529]
    outcome = task_result(repo, result["run_id"], "busy")["outcome"]
    assert outcome["failure"] == "api_error"
    assert "529" in outcome["message"] and "Overloaded" in outcome["message"]
    summary = {t["task_id"]: t for t in result["tasks"]}["busy"]
    assert summary["status"] == "failed" and "529" in (summary["error_message"] or "")


@pytest.mark.parametrize("status", [529, 429])
def test_cli_retries_ride_out_a_short_outage(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer, status: int
) -> None:
    repo = make_repo()
    task_prompt(repo, "bumpy")
    anthropic_server.add_script("bumpy", write_and_commit("notes/bumpy.txt", "ok\n", "bumpy: change"))
    anthropic_server.fail(status, times=2, retry_after=0 if status == 429 else None)
    env = dict(claude_env, CLAUDE_CODE_MAX_RETRIES="3")
    proc = run_orchestrator(repo, env, "bumpy", "--retries", "0", *allowed_tools_args())
    assert proc.returncode == 0, proc.stderr + proc.stdout
    # Two refusals, then the three scripted turns: the CLI retried by itself, within one attempt.
    assert [r.status for r in anthropic_server.message_requests()] == [status, status, 200, 200, 200]
    summary = json.loads(proc.stdout)["tasks"][0]
    assert summary["status"] == "completed" and summary["attempts"] == 1
    assert git(repo, "log", "-1", "--format=%s", summary["branch"]) == "bumpy: change"


def test_rate_limit_that_never_lifts_fails_as_rate_limited(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer
) -> None:
    repo = make_repo()
    task_prompt(repo, "capped")
    anthropic_server.fail(429, retry_after=0)
    env = dict(claude_env, CLAUDE_CODE_MAX_RETRIES="1")
    proc = run_orchestrator(repo, env, "capped", "--retries", "0", *allowed_tools_args())
    assert proc.returncode == 1, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    assert [r.status for r in anthropic_server.message_requests()] == [429, 429]
    outcome = task_result(repo, result["run_id"], "capped")["outcome"]
    assert outcome["failure"] == "rate_limited"
    assert "429" in outcome["message"]


def test_no_api_key_is_a_permanent_auth_failure_that_stops_the_run(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer
) -> None:
    repo = make_repo()
    ids = ["first", "second", "third"]
    for tid in ids:
        task_prompt(repo, tid)
    env = {k: v for k, v in claude_env.items() if k != "ANTHROPIC_API_KEY"}
    assert not any((Path(env["HOME"]) / name).exists() for name in (".claude", ".claude.json"))
    # Human output: the summary on stdout, and the one line that says what to do on stderr.
    proc = run_orchestrator(repo, env, *ids, "--max-parallel", "1", *allowed_tools_args(), as_json=False)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert "/login" in errors[0] and "ANTHROPIC_API_KEY" in errors[0]
    registry = json.loads((repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())
    processes = registry["processes"]
    assert processes["first"]["status"] == "failed"
    run_id = processes["first"]["run_id"]
    first = task_result(repo, run_id, "first")
    assert first["outcome"]["failure"] == "auth" and first["attempt"] == 1
    # Not logged in holds for every task: nothing else was launched, and no retry was tried.
    for tid in ("second", "third"):
        assert processes[tid]["status"] == "cancelled" and processes[tid]["pid"] is None
        assert not (repo / ".gadugi" / "runs" / run_id / "tasks" / tid / "agent.jsonl").exists()
    # The CLI knew without asking the API.
    assert anthropic_server.message_requests() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the CLI's root rule only applies when running as root")
@pytest.mark.parametrize(
    "flags",
    [
        ["--agent-arg=--dangerously-skip-permissions"],
        ["--permission-mode", "bypassPermissions"],
    ],
    ids=["skip-permissions", "bypass-mode"],
)
def test_bypass_as_root_is_refused_before_anything_is_created(
    make_repo, claude_env: dict[str, str], claude_cli: Path, anthropic_server: AnthropicServer, flags: list[str]
) -> None:
    repo = make_repo()
    task_prompt(repo, "root")
    branches_before = git(repo, "branch", "--list", "--format=%(refname:short)")
    proc = run_orchestrator(repo, claude_env, "root", *flags)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "root" in lines[0] and "--permission-mode acceptEdits" in lines[0] and "--allowed-tools" in lines[0]
    assert not (repo / ".gadugi").exists() and not (repo / ".worktrees").exists()
    assert git(repo, "branch", "--list", "--format=%(refname:short)") == branches_before
    assert anthropic_server.requests == []

    # The rule matches the real CLI's: run directly, it refuses the same flag as root.
    flag = "--dangerously-skip-permissions" if "skip" in flags[0] else "--permission-mode=bypassPermissions"
    direct = subprocess.run(
        [str(claude_cli), "-p", flag, "--output-format", "stream-json", "--verbose"],
        input="hi", cwd=repo, env=claude_env, check=False, capture_output=True, text=True, timeout=60,
    )
    assert direct.returncode == 1 and "root/sudo" in direct.stderr and direct.stdout == ""


def test_bypass_as_root_runs_when_sandbox_is_declared(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer
) -> None:
    """IS_SANDBOX=1 is the CLI's own escape hatch; then the task runs with every tool allowed."""
    repo = make_repo()
    task_prompt(repo, "boxed")
    anthropic_server.add_script("boxed", [*write_and_commit("notes/boxed.txt", "in a box\n", "boxed: change")[:2],
                                          Answer("Done in the sandbox.")])
    env = dict(claude_env, IS_SANDBOX="1")
    proc = run_orchestrator(repo, env, "boxed", "--permission-mode", "bypassPermissions")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    branch = json.loads(proc.stdout)["tasks"][0]["branch"]
    assert git(repo, "log", "-1", "--format=%s", branch) == "boxed: change"


def test_a_fixup_round_resumes_the_real_session_with_the_evidence_and_it_fixes_the_stub(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer
) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "svc", "# Orders service\nWrite src/service.py.\nscripted-model: svc\n",
                 front="outputs: [src/service.py]\n")
    # Turns 0-2: the first session leaves a stub; turns 3-5 are the same conversation resumed.
    anthropic_server.add_script("svc", [
        *write_and_commit("src/service.py", "def handler():\n    raise NotImplementedError\n", "svc: stub"),
        *write_and_commit("src/service.py", "def handler():\n    return 42\n", "svc: implement handler"),
    ])
    proc = run_orchestrator(repo, claude_env, "svc", *allowed_tools_args())
    assert proc.returncode == 0, proc.stderr + proc.stdout
    task = json.loads(proc.stdout)["tasks"][0]
    assert task["status"] == "completed" and task["attempts"] == 1
    assert task["validation"]["fix_rounds"] == 1 and task["validation"]["placeholders"] == []
    assert git(repo, "show", f"{task['branch']}:src/service.py") == "def handler():\n    return 42"
    assert git(repo, "log", "-1", "--format=%s", task["branch"]) == "svc: implement handler"

    calls = anthropic_server.message_requests()
    assert sorted(r.turn for r in calls if r.script == "svc") == list(range(6))
    resumed = next(r for r in calls if r.script == "svc" and r.turn == 3)
    said = json.dumps(resumed.body["messages"])
    # The resumed conversation holds the first session's turns and then the checkpoint's evidence.
    assert "svc: stub" in said
    assert "Validation checkpoint" in said and "src/service.py:2: raise NotImplementedError" in said
    result = task_result(repo, json.loads(proc.stdout)["run_id"], "svc")
    assert result["outcome"]["num_turns"] == 6
