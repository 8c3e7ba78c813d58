"""Gemini CLI adapter: `gemini --output-format stream-json`, prompt on stdin, and its parser.

Facts this relies on (checked against gemini-cli 0.61.0 and streams recorded from it):
- With stdin piped the CLI runs headless and takes the prompt from stdin (`-p` only appends to
  it), so the prompt never has to be on the command line.
- A fresh worktree is an untrusted folder: without `--skip-trust` the CLI silently drops
  `--approval-mode` back to `default`, and headless tool calls are then refused.
- Events: `init{session_id, model}`, `message{role, content, delta}`, `tool_use{tool_name,
  tool_id, parameters}`, `tool_result{tool_id, status}`, `error{severity, message}` (not fatal),
  then `result{status, error?, stats}`; `stats.input_tokens` = `stats.input` (uncached) +
  `stats.cached`, per run (not cumulative over a resumed session), with a per-model breakdown.
- Exit codes: 0 ok, 41 auth (nothing on stdout, reason on stderr), 42 bad input, 52 config,
  53 turn limit, 130 cancelled; an API error exits with its HTTP status modulo 256 (400 → 144,
  429 → 173, 503 → 247).
- No `--max-turns` flag (turn limit is `model.maxSessionTurns` in settings.json) and no dollars.
"""
from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from orchestrator.agents import pricing
from orchestrator.agents.base import Agent, Invocation
from orchestrator.agents.claude import StreamEvent
from orchestrator.agents.common import build_outcome, decode_event
from orchestrator.agents.failures import classify_error_text, short, stderr_tail
from orchestrator.models import AgentOutcome, FailureClass, Tokens
from orchestrator.process import describe_exit

AUTH_FIX = "gemini is not authenticated: set GEMINI_API_KEY, or run `gemini` once and sign in"
EXIT_AUTH, EXIT_INPUT, EXIT_CONFIG, EXIT_TURN_LIMIT, EXIT_CANCELLED = 41, 42, 52, 53, 130
_HTTP_STATUSES = (400, 401, 403, 404, 429, 500, 502, 503, 504)
_APPROVAL = {"bypassPermissions": "yolo", "acceptEdits": "auto_edit", "plan": "plan", "default": "default"}
_API_CODE = re.compile(r'"code"\s*:\s*(\d{3})')


def build_command(
    *,
    executable: str = "gemini",
    model: str | None = None,
    permission_mode: str | None = None,
    extra_args: Sequence[str] = (),
    resume_session: str | None = None,
) -> list[str]:
    """argv for one headless run; the prompt goes on stdin."""
    approval = _APPROVAL.get(permission_mode or "", "yolo")
    argv = [executable, "--output-format", "stream-json", f"--approval-mode={approval}", "--skip-trust"]
    if model:
        argv += ["-m", model]
    if resume_session:
        argv += ["--resume", resume_session]
    return [*argv, *extra_args]


def http_status(exit_code: int | None, text: str = "") -> int | None:
    """The API's HTTP status, from the error text or from the CLI's `status % 256` exit code."""
    match = _API_CODE.search(text)
    if match:
        return int(match.group(1))
    if exit_code is not None and exit_code > 0:
        for status in _HTTP_STATUSES:
            if status % 256 == exit_code:
                return status
    return None


def _stats_tokens(stats: dict[str, Any]) -> Tokens:
    def num(key: str) -> int:
        value = stats.get(key)
        return int(value) if isinstance(value, (int, float)) else 0

    cached = num("cached")
    uncached = num("input") if "input" in stats else max(num("input_tokens") - cached, 0)
    return Tokens(input=uncached, output=num("output_tokens"), cache_read=cached)


