"""The Aider adapter: command line and outcomes, on transcripts recorded from aider 0.86.2."""
from __future__ import annotations

from pathlib import Path

import pytest
from orchestrator.agents import AgentParser, get_agent
from orchestrator.agents.aider import (
    AUTH_FIX,
    AiderOutputParser,
    build_command,
    parse_count,
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


def test_command_reads_the_prompt_file_and_never_asks() -> None:
    argv = build_command(prompt_file="/run/t1/prompt.md", model="openai/gpt-4o")
    assert argv[:4] == ["aider", "--message-file", "/run/t1/prompt.md", "--yes-always"]
    assert {"--no-pretty", "--no-stream", "--no-check-update", "--no-gitignore", "--no-analytics"} <= set(argv)
    assert argv[-2:] == ["--model", "openai/gpt-4o"]
    assert "--restore-chat-history" in build_command(prompt_file="p", resume_session="any")


def test_recorded_success_takes_aiders_own_cost() -> None:
    _, outcome = replay("aider", "success.txt", 0)
    assert outcome.success and outcome.num_turns == 1
    assert outcome.tokens == Tokens(input=2300, output=67)  # "2.3k sent, 67 received" (rounded)
    assert outcome.cost_usd == pytest.approx(0.0065)
    assert outcome.last_tool is not None and outcome.last_tool.startswith("Commit 166a32a")
    assert "<<<<<<< SEARCH" in outcome.final_message


@pytest.mark.parametrize(("name", "failure"), [("auth_401.txt", "auth"), ("rate_limit_429.txt", "rate_limited")])
def test_api_errors_fail_although_aider_exits_0(name: str, failure: str) -> None:
    _, outcome = replay("aider", name, 0)
    assert not outcome.success and outcome.failure == failure and outcome.exit_code == 0
    if failure == "auth":
        assert outcome.message.startswith(AUTH_FIX)


def feed(*lines: str) -> AiderOutputParser:
    parser = AiderOutputParser()
    for line in lines:
        parser.feed(line)
    return parser


def test_an_error_retried_into_a_reply_is_forgotten() -> None:
    parser = feed("Main model: openai/gpt-4o with diff edit format",
                  "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached",
                  "Retrying in 8.0 seconds...", "Done.",
                  "Tokens: 12k sent, 1.2k received. Cost: $0.04 message, $0.04 session.")
    outcome = parser.outcome(0)
    assert outcome.success and outcome.tokens == Tokens(input=12000, output=1200)


def test_cache_counts_and_a_cost_on_its_own_line() -> None:
    parser = feed("Main model: anthropic/claude-sonnet-4-5-20250929 with diff edit format",
                  "Tokens: 3.4k sent, 2.0k cache write, 10k cache hit, 345 received.",
                  "Cost: $0.0123 message, $0.0500 session.")
    assert parser.tokens == Tokens(input=1400, cache_creation=2000, cache_read=10000, output=345)
    assert parser.cost_usd == pytest.approx(0.05)


def test_without_a_printed_cost_the_price_table_is_used() -> None:
    parser = feed("Main model: openai/gpt-4o with diff edit format", "Tokens: 1.0k sent, 100 received.")
    assert parser.cost_usd == pytest.approx((1000 * 2.5 + 100 * 10.0) / 1e6)
    assert feed("Main model: local/mystery", "Tokens: 1.0k sent, 100 received.").cost_usd is None


def test_exit_codes_without_a_reply() -> None:
    assert feed("Aider v0.86.2").outcome(0).failure == "agent_error"
    refused = AiderOutputParser().outcome(2, "aider: error: unrecognized arguments: --bogus\n")
    assert refused.failure == "agent_error" and "--bogus" in refused.message
    assert AiderOutputParser().outcome(-15).failure == "killed"


@pytest.mark.parametrize(("text", "count"), [("345", 345), ("2.3k", 2300), ("12k", 12000), ("1.5M", 1500000)])
def test_parse_count(text: str, count: int) -> None:
    number, suffix = (text[:-1], text[-1]) if text[-1].isalpha() else (text, "")
    assert parse_count(number, suffix) == count
