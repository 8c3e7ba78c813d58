"""Each real `claude` of a run writes its own config directory, seeded from the user's: the user's
settings reach the agent, its session is kept in the task's directory, and nothing the agents do
touches the user's own `.claude.json` or sessions."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import git

from .anthropic_server import AnthropicServer, ToolCall, write_and_commit
from .test_real_claude import allowed_tools_args, run_orchestrator, task_prompt

PROBE = "GADUGI_PROBE_FROM_USER_SETTINGS"


def test_parallel_agents_each_write_their_own_config_seeded_from_the_users(
    make_repo, claude_env: dict[str, str], anthropic_server: AnthropicServer
) -> None:
    home = Path(claude_env["HOME"])
    user_dir = home / ".claude"
    user_dir.mkdir()
    # Settings the CLI applies to its tools' environment: seen in the commit only if the task's
    # directory links the user's settings.
    (user_dir / "settings.json").write_text(json.dumps({"env": {PROBE: "seen"}}))
    user_config = json.dumps({"hasCompletedOnboarding": True, "numStartups": 7}, indent=2)
    (home / ".claude.json").write_text(user_config)

    repo = make_repo({"README.md": "# demo\n"})
    ids = ["north", "south"]
    for tid in ids:
        task_prompt(repo, tid)
        write = write_and_commit(f"notes/{tid}.txt", "x\n", f"{tid}: probe")
        probe = ToolCall("Bash", {"command": f'mkdir -p notes && printf "%s" "${PROBE}" > notes/{tid}.txt && '
                                  f'git add -A && git commit -q -m "{tid}: probe"', "description": "Record the probe"})
        anthropic_server.add_script(tid, [probe, write[-1]])
    # Default --claude-config (auto) with an API key: one directory per task.
    proc = run_orchestrator(repo, claude_env, *ids, "--max-parallel", "2", "--sandbox", "off",
                            *allowed_tools_args(), "--allowed-tools=Bash")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    tasks = {t["task_id"]: t for t in result["tasks"]}
    run_dir = repo / ".gadugi" / "runs" / result["run_id"]
    for tid in ids:
        assert git(repo, "show", f"{tasks[tid]['branch']}:notes/{tid}.txt") == "seen"
        config_dir = run_dir / "tasks" / tid / "claude-config"
        assert (config_dir / "settings.json").resolve() == (user_dir / "settings.json").resolve()
        session = json.loads((run_dir / "tasks" / tid / "result.json").read_text())["outcome"]["session_id"]
        assert list(config_dir.glob(f"projects/*/{session}.jsonl")), f"no session {session} in {config_dir}"
        # The copy is the agent's to rewrite; it started from the user's file.
        assert json.loads((config_dir / ".claude.json").read_text())["hasCompletedOnboarding"] is True
    # The user's own state is untouched: same `.claude.json`, no sessions, nothing new beside settings.
    assert (home / ".claude.json").read_text() == user_config
    assert sorted(p.name for p in user_dir.iterdir()) == ["settings.json"]
