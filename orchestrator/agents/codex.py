"""OpenAI Codex CLI adapter: `codex exec --json`, prompt on stdin, and a parser for its JSONL.

Facts this relies on (checked against codex-cli 0.169.0 and streams recorded from it):
- Events: `thread.started{thread_id}` → `turn.started` → `item.started|updated|completed` →
  `turn.completed{usage}` or `turn.failed{error}`. Top-level `error` events are also used for
  retry notices ("Reconnecting... 2/5 (...)"), so one alone is not fatal; the turn's end decides.
- `usage` is the thread's running total: it sums every API call in the turn, and after
  `exec resume` it includes the earlier turns too. `input_tokens` includes `cached_input_tokens`
  (OpenAI convention); `reasoning_output_tokens` is part of `output_tokens`.
- No dollar figure is reported, so cost comes from the price table.
- Exec options go before the `resume` subcommand: `codex exec [opts] resume <id> -`.
- `--sandbox workspace-write` keeps `.git` read-only, so the agent's own `git commit` fails; the
  WorkflowManager commits what it leaves.
"""
from __future__ import annotations

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

AUTH_FIX = "codex is not authenticated: run `codex login`, or set OPENAI_API_KEY / CODEX_API_KEY"
_RETRY_NOTICE = "Reconnecting..."
_ACTIONS = {"command_execution", "file_change", "mcp_tool_call", "web_search", "agent_message"}


def build_command(
    *,
    executable: str = "codex",
    worktree: str,
    model: str | None = None,
    permission_mode: str | None = None,
    extra_args: Sequence[str] = (),
    resume_session: str | None = None,
) -> list[str]:
    """argv for one headless run; `-` makes codex read the prompt from stdin."""
    argv = [executable, "exec", "--json", *_sandbox(permission_mode), "-C", worktree]
    if model:
        argv += ["-m", model]
    argv += list(extra_args)
    if resume_session:
        argv += ["resume", resume_session]
    return [*argv, "-"]


def _sandbox(permission_mode: str | None) -> list[str]:
    # Claude's permission modes, in Codex's terms: exec never asks, so the sandbox is the policy.
    if permission_mode == "bypassPermissions":
        return ["--dangerously-bypass-approvals-and-sandbox"]
    if permission_mode == "plan":
        return ["--sandbox", "read-only"]
    return ["--sandbox", "workspace-write"]


def _usage(usage: Any) -> Tokens:
    if not isinstance(usage, dict):
        return Tokens()

    def num(key: str) -> int:
        value = usage.get(key)
        return int(value) if isinstance(value, (int, float)) else 0

    cached, written = num("cached_input_tokens"), num("cache_write_input_tokens")
    return Tokens(
        input=max(num("input_tokens") - cached - written, 0),
        output=num("output_tokens"),
        cache_read=cached,
        cache_creation=written,
    )


