"""The Claude Code adapter: command line, stream parsing and outcome classification, on streams
shaped like what Claude Code 2.x prints."""
from __future__ import annotations

import json
from typing import Any

import pytest
from orchestrator.agents import get_agent
from orchestrator.agents.claude import AUTH_FIX, ClaudeStreamParser, build_command, refused_flag
from orchestrator.errors import InputError

SID = "0b9f7c1e-7a43-4d1e-9a55-3c1f0e6b2d10"


def line(event: dict[str, Any]) -> str:
    return json.dumps({"session_id": SID, "uuid": "u", **event})


def init(model: str = "claude-sonnet-4-5-20250929") -> str:
    return line({"type": "system", "subtype": "init", "cwd": "/w/t1", "model": model,
                 "tools": ["Bash", "Write"], "permissionMode": "acceptEdits", "apiKeySource": "none"})


def assistant(msg_id: str, block: dict[str, Any], usage: dict[str, int] | None = None,
              **extra: Any) -> str:
    usage = usage or {"input_tokens": 5, "output_tokens": 100,
                      "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000}
    return line({"type": "assistant", "message": {"id": msg_id, "role": "assistant", "model": "m",
                                                  "content": [block], "usage": usage}, **extra})


def result(subtype: str = "success", is_error: bool = False, **extra: Any) -> str:
    event = {"type": "result", "subtype": subtype, "is_error": is_error, "duration_ms": 5000,
             "num_turns": 3, "result": "All done.", "total_cost_usd": 0.0421,
             "usage": {"input_tokens": 20, "output_tokens": 400,
                       "cache_creation_input_tokens": 9000, "cache_read_input_tokens": 30000}}
    event.update(extra)
    return line(event)


def feed(*lines: str) -> ClaudeStreamParser:
    parser = ClaudeStreamParser()
    for text in lines:
        parser.feed(text)
    return parser


def working_stream() -> list[str]:
    return [
        init(),
        assistant("msg_1", {"type": "text", "text": "I'll edit the app."}),
        assistant("msg_1", {"type": "tool_use", "id": "t1", "name": "Edit",
                            "input": {"file_path": "/w/t1/src/app.py", "old_string": "a", "new_string": "b"}}),
        line({"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1",
                                                       "content": "ok"}]}}),
        assistant("msg_2", {"type": "tool_use", "id": "t2", "name": "Bash",
                            "input": {"command": "git commit -am 'feat: a long message " + "x" * 80 + "'"}}),
    ]


def test_command_has_the_headless_flags_in_order() -> None:
    argv = build_command(
        model="opus", max_turns=12, permission_mode="acceptEdits",
        allowed_tools=("Read", "Bash(git commit:*)"), max_budget_usd=2.5,
        resume_session=SID, extra_args=("--append-system-prompt", "be brief"),
    )
    assert argv == [
        "claude", "-p", "--output-format", "stream-json", "--verbose",
        "--max-turns", "12", "--model", "opus", "--permission-mode", "acceptEdits",
        "--max-budget-usd", "2.5", "--resume", SID,
        "--allowedTools", "Read", "Bash(git commit:*)",
        "--append-system-prompt", "be brief",
    ]


def test_minimal_command_never_carries_the_prompt() -> None:
    assert build_command(executable="/opt/claude") == [
        "/opt/claude", "-p", "--output-format", "stream-json", "--verbose"]


def test_parser_tracks_progress_while_running() -> None:
    parser = ClaudeStreamParser()
    summaries = [event.summary for event in map(parser.feed, working_stream()) if event]
    assert summaries[0] == "init: claude-sonnet-4-5-20250929"
    assert "tool_use: Edit src/app.py" in summaries
    assert summaries[-1].startswith("tool_use: Bash git commit -am 'feat: a long message")
    assert parser.session_id == SID
    assert parser.turns == 2
    # msg_1 came as two lines with the same usage: counted once.
    assert parser.tokens.output == 200
    assert parser.tokens.cache_read == 4000
    assert parser.last_tool is not None and len(parser.last_tool) <= len("Bash ") + 60
    assert parser.last_text == "I'll edit the app."
    assert parser.events == 5
    assert parser.last_event_at is not None
    assert parser.cost_usd is None


def test_noise_lines_are_tolerated_and_counted() -> None:
    parser = ClaudeStreamParser()
    assert parser.feed("") is None
    assert parser.feed("   ") is None
    assert parser.feed("Warning: something on stdout") is None
    assert parser.feed("[1, 2]") is None
    assert parser.feed('{"no": "type"}') is None
    assert parser.noise == 3  # blank lines are not noise
    assert parser.events == 0


def test_success_needs_result_and_exit_zero() -> None:
    parser = feed(*working_stream(), result())
    outcome = parser.outcome(0)
    assert outcome.success and outcome.failure == "none"
    assert outcome.num_turns == 3  # the result's count wins
    assert outcome.tokens.cache_read == 30000  # the result's usage replaces the running sum
    assert outcome.cost_usd == pytest.approx(0.0421)
    assert outcome.final_message == "All done."
    assert outcome.session_id == SID
    assert outcome.result_subtype == "success"
    assert outcome.last_tool and outcome.last_tool.startswith("Bash git commit")


def test_success_result_with_nonzero_exit_is_agent_error() -> None:
    outcome = feed(init(), result()).outcome(1)
    assert not outcome.success and outcome.failure == "agent_error"
    assert "exited 1" in outcome.message


