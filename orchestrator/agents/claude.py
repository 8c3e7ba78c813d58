"""Claude Code adapter: the headless command line, and a parser that turns its stream-json events
into heartbeat summaries and one honest AgentOutcome.

Facts this relies on (Claude Code 2.x): `-p --output-format stream-json` is refused without
`--verbose`; every event carries `session_id`; one API message may arrive as several `assistant`
lines that share `message.id` and `message.usage`; when not logged in the CLI emits a synthetic
assistant message with `"error": "authentication_failed"` and a result with `subtype: success` but
`is_error: true`, so the subtype alone never means success.
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.agents.base import Agent, Invocation
from orchestrator.agents.claude_shared import LOGIN_FIX, mcp_args
from orchestrator.agents.common import build_outcome, decode_event
from orchestrator.agents.permissions import DEFAULT_ALLOWED_TOOLS, check_permission_policy
from orchestrator.models import AgentOutcome, FailureClass, Tokens
from orchestrator.process import describe_exit

AUTH_FIX = (
    "not logged in: run `claude` once and /login, or set ANTHROPIC_API_KEY (mid-run, with several agents on "
    f"one subscription login, their token refreshes likely logged each other out: {LOGIN_FIX})"
)
ROOT_FIX = (
    "Claude Code refuses --dangerously-skip-permissions/bypassPermissions as root: run as a "
    "non-root user, or set IS_SANDBOX=1 inside a disposable sandbox"
)
SUMMARY_WIDTH = 60

_FILE_TOOLS = {"Write", "Edit", "MultiEdit", "Read", "NotebookEdit", "NotebookRead"}
_REFUSALS = (
    re.compile(r"error: unknown option"),
    re.compile(r"error: option .* (argument missing|is invalid)"),
    re.compile(r"error: too many arguments"),
    re.compile(r"requires --verbose"),
    re.compile(r"cannot be used with root/sudo privileges"),
)
# What `claude -p --resume <id>` answers (error_during_execution, exit 1) for a session it does not have.
_NO_SESSION = re.compile(r"no conversation found with session id", re.I)
_AUTH_TEXT = re.compile(r"not logged in|invalid api key|please run /login|oauth token", re.I)


def build_command(
    *,
    executable: str = "claude",
    model: str | None = None,
    max_turns: int | None = None,
    permission_mode: str | None = None,
    allowed_tools: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    resume_session: str | None = None,
    max_budget_usd: float | None = None,
) -> list[str]:
    """argv for one headless run; the prompt goes on stdin, never on the command line."""
    argv = [executable, "-p", "--output-format", "stream-json", "--verbose"]
    if max_turns is not None:
        argv += ["--max-turns", str(max_turns)]
    if model:
        argv += ["--model", model]
    if permission_mode:
        argv += ["--permission-mode", permission_mode]
    if max_budget_usd is not None:
        argv += ["--max-budget-usd", f"{max_budget_usd:g}"]
    if resume_session:
        argv += ["--resume", resume_session]
    if allowed_tools:
        # One flag, one argv item per tool: the CLI option is variadic, and a tool pattern such as
        # `Bash(git commit:*)` contains a space, so joining them into one string would split it.
        argv += ["--allowedTools", *allowed_tools]
    argv += list(extra_args)
    return argv


def refused_flag(stderr: str) -> str | None:
    """The CLI's own line when it refused its command line (exit 1, no events), else None."""
    for line in stderr.splitlines():
        if any(pattern.search(line) for pattern in _REFUSALS):
            return line.strip()
    return None


@dataclass(frozen=True)
class StreamEvent:
    """One parsed event: its type and a short human summary for heartbeats."""

    type: str
    subtype: str | None
    summary: str
    session_id: str | None = None


@dataclass(frozen=True)
class RateLimit:
    status: str
    resets_at: float | None = None
    limit_type: str | None = None

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"