class GeminiStreamParser:
    """Feed stream-json lines in order; read state at any time and `outcome()` at the end."""

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.session_id: str | None = None
        self.events = 0
        self.noise = 0
        self.last_event_at: float | None = None
        self.last_tool: str | None = None
        self.final_message = ""
        self.tokens = Tokens()
        self.turns = 0
        self.result: dict[str, Any] | None = None
        self.last_error: str | None = None
        self._cost: float | None = None
        self._in_assistant_turn = False
        self._reply: list[str] = []

    cost_estimated = True  # Gemini CLI reports tokens only: the dollars are list prices times tokens

    @property
    def cost_usd(self) -> float | None:
        if self._cost is not None:
            return self._cost
        return pricing.cost_usd(self.model, self.tokens) if self.tokens.total else None

    def feed(self, line: str) -> StreamEvent | None:
        """Parse one line; None for blank or non-JSON lines (counted in `noise`)."""
        event, noise = decode_event(line)
        if event is None:
            self.noise += noise
            return None
        self.events += 1
        self.last_event_at = time.time()
        kind: str = event["type"]
        summary = self._handle(kind, event)
        subtype = event.get("status") if isinstance(event.get("status"), str) else None
        return StreamEvent(type=kind, subtype=subtype, summary=summary, session_id=self.session_id)

    def _assistant_step(self) -> None:
        # Consecutive assistant messages and tool calls are one model response; a tool result or
        # a user message ends it. That is what Claude counts as a turn.
        if not self._in_assistant_turn:
            self._in_assistant_turn = True
            self.turns += 1
            self._reply = []

    def _handle(self, kind: str, event: dict[str, Any]) -> str:
        if kind == "init":
            self.session_id = event.get("session_id") if isinstance(event.get("session_id"), str) else None
            self.model = event.get("model") if isinstance(event.get("model"), str) else self.model
            return f"init: {self.model or 'model ?'}"
        if kind == "message":
            content = str(event.get("content") or "")
            if event.get("role") != "assistant":
                self._in_assistant_turn = False
                return "user message"
            self._assistant_step()
            self._reply.append(content)
            self.final_message = "".join(self._reply)[-4000:]
            return f"assistant: {short(content)}"
        if kind == "tool_use":
            self._assistant_step()
            name = str(event.get("tool_name") or "tool")
            raw = event.get("parameters")
            params: dict[str, Any] = raw if isinstance(raw, dict) else {}
            detail = next((str(params[k]) for k in ("file_path", "command", "dir_path", "pattern", "url", "query")
                           if k in params), "")
            self.last_tool = f"{name} {short(detail)}".strip()
            return f"tool_use: {self.last_tool}"
        if kind == "tool_result":
            self._in_assistant_turn = False
            return f"tool_result: {event.get('status')}"
        if kind == "error":
            self.last_error = str(event.get("message") or "error")
            return f"{event.get('severity') or 'error'}: {short(self.last_error)}"
        if kind == "result":
            return self._result(event)
        return kind

    def _result(self, event: dict[str, Any]) -> str:
        self.result = event
        raw = event.get("stats")
        stats: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self.tokens = _stats_tokens(stats)
        models = stats.get("models")
        if isinstance(models, dict) and models:
            # Price each model at its own rate; any unknown model makes the total unknown.
            costs = [pricing.cost_usd(name, _stats_tokens(m)) if isinstance(m, dict) else None
                     for name, m in models.items()]
            self._cost = sum(c for c in costs if c is not None) if all(c is not None for c in costs) else None
        return f"result: {event.get('status')}"

    def outcome(self, exit_code: int | None, stderr: str = "") -> AgentOutcome:
        """Success needs a `result` with status success AND exit code 0."""
        failure, message = self._classify(exit_code, stderr)
        return build_outcome(
            self, failure, message, exit_code,
            result_subtype=str(self.result.get("status")) if self.result else None,
        )

    def _classify(self, exit_code: int | None, stderr: str) -> tuple[FailureClass, str]:
        exited = "agent " + (describe_exit(exit_code) if exit_code is not None else "exit unknown")
        if self.result is not None and self.result.get("status") == "success":
            if exit_code == 0:
                return "none", f"success in {self.turns} turn(s)"
            return "agent_error", f"{exited} after a success result"
        if exit_code is not None and exit_code < 0:
            return "killed", f"{exited} before a result event"
        error = self._result_error()
        if self.result is None and exit_code == EXIT_AUTH:
            return "auth", f"{AUTH_FIX} (gemini said: {stderr_tail(stderr) or 'no auth method'})"
        if exit_code == EXIT_TURN_LIMIT or "TurnLimited" in error:
            return "max_turns", f"hit the turn limit after {self.turns} turn(s)"
        if exit_code == EXIT_CANCELLED:
            return "killed", f"gemini cancelled ({exited})"
        if exit_code in (EXIT_INPUT, EXIT_CONFIG):
            what = "bad input" if exit_code == EXIT_INPUT else "bad configuration"
            said = short(error, 160) or stderr_tail(stderr)
            return "agent_error", f"gemini refused the run, {what} (permanent): {said}"
        if self.result is None and not error:
            tail = stderr_tail(stderr)
            return "crashed", f"{exited} without a result event" + (f"; stderr: {tail}" if tail else "")
        return self._api_failure(exit_code, error or stderr_tail(stderr), exited)

    def _api_failure(self, exit_code: int | None, error: str, exited: str) -> tuple[FailureClass, str]:
        status = http_status(exit_code, error)
        failure = classify_error_text(error)
        if status in (401, 403) or failure == "auth":
            return "auth", f"{AUTH_FIX} (gemini said: {short(error, 160)})"
        if status == 429 or failure == "rate_limited":
            return "rate_limited", f"rate limited: {short(error, 160)}"
        if (status is not None and status >= 500) or failure == "api_error":
            return "api_error", f"API error {status or ''}: {short(error, 160)}".replace("  ", " ")
        return "agent_error", f"{short(error, 160) or 'error result'} ({exited})"

    def _result_error(self) -> str:
        if self.result is not None:
            error = self.result.get("error")
            if isinstance(error, dict):
                kind, message = str(error.get("type") or ""), str(error.get("message") or "")
                return message if kind in ("", "unknown", "Error") else f"{kind}: {message}"
        return self.last_error or ""


class GeminiAgent(Agent):
    name = "gemini"
    install_hint = "install Gemini CLI with `npm install -g @google/gemini-cli`, then set GEMINI_API_KEY"
    resumes_sessions = True
    home_state = (".gemini",)
    prompt_on_stdin = True

    def command(self, run: Invocation) -> list[str]:
        return build_command(
            executable=self.name, model=run.model, permission_mode=run.permission_mode, extra_args=run.extra_args,
            resume_session=run.resume_session,
        )

    def parser(self, model: str | None = None) -> GeminiStreamParser:
        return GeminiStreamParser(model=model)
