"""The Gemini adapter: command line and outcomes, on streams recorded from gemini-cli 0.61.0."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from orchestrator.agents import AgentParser, get_agent
from orchestrator.agents.gemini import (
    AUTH_FIX,
    GeminiStreamParser,
    build_command,
    http_status,
)
from orchestrator.models import AgentOutcome, Tokens

STREAMS = Path(__file__).resolve().parent / "data" / "streams"


def replay(agent: str, name: str, exit_code: int | None, *, model: str | None = None,
           stderr: str = "") -> tuple[AgentParser, AgentOutcome]:
    """Feed a recorded stream (see data/streams/<agent>/README.md) through the agent's parser."""
    parser = get_agent(agent).parser(model=model)
    for line in (STREAMS / agent / name).read_text(encoding="utf-8").splitlines():
        parser.feed(line)
    return parser, parser.outcome(exit_code, stderr)


def test_command_skips_the_trust_prompt_and_keeps_the_prompt_off_argv() -> None:
    argv = build_command(model="gemini-2.5-pro", permission_mode="bypassPermissions")
    assert argv == ["gemini", "--output-format", "stream-json", "--approval-mode=yolo", "--skip-trust",
                    "-m", "gemini-2.5-pro"]
    assert "-p" not in argv  # headless with stdin piped; the prompt comes from stdin


@pytest.mark.parametrize(("mode", "approval"), [
    (None, "yolo"), ("bypassPermissions", "yolo"), ("acceptEdits", "auto_edit"), ("plan", "plan"),
    ("default", "default"),
])
def test_permission_modes_map_to_approval_modes(mode: str | None, approval: str) -> None:
    assert f"--approval-mode={approval}" in build_command(permission_mode=mode)


def test_resume_passes_the_session_id() -> None:
    assert build_command(resume_session="c22c", extra_args=["--debug"])[-3:] == ["--resume", "c22c", "--debug"]


def test_recorded_success() -> None:
    _, outcome = replay("gemini", "success.jsonl", 0)
    assert outcome.success and outcome.failure == "none"
    assert outcome.session_id == "c22ceeed-a6d8-43ac-b644-3b73ed69146b"
    assert outcome.tokens == Tokens(input=3100, cache_read=13000, output=42)
    assert outcome.cost_usd == pytest.approx((3100 * 1.25 + 13000 * 0.125 + 42 * 10.0) / 1e6)
    assert outcome.num_turns == 2 and outcome.last_tool == "write_file hello.txt"
    assert outcome.final_message == "Created hello.txt."


def test_resumed_session_keeps_its_id_and_counts_only_this_run() -> None:
    _, outcome = replay("gemini", "resume_success.jsonl", 0)
    assert outcome.success and outcome.session_id == "c22ceeed-a6d8-43ac-b644-3b73ed69146b"
    assert outcome.tokens == Tokens(input=1100, cache_read=7000, output=12)


@pytest.mark.parametrize(("name", "exit_code", "failure", "words"), [
    ("api_key_invalid_400.jsonl", 144, "auth", "API key not valid"),
    ("rate_limit_429.jsonl", 173, "rate_limited", "Resource has been exhausted"),
    ("overloaded_503.jsonl", 247, "api_error", "overloaded"),
    ("turn_limit.jsonl", 53, "max_turns", "turn limit"),
])
def test_recorded_failures(name: str, exit_code: int, failure: str, words: str) -> None:
    _, outcome = replay("gemini", name, exit_code)
    assert not outcome.success and outcome.failure == failure and words in outcome.message
    assert outcome.session_id and outcome.result_subtype == "error"


def test_not_logged_in_prints_nothing_on_stdout_and_exits_41() -> None:
    stderr = (STREAMS / "gemini" / "no_auth.stderr").read_text(encoding="utf-8")
    outcome = GeminiStreamParser().outcome(41, stderr)
    assert outcome.failure == "auth" and outcome.message.startswith(AUTH_FIX)
    assert "GEMINI_API_KEY" in outcome.message


@pytest.mark.parametrize(("exit_code", "text", "status"), [
    (144, "", 400), (173, "", 429), (247, "", 503), (145, "", 401), (1, "", None),
    (1, '[API Error: {"error":{"code":500,"message":"x"}}]', 500),
])
def test_http_status_from_text_or_exit_code(exit_code: int, text: str, status: int | None) -> None:
    assert http_status(exit_code, text) == status


def test_bad_input_is_permanent_and_a_silent_crash_is_a_crash() -> None:
    assert GeminiStreamParser().outcome(42, "Error: invalid flag\n").failure == "agent_error"
    crashed = GeminiStreamParser().outcome(1, "Segmentation fault\n")
    assert crashed.failure == "crashed" and "Segmentation fault" in crashed.message
    assert GeminiStreamParser().outcome(-9).failure == "killed"


def test_unknown_model_in_the_breakdown_leaves_cost_unknown() -> None:
    parser = GeminiStreamParser()
    stats = {"input_tokens": 10, "output_tokens": 5, "cached": 0, "input": 10,
             "models": {"gemini-9-ultra": {"input_tokens": 10, "output_tokens": 5, "cached": 0, "input": 10}}}
    parser.feed(json.dumps({"type": "init", "session_id": "s", "model": "gemini-9-ultra"}))
    parser.feed(json.dumps({"type": "result", "status": "success", "stats": stats}))
    outcome = parser.outcome(0)
    assert outcome.success and outcome.tokens.total == 15 and outcome.cost_usd is None
