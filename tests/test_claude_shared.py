"""What many Claude agents share with the user's setup, said once in the plan and by doctor: the
MCP servers each one starts (`--mcp inherit|none|FILE`) and a subscription login they all refresh."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from cli_in_process import run_in_process
from conftest import git

IDS = ("a", "b", "c", "d")


def project(make_repo) -> Path:
    repo = make_repo()
    for tid in IDS:
        path = repo / "prompts" / f"{tid}.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"---\nid: {tid}\nfiles: [{tid}.txt]\n---\n# Task {tid}\n")
    git(repo, "add", "prompts")
    git(repo, "commit", "-q", "-m", "prompts")
    return repo


def user_home(tmp_path: Path, *, mcp_servers: int = 0, subscription: bool = False) -> Path:
    home = tmp_path / "user-home"
    (home / ".claude").mkdir(parents=True)
    servers = {f"server{i}": {"command": "true"} for i in range(mcp_servers)}
    (home / ".claude.json").write_text(json.dumps({"mcpServers": servers}))
    if subscription:
        (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {"refreshToken": "x"}}')
    return home


def orchestrator(repo: Path, path_with: str, home: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("ANTHROPIC_", "CLAUDE_CODE_"))}
    env.update(PATH=path_with, HOME=str(home), **extra_env)
    return run_in_process(repo, args, env)


def warnings(proc: subprocess.CompletedProcess[str], word: str) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("warning:") and word in line]


def test_plan_says_how_many_mcp_servers_each_agent_starts(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = project(make_repo)
    home = user_home(tmp_path, mcp_servers=3)
    inherit = orchestrator(repo, path_with, home, "plan", *IDS, GADUGI_MAX_PARALLEL="4")
    assert warnings(inherit, "MCP") == [
        "warning: each Claude agent starts 3 MCP server(s): up to 12 at once with 4 agents in parallel; "
        "--mcp none starts none, --mcp FILE only those in FILE"
    ]
    none = orchestrator(repo, path_with, home, "plan", *IDS, "--mcp", "none", "--json")
    assert json.loads(none.stdout)["warnings"] == []
    assert all(t["agent_command"][-1] == "--strict-mcp-config" for t in json.loads(none.stdout)["tasks"])
    config = tmp_path / "one.json"
    config.write_text(json.dumps({"mcpServers": {"docs": {"command": "true"}}}))
    only = orchestrator(repo, path_with, home, "plan", *IDS, "--mcp", str(config), "--json")
    assert json.loads(only.stdout)["warnings"] == ["each Claude agent starts 1 MCP server(s); --mcp none starts none, "
                                                   "--mcp FILE only those in FILE"]
    command = json.loads(only.stdout)["tasks"][0]["agent_command"]
    assert command[-3:] == ["--mcp-config", str(config), "--strict-mcp-config"]
    # The fake CLI takes the flags as the real one does: the run completes with them.
    ran = orchestrator(repo, path_with, home, "run", "a", "--mcp", "none", "--launch-stagger", "0")
    assert ran.returncode == 0, ran.stderr


def test_shared_subscription_login_is_said_once_with_the_fix(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = project(make_repo)
    home = user_home(tmp_path, subscription=True)
    shared = orchestrator(repo, path_with, home, "plan", *IDS, GADUGI_MAX_PARALLEL="2")
    assert warnings(shared, "login") == [
        f"warning: 2 Claude agents will share the subscription login in {home}/.claude/.credentials.json, whose "
        "token refreshes can log them out mid-run: run `claude setup-token` and set CLAUDE_CODE_OAUTH_TOKEN to its "
        "token, or set ANTHROPIC_API_KEY"
    ]
    token = orchestrator(repo, path_with, home, "plan", *IDS, GADUGI_MAX_PARALLEL="2", CLAUDE_CODE_OAUTH_TOKEN="t")
    assert warnings(token, "login") == []
    alone = orchestrator(repo, path_with, home, "plan", *IDS, GADUGI_MAX_PARALLEL="1")
    assert warnings(alone, "login") == []


def test_doctor_warns_about_many_mcp_servers_and_a_shared_login(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = project(make_repo)
    home = user_home(tmp_path, mcp_servers=5, subscription=True)
    proc = orchestrator(repo, path_with, home, "doctor", GADUGI_MAX_PARALLEL="4")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("warning:")]
    assert len(lines) == 2 and "up to 20 at once" in lines[0] and "subscription login" in lines[1]
    quiet = orchestrator(repo, path_with, home, "doctor", GADUGI_MAX_PARALLEL="4", GADUGI_MCP="none",
                         ANTHROPIC_API_KEY="k")
    assert "warning:" not in quiet.stdout