def test_wrong_subtype_with_exit_zero_is_a_failure() -> None:
    outcome = feed(init(), result("error_max_turns", True)).outcome(0)
    assert not outcome.success
    assert outcome.failure == "max_turns"


def test_max_turns() -> None:
    outcome = feed(init(), result("error_max_turns", True, num_turns=10)).outcome(1)
    assert outcome.failure == "max_turns"
    assert "10 turn" in outcome.message


def test_budget() -> None:
    outcome = feed(init(), result("error_max_budget_usd", True, total_cost_usd=5.01)).outcome(1)
    assert outcome.failure == "budget"
    assert "5.01" in outcome.message


def test_error_during_execution_is_agent_error() -> None:
    outcome = feed(init(), result("error_during_execution", True, result="")).outcome(1)
    assert outcome.failure == "agent_error"
    assert "error_during_execution" in outcome.message


def test_not_logged_in_is_auth_with_the_fix() -> None:
    said = "Not logged in · Please run /login"
    synthetic = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
    parser = feed(
        init(),
        assistant("m0", {"type": "text", "text": said}, synthetic, error="authentication_failed"),
        # The real CLI says subtype success here; only is_error tells the truth.
        result("success", True, result=said, num_turns=1, total_cost_usd=0),
    )
    outcome = parser.outcome(1)
    assert outcome.failure == "auth"
    assert AUTH_FIX in outcome.message
    assert "/login" in outcome.message
    # Even with exit code 0 it is not a success.
    assert parser.outcome(0).failure == "auth"


def test_invalid_api_key_via_401_is_auth() -> None:
    outcome = feed(init(), result("success", True, result="Invalid API key · Fix external API key",
                                  api_error_status=401)).outcome(1)
    assert outcome.failure == "auth"


def test_auth_event_without_result_is_auth() -> None:
    parser = feed(init(), assistant("m0", {"type": "text", "text": "Not logged in"},
                                    error="authentication_failed"))
    assert parser.outcome(1).failure == "auth"


@pytest.mark.parametrize("status", [500, 529])
def test_server_errors_are_api_error(status: int) -> None:
    outcome = feed(init(), result("success", True, result=f"API Error: {status} Overloaded",
                                  api_error_status=status)).outcome(1)
    assert outcome.failure == "api_error"
    assert str(status) in outcome.message


def test_429_is_rate_limited_with_reset_time() -> None:
    parser = feed(
        init(),
        line({"type": "rate_limit_event", "rate_limit_info": {
            "status": "rejected", "resetsAt": 1785274800, "rateLimitType": "five_hour"}}),
        result("success", True, result="usage limit reached", api_error_status=429),
    )
    assert parser.rate_limit is not None and parser.rate_limit.rejected
    assert parser.rate_limit.resets_at == 1785274800
    assert parser.rate_limit.limit_type == "five_hour"
    outcome = parser.outcome(1)
    assert outcome.failure == "rate_limited"
    assert "until 2026-07-" in outcome.message


def test_rate_limit_info_snake_case_reset() -> None:
    parser = feed(line({"type": "rate_limit_event",
                        "rate_limit_info": {"status": "allowed_warning", "resets_at": 1700000000}}))
    assert parser.rate_limit is not None
    assert parser.rate_limit.resets_at == 1700000000
    assert not parser.rate_limit.rejected


def test_recovered_api_error_still_counts_as_success() -> None:
    outcome = feed(init(), result(api_error_status=529)).outcome(0)
    assert outcome.success


def test_no_result_is_crashed() -> None:
    outcome = feed(*working_stream()).outcome(3, stderr="boom\nTypeError: x is undefined\n")
    assert outcome.failure == "crashed"
    assert outcome.message.startswith("agent exited 3 without a result event")
    assert "TypeError" in outcome.message
    assert feed(init()).outcome(0).failure == "crashed"


def test_killed_by_signal() -> None:
    outcome = feed(*working_stream()).outcome(-15)
    assert outcome.failure == "killed"
    assert "SIGTERM" in outcome.message


@pytest.mark.parametrize(
    "stderr",
    [
        "error: unknown option '--bogus'\n",
        "Error: When using --print, --output-format=stream-json requires --verbose\n",
        "error: option '--permission-mode <mode>' argument 'yolo' is invalid. Allowed choices are a, b.\n",
    ],
)
def test_refused_flag_is_a_permanent_agent_error(stderr: str) -> None:
    assert refused_flag(stderr) == stderr.strip()
    outcome = ClaudeStreamParser().outcome(1, stderr=stderr)
    assert outcome.failure == "agent_error"
    assert "refused" in outcome.message and "permanent" in outcome.message


def test_root_refusal_explains_the_way_out() -> None:
    stderr = "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons\n"
    outcome = ClaudeStreamParser().outcome(1, stderr=stderr)
    assert outcome.failure == "agent_error"
    assert "non-root" in outcome.message and "IS_SANDBOX=1" in outcome.message


def test_refusal_text_is_ignored_once_events_flowed() -> None:
    parser = feed(init())
    assert parser.outcome(1, stderr="error: unknown option '--x'").failure == "crashed"


def test_legacy_cost_field() -> None:
    parser = feed(init(), line({"type": "result", "subtype": "success", "is_error": False,
                                "num_turns": 1, "cost_usd": 0.5, "result": "ok"}))
    assert parser.outcome(0).cost_usd == 0.5


def test_parser_by_agent_name() -> None:
    assert isinstance(get_agent("claude").parser(), ClaudeStreamParser)
    with pytest.raises(InputError):
        get_agent("nope")
