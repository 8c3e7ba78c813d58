"""The Codex adapter: command line and outcomes, on streams recorded from codex-cli 0.169.0."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from orchestrator.agents import AgentParser, get_agent
from orchestrator.agents.codex import AUTH_FIX, CodexStreamParser, build_command
from orchestrator.models import AgentOutcome, Tokens

STREAMS = Path(__file__).resolve().parent / "data" / "streams"


def replay(agent: str, name: str, exit_code: int | None, *, model: str | None = None,
           stderr: str = "") -> tuple[AgentParser, AgentOutcome]:
    """Feed a recorded stream (see data/streams/<agent>/README.md) through the agent's parser."""
    parser = get_agent(agent).parser(model=model)
    for line in (STREAMS / agent / name).read_text(encoding="utf-8").splitlines():
        parser.feed(line)
    return parser, parser.outcome(exit_code, stderr)


def test_command_reads_the_prompt_from_stdin_inside_the_worktree() -> None:
    argv = build_command(worktree="/w/t1", model="gpt-5-codex")
    assert argv == ["codex", "exec", "--json", "--sandbox", "workspace-write", "-C", "/w/t1",
                    "-m", "gpt-5-codex", "-"]


def test_resume_puts_exec_options_before_the_subcommand() -> None:
    # `codex exec resume --help` (0.169.0) has no --sandbox and no -C: they belong to `exec`.
    argv = build_command(worktree="/w", resume_session="01a1fc07", extra_args=["-c", "x=1"])
    assert argv[-5:] == ["-c", "x=1", "resume", "01a1fc07", "-"]
    assert argv.index("-C") < argv.index("resume") and argv[-1] == "-"


@pytest.mark.parametrize(("mode", "flags"), [
    (None, ["--sandbox", "workspace-write"]),
    ("acceptEdits", ["--sandbox", "workspace-write"]),
    ("plan", ["--sandbox", "read-only"]),
    ("bypassPermissions", ["--dangerously-bypass-approvals-and-sandbox"]),
])
def test_permission_modes_map_to_the_sandbox(mode: str | None, flags: list[str]) -> None:
    argv = build_command(worktree="/w", permission_mode=mode)
    assert argv[3:3 + len(flags)] == flags


def test_recorded_success() -> None:
    _, outcome = replay("codex", "success.jsonl", 0, model="gpt-5-codex")
    assert outcome.success and outcome.failure == "none"
    assert outcome.session_id == "01a1fc07-b050-7610-b66c-4eeb0b310882"
    # input_tokens 2700 includes the 2100 cached ones.
    assert outcome.tokens == Tokens(input=600, cache_read=2100, output=65)
    assert outcome.cost_usd == pytest.approx((600 * 1.25 + 2100 * 0.125 + 65 * 10.0) / 1e6)
    assert outcome.cost_estimated, "Codex reports tokens only: the dollars are ours, an estimate"
    assert outcome.final_message == "Created hello.txt and committed it."
    assert outcome.last_tool is not None and outcome.last_tool.startswith("shell /bin/bash -lc")
    assert outcome.num_turns == 2 and outcome.result_subtype == "turn.completed"


def test_resumed_usage_is_the_threads_running_total_not_added_twice() -> None:
    _, outcome = replay("codex", "resume_success.jsonl", 0, model="gpt-5-codex")
    assert outcome.success and outcome.session_id == "01a1fc07-b050-7610-b66c-4eeb0b310882"
    assert outcome.tokens == Tokens(input=1200, cache_read=4200, output=130)


def test_unknown_model_has_tokens_but_no_cost() -> None:
    _, outcome = replay("codex", "success.jsonl", 0, model=None)
    assert outcome.success and outcome.tokens.total > 0 and outcome.cost_usd is None
    assert not outcome.cost_estimated, "no figure, so nothing is estimated"


@pytest.mark.parametrize(("name", "failure", "words"), [
    ("auth_401.jsonl", "auth", "401 Unauthorized"),
    ("missing_api_key.jsonl", "auth", "OPENAI_API_KEY"),
    ("rate_limit_429.jsonl", "rate_limited", "429 Too Many Requests"),
    ("server_error_500.jsonl", "api_error", "high demand"),
])
def test_recorded_failures(name: str, failure: str, words: str) -> None:
    _, outcome = replay("codex", name, 1)
    assert not outcome.success and outcome.failure == failure
    assert words in outcome.message and outcome.session_id
    if failure == "auth":
        assert outcome.message.startswith(AUTH_FIX)


def test_retry_notices_alone_are_not_a_failure_and_a_kill_is_a_kill() -> None:
    parser, outcome = replay("codex", "offline_killed.jsonl", -15)
    assert outcome.failure == "killed" and parser.events == 12


def test_turn_completed_with_a_nonzero_exit_is_not_success() -> None:
    _, outcome = replay("codex", "success.jsonl", 1)
    assert outcome.failure == "agent_error"


def test_stream_ending_without_a_turn_end_is_a_crash() -> None:
    parser = CodexStreamParser()
    parser.feed(json.dumps({"type": "thread.started", "thread_id": "t"}))
    parser.feed("not json")
    outcome = parser.outcome(101, "thread 'main' panicked at src/x.rs\n")
    assert outcome.failure == "crashed" and "panicked" in outcome.message and parser.noise == 1


def test_refused_command_line_is_permanent() -> None:
    outcome = CodexStreamParser().outcome(2, "error: unexpected argument '--bogus' found\n")
    assert outcome.failure == "agent_error" and "refused its command line" in outcome.message


def test_item_summaries_for_heartbeats() -> None:
    parser = CodexStreamParser()
    event = parser.feed(json.dumps({"type": "item.completed", "item": {
        "id": "item_1", "type": "file_change", "status": "completed",
        "changes": [{"path": "src/app.py", "kind": "update"}]}}))
    assert event is not None and event.summary == "file_change: src/app.py"
    assert parser.last_tool == "edit src/app.py"