def _short(text: str, width: int = SUMMARY_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tokens(usage: Any) -> Tokens:
    if not isinstance(usage, dict):
        return Tokens()

    def num(key: str) -> int:
        value = usage.get(key)
        return int(value) if isinstance(value, (int, float)) else 0

    return Tokens(
        input=num("input_tokens"),
        output=num("output_tokens"),
        cache_creation=num("cache_creation_input_tokens"),
        cache_read=num("cache_read_input_tokens"),
    )


def _epoch(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        # resetsAt is epoch seconds; be tolerant of milliseconds.
        return float(value) / 1000 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class ClaudeStreamParser:
    """Feed stream-json lines in order; read state at any time and `outcome()` at the end."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.model: str | None = None
        self.cwd: str | None = None
        self.events = 0
        self.noise = 0
        self.last_event_at: float | None = None
        self.last_tool: str | None = None
        self.last_text = ""
        self.final_message = ""
        self.cost_usd: float | None = None
        self.cost_estimated = False  # Claude Code reports its own total_cost_usd
        self.rate_limit: RateLimit | None = None
        self.api_error_status: int | None = None
        self.assistant_error: str | None = None
        self.auth_failed = False
        self.result: dict[str, Any] | None = None
        self.errors: list[str] = []  # the result event's `errors`
        # Usage keyed by message id: the CLI repeats a message's usage on each of its content lines.
        self._usage_ids: set[str] = set()
        self._running = Tokens()
        self._turn_ids: set[str] = set()
        self._result_turns: int | None = None
        self._result_tokens: Tokens | None = None

    @property
    def turns(self) -> int:
        return self._result_turns if self._result_turns is not None else len(self._turn_ids)

    @property
    def tokens(self) -> Tokens:
        return self._result_tokens if self._result_tokens is not None else self._running

    @property
    def result_subtype(self) -> str | None:
        return str(self.result.get("subtype")) if self.result is not None else None

    def feed(self, line: str) -> StreamEvent | None:
        """Parse one line; None for blank or non-JSON lines (counted in `noise`)."""
        event, noise = decode_event(line)
        if event is None:
            self.noise += noise
            return None
        self.events += 1
        self.last_event_at = time.time()
        if isinstance(event.get("session_id"), str) and self.session_id is None:
            self.session_id = event["session_id"]
        kind: str = event["type"]
        subtype = event.get("subtype") if isinstance(event.get("subtype"), str) else None
        handler = {
            "system": self._system,
            "assistant": self._assistant,
            "user": self._user,
            "rate_limit_event": self._rate_limit,
            "result": self._result,
        }.get(kind)
        summary = handler(event) if handler else kind
        return StreamEvent(type=kind, subtype=subtype, summary=summary, session_id=self.session_id)

    def _system(self, event: dict[str, Any]) -> str:
        subtype = event.get("subtype")
        if subtype == "init":
            if isinstance(event.get("session_id"), str):
                self.session_id = event["session_id"]
            self.model = event.get("model") if isinstance(event.get("model"), str) else self.model
            self.cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else self.cwd
            return f"init: {self.model or 'model ?'}"
        return f"system: {subtype}"

    def _assistant(self, event: dict[str, Any]) -> str:
        message = _dict(event.get("message"))
        error = event.get("error")
        if isinstance(error, str):
            self.assistant_error = error
            if error == "authentication_failed":
                self.auth_failed = True
        msg_id = str(message.get("id") or f"line-{self.events}")
        if "usage" in message and msg_id not in self._usage_ids:
            self._usage_ids.add(msg_id)
            self._running = self._running + _tokens(message["usage"])
        parts: list[str] = []
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                self._turn_ids.add(msg_id)
                self.last_tool = self._tool_summary(block)
                parts.append(f"tool_use: {self.last_tool}")
            elif block.get("type") == "text" and isinstance(block.get("text"), str):
                self._turn_ids.add(msg_id)
                self.last_text = block["text"][-4000:]
                parts.append("assistant: text")
            elif block.get("type") == "thinking":
                parts.append("assistant: thinking")
        if isinstance(error, str):
            return f"assistant error: {error}: {_short(self.last_text)}"
        return "; ".join(parts) or "assistant"

    def _tool_summary(self, block: dict[str, Any]) -> str:
        name = str(block.get("name") or "tool")
        args = _dict(block.get("input"))
        detail = ""
        if name in _FILE_TOOLS:
            detail = str(args.get("file_path") or args.get("notebook_path") or "")
            if self.cwd and detail.startswith(self.cwd.rstrip("/") + "/"):
                detail = detail[len(self.cwd.rstrip("/")) + 1 :]
        elif name == "Bash":
            detail = str(args.get("command") or "")
        else:
            for key in ("pattern", "url", "description", "query", "path", "prompt"):
                if isinstance(args.get(key), str):
                    detail = args[key]
                    break
        return f"{name} {_short(detail)}".strip()

    def _user(self, event: dict[str, Any]) -> str:
        content = _dict(event.get("message")).get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                return "tool_result: error" if block.get("is_error") else "tool_result"
        return "user"

    def _rate_limit(self, event: dict[str, Any]) -> str:
        info = event.get("rate_limit_info")
        if not isinstance(info, dict):
            return "rate_limit_event"
        self.rate_limit = RateLimit(
            status=str(info.get("status") or "unknown"),
            resets_at=_epoch(info.get("resetsAt", info.get("resets_at"))),
            limit_type=info.get("rateLimitType") or info.get("rate_limit_type"),
        )
        return f"rate_limit: {self.rate_limit.status}"

    def _result(self, event: dict[str, Any]) -> str:
        self.result = event
        if isinstance(event.get("session_id"), str):
            self.session_id = event["session_id"]
        if isinstance(event.get("num_turns"), int):
            self._result_turns = event["num_turns"]
        if isinstance(event.get("usage"), dict):
            self._result_tokens = _tokens(event["usage"])
        cost = event.get("total_cost_usd", event.get("cost_usd"))
        if isinstance(cost, (int, float)):
            self.cost_usd = float(cost)
        if isinstance(event.get("result"), str):
            self.final_message = event["result"]
        status = event.get("api_error_status")
        if isinstance(status, int):
            self.api_error_status = status
        errors = event.get("errors")
        if isinstance(errors, list):
            self.errors = [str(e) for e in errors]
        flag = " (is_error)" if event.get("is_error") else ""
        return f"result: {event.get('subtype')}{flag}"

    def outcome(self, exit_code: int | None, stderr: str = "") -> AgentOutcome:
        """Classify the run: success needs a success result, is_error false AND exit code 0."""
        failure, message = self._classify(exit_code, stderr)
        return build_outcome(
            self, failure, message, exit_code,
            result_subtype=self.result_subtype,
            rate_limit_resets_at=self.rate_limit.resets_at if self.rate_limit is not None else None,
        )

    def _classify(self, exit_code: int | None, stderr: str) -> tuple[FailureClass, str]:
        exited = "agent " + (describe_exit(exit_code) if exit_code is not None else "exit unknown")
        if self.result is None:
            return self._classify_no_result(exit_code, stderr, exited)
        subtype = self.result.get("subtype")
        is_error = bool(self.result.get("is_error"))
        said = _short(self.final_message or self.last_text or "; ".join(self.errors), 160)
        if any(_NO_SESSION.search(e) for e in self.errors):
            # `--resume` of a session this machine does not have: the task itself is fine.
            return "session_lost", said
        if not is_error and subtype == "success":
            if exit_code == 0:
                return "none", f"success in {self.turns} turn(s)"
            return "agent_error", f"{exited} after a success result"
        if self._looks_like_auth():
            return "auth", f"{AUTH_FIX} (claude said: {said or 'authentication failed'})"
        if subtype == "error_max_turns":
            return "max_turns", f"hit the turn limit after {self.turns} turn(s)"
        if subtype == "error_max_budget_usd":
            return "budget", f"hit the budget limit (spent ${self.cost_usd or 0:.4f})"
        if self._rate_limited():
            return "rate_limited", f"rate limited{self._resets()}: {said}".rstrip(": ")
        if self.api_error_status is not None and self.api_error_status >= 500:
            return "api_error", f"API error {self.api_error_status}: {said}".rstrip(": ")
        return "agent_error", f"{subtype or 'error'} ({exited}): {said}".rstrip(": ")

    def _classify_no_result(
        self, exit_code: int | None, stderr: str, exited: str
    ) -> tuple[FailureClass, str]:
        if exit_code is not None and exit_code < 0:
            return "killed", f"{exited} before a result event"
        refused = refused_flag(stderr) if self.events == 0 else None
        if refused is not None:
            if "root/sudo" in refused:
                return "agent_error", f"refused flag (permanent): {ROOT_FIX}"
            return "agent_error", f"claude refused its command line (permanent): {refused}"
        if self.auth_failed:
            return "auth", AUTH_FIX
        if self._rate_limited():
            return "rate_limited", f"rate limited{self._resets()}; {exited} without a result event"
        tail = [line for line in stderr.strip().splitlines() if line.strip()]
        hint = f"; stderr: {_short(tail[-1], 160)}" if tail else ""
        return "crashed", f"{exited} without a result event{hint}"

    def _looks_like_auth(self) -> bool:
        if self.auth_failed or self.api_error_status in (401, 403):
            return True
        return bool(_AUTH_TEXT.search(self.final_message)) and self.turns <= 1

    def _rate_limited(self) -> bool:
        return (
            self.api_error_status == 429
            or self.assistant_error == "rate_limit"
            or (self.rate_limit is not None and self.rate_limit.rejected)
        )

    def _resets(self) -> str:
        if self.rate_limit is None or self.rate_limit.resets_at is None:
            return ""
        when = datetime.fromtimestamp(self.rate_limit.resets_at, UTC)
        return f" until {when.isoformat(timespec='seconds')}"


class ClaudeAgent(Agent):
    name = "claude"
    install_hint = (
        "install Claude Code with `npm install -g @anthropic-ai/claude-code`, then run `claude` "
        "once and /login (or set ANTHROPIC_API_KEY)"
    )
    resumes_sessions = True
    prompt_on_stdin = True
    staggered_launch = True

    def command(self, run: Invocation) -> list[str]:
        return build_command(
            executable=self.name, model=run.model, max_turns=run.max_turns, permission_mode=run.permission_mode,
            # Added to, never replaced: allowing `Bash(pytest:*)` must not take away committing.
            allowed_tools=tuple(dict.fromkeys((*DEFAULT_ALLOWED_TOOLS, *run.allowed_tools))),
            extra_args=(*mcp_args(run.mcp), *run.extra_args), resume_session=run.resume_session,
            max_budget_usd=run.max_budget_usd,
        )

    def parser(self, model: str | None = None) -> ClaudeStreamParser:
        # Claude Code reports its own dollar cost, so the model is not needed to price the run.
        return ClaudeStreamParser()

    def check_command(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, euid: int | None = None
    ) -> None:
        check_permission_policy(argv, euid=euid, env=env)