class CodexStreamParser:
    """Feed `codex exec --json` lines in order; read state at any time and `outcome()` at the end."""

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
        self.completed = False
        self.failed_message: str | None = None
        self.last_error: str | None = None

    cost_estimated = True  # Codex reports tokens only: the dollars are list prices times tokens

    @property
    def cost_usd(self) -> float | None:
        if self.tokens.total == 0:
            return None
        return pricing.cost_usd(self.model, self.tokens)

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
        return StreamEvent(type=kind, subtype=None, summary=summary, session_id=self.session_id)

    def _handle(self, kind: str, event: dict[str, Any]) -> str:
        if kind == "thread.started":
            if isinstance(event.get("thread_id"), str):
                self.session_id = event["thread_id"]
            return f"thread started: {self.session_id}"
        if kind == "turn.completed":
            self.completed = True
            # A running total for the thread: keep the latest, never add turns together.
            self.tokens = _usage(event.get("usage"))
            return f"turn completed: {self.tokens.total} tokens"
        if kind == "turn.failed":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            self.failed_message = str(message or self.last_error or "turn failed")
            return f"turn failed: {short(self.failed_message)}"
        if kind == "error":
            message = str(event.get("message") or "error")
            if not message.startswith(_RETRY_NOTICE):
                self.last_error = message
            return f"error: {short(message)}"
        if kind.startswith("item."):
            item = event.get("item")
            return self._item(kind, item if isinstance(item, dict) else {})
        return kind

    def _item(self, kind: str, item: dict[str, Any]) -> str:
        item_type = str(item.get("type") or "item")
        done = kind == "item.completed"
        if done and item_type in _ACTIONS:
            self.turns += 1
        detail = ""
        if item_type == "agent_message":
            text = str(item.get("text") or "")
            if done:
                self.final_message = text
            detail = short(text)
        elif item_type == "command_execution":
            detail = short(str(item.get("command") or ""))
            self.last_tool = f"shell {detail}"
            if done and item.get("exit_code") not in (None, 0):
                detail += f" (exit {item.get('exit_code')})"
        elif item_type == "file_change":
            changes = item.get("changes")
            paths = [str(c.get("path")) for c in changes if isinstance(c, dict)] if isinstance(changes, list) else []
            detail = short(", ".join(paths))
            self.last_tool = f"edit {detail}"
        elif item_type == "mcp_tool_call":
            detail = f"{item.get('server')}.{item.get('tool')}"
            self.last_tool = f"mcp {detail}"
        elif item_type == "web_search":
            detail = short(str(item.get("query") or ""))
            self.last_tool = f"web_search {detail}"
        elif item_type in ("reasoning", "error"):
            detail = short(str(item.get("text") or item.get("message") or ""))
        state = "" if done else f" {kind.split('.', 1)[1]}"
        return f"{item_type}{state}: {detail}".rstrip(": ")

    def outcome(self, exit_code: int | None, stderr: str = "") -> AgentOutcome:
        """Success needs `turn.completed` AND exit code 0."""
        failure, message = self._classify(exit_code, stderr)
        return build_outcome(
            self, failure, message, exit_code,
            result_subtype="turn.completed" if self.completed else ("turn.failed" if self.failed_message else None),
        )

    def _classify(self, exit_code: int | None, stderr: str) -> tuple[FailureClass, str]:
        exited = "agent " + (describe_exit(exit_code) if exit_code is not None else "exit unknown")
        if self.completed and self.failed_message is None:
            if exit_code == 0:
                return "none", f"success in {self.turns} step(s)"
            return "agent_error", f"{exited} after a completed turn"
        error = self.failed_message
        if error is not None:
            failure = classify_error_text(error)
            if failure == "auth":
                return "auth", f"{AUTH_FIX} (codex said: {short(error, 160)})"
            return failure, f"{short(error, 160)} ({exited})"
        if exit_code is not None and exit_code < 0:
            return "killed", f"{exited} before the turn ended"
        tail = stderr_tail(stderr)
        if self.events == 0 and exit_code == 2 and "error:" in stderr.lower():
            return "agent_error", f"codex refused its command line (permanent): {tail}"
        if self.last_error is not None:
            failure = classify_error_text(self.last_error)
            return failure, f"{short(self.last_error, 160)}; {exited} without ending the turn"
        hint = f"; stderr: {tail}" if tail else ""
        return "crashed", f"{exited} without ending the turn{hint}"


class CodexAgent(Agent):
    name = "codex"
    install_hint = "install Codex with `npm install -g @openai/codex`, then `codex login` (or set OPENAI_API_KEY)"
    resumes_sessions = True
    home_state = (".codex",)
    prompt_on_stdin = True

    def command(self, run: Invocation) -> list[str]:
        return build_command(
            executable=self.name, worktree=run.worktree, model=run.model, permission_mode=run.permission_mode,
            extra_args=run.extra_args, resume_session=run.resume_session,
        )

    def parser(self, model: str | None = None) -> CodexStreamParser:
        return CodexStreamParser(model=model)
