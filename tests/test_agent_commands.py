"""One dispatcher for every agent's command line, and one parser factory."""
from __future__ import annotations

from typing import Any

import pytest
from orchestrator.agents import make_parser
from orchestrator.agents.aider import AiderOutputParser
from orchestrator.agents.codex import CodexStreamParser
from orchestrator.agents.commands import (
    KNOWN_AGENTS,
    build_agent_command,
    prompt_on_stdin,
)
from orchestrator.agents.gemini import GeminiStreamParser
from orchestrator.errors import InputError

COMMON: dict[str, Any] = {
    "model": "m1", "max_turns": 7, "permission_mode": "acceptEdits", "allowed_tools": ["Bash(git commit:*)"],
    "extra_args": ["--x"], "worktree": "/w/t1", "prompt_file": "/r/t1/prompt.md",
}


def test_claude_keeps_its_own_flags() -> None:
    argv = build_agent_command("claude", **COMMON, resume_session="s1", executable="/bin/claude")
    assert argv[:5] == ["/bin/claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert {"--max-turns", "--resume", "--allowedTools", "Bash(git commit:*)"} <= set(argv)


@pytest.mark.parametrize(("agent", "head", "expected_in", "prompt_path_in_argv"), [
    ("codex", ["codex", "exec", "--json"], ["-C", "/w/t1", "-m", "m1", "-"], False),
    ("gemini", ["gemini", "--output-format", "stream-json"], ["--approval-mode=auto_edit", "-m", "m1"], False),
    ("aider", ["aider", "--message-file", "/r/t1/prompt.md"], ["--model", "m1", "--yes-always"], True),
])
def test_other_agents(agent: str, head: list[str], expected_in: list[str], prompt_path_in_argv: bool) -> None:
    argv = build_agent_command(agent, **COMMON)
    assert argv[: len(head)] == head and set(expected_in) <= set(argv) and argv.count("--x") == 1
    # Claude-only options never leak into another CLI, which would refuse them.
    assert "--max-turns" not in argv and "Bash(git commit:*)" not in argv
    assert ("/r/t1/prompt.md" in argv) is prompt_path_in_argv and prompt_on_stdin(agent) is not prompt_path_in_argv


def test_unknown_agent_names_the_known_ones() -> None:
    with pytest.raises(InputError, match="known: claude, codex, gemini, aider"):
        build_agent_command("cursor", **COMMON)
    assert KNOWN_AGENTS == ("claude", "codex", "gemini", "aider")


def test_make_parser_knows_every_agent() -> None:
    assert isinstance(make_parser("codex", model="gpt-5"), CodexStreamParser)
    assert isinstance(make_parser("gemini"), GeminiStreamParser)
    assert isinstance(make_parser("aider"), AiderOutputParser)
    with pytest.raises(ValueError):
        make_parser("cursor")
