"""Aider adapter: `aider --message-file`, plain text output, outcome from what it printed.

Facts this relies on (checked against aider 0.86.2 and transcripts recorded from it):
- With `--message-file` aider sends the one message, applies edits, auto-commits and exits 0 even
  when the API call failed (auth, rate limit), so the exit code alone never means success: a
  `litellm.<Name>Error` line not followed by a model reply is the failure.
- After each reply it prints `Tokens: 2.3k sent, 1.2k cache write, 3.4k cache hit, 67 received.`
  (counts rounded: `k` above 999) and, when it knows the model's price,
  `Cost: $0.0065 message, $0.0065 session.`
- `--restore-chat-history` continues from `.aider.chat.history.md` in the worktree, the closest
  thing aider has to resuming a session. It has no turn limit and no permission modes.
"""
from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.agents import pricing
from orchestrator.agents.base import Agent, Invocation
from orchestrator.agents.common import build_outcome
from orchestrator.agents.failures import classify_error_text, short, stderr_tail
from orchestrator.models import AgentOutcome, FailureClass, Tokens
from orchestrator.process import describe_exit

AUTH_FIX = "aider could not authenticate: set the provider's API key (e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY)"
_COUNT = r"([\d.]+)([kKmM]?)"
_TOKENS = re.compile(r"^Tokens: " + _COUNT + r" sent(?:, " + _COUNT + r" cache write)?(?:, " + _COUNT
                     + r" cache hit)?, " + _COUNT + r" received\.")
_COST = re.compile(r"Cost: \$([\d.]+) message, \$([\d.]+) session\.")
_MODEL = re.compile(r"^Main model: (\S+)")
_ERROR = re.compile(r"^litellm\.(\w+):\s*(.*)")
_APPLIED = re.compile(r"^(Applied edit to|Commit [0-9a-f]{7,}) (.*)")
# Sub-classes of litellm errors whose names say more than their text.
_ERROR_CLASSES: dict[str, FailureClass] = {
    "AuthenticationError": "auth",
    "PermissionDeniedError": "auth",
    "RateLimitError": "rate_limited",
    "APIConnectionError": "api_error",
    "InternalServerError": "api_error",
    "ServiceUnavailableError": "api_error",
    "Timeout": "api_error",
    "APIError": "api_error",
    "BadRequestError": "agent_error",
    "ContextWindowExceededError": "agent_error",
    "NotFoundError": "agent_error",
}


def build_command(
    *,
    executable: str = "aider",
    prompt_file: str,
    model: str | None = None,
    extra_args: Sequence[str] = (),
    resume_session: str | None = None,
) -> list[str]:
    """argv for one unattended run: the prompt comes from a file, every question is answered yes,
    and nothing interactive, networked or cosmetic (update checks, analytics, colours) runs."""
    argv = [
        executable, "--message-file", prompt_file, "--yes-always",
        "--no-pretty", "--no-stream", "--no-check-update", "--no-show-release-notes",
        "--no-analytics",
        # Otherwise aider edits .gitignore to add .aider*, a change the task never asked for.
        "--no-gitignore",
    ]
    if model:
        argv += ["--model", model]
    if resume_session:
        argv.append("--restore-chat-history")
    return [*argv, *extra_args]


def parse_count(number: str, suffix: str) -> int:
    """`2.3k` → 2300, `12k` → 12000, `345` → 345 (aider rounds, so these are approximate)."""
    scale = {"k": 1_000, "m": 1_000_000}.get(suffix.lower(), 1)
    return round(float(number) * scale)


@dataclass(frozen=True)
class LineEvent:
    type: str
    summary: str


class AiderOutputParser:
    """Feed aider's stdout lines in order; read state at any time and `outcome()` at the end."""

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.session_id: str | None = None
        self.events = 0
        self.last_event_at: float | None = None
        self.last_tool: str | None = None
        self.final_message = ""
        self.tokens = Tokens()
        self.turns = 0
        self.session_cost: float | None = None
        self.pending_error: tuple[str, str] | None = None
        self._text: list[str] = []

    @property
    def cost_estimated(self) -> bool:
        """Aider's own "Cost: $x session" is reported; without it, tokens times list prices."""
        return self.session_cost is None

    @property
    def cost_usd(self) -> float | None:
        if self.session_cost is not None:
            return self.session_cost
        return pricing.cost_usd(self.model, self.tokens) if self.tokens.total else None

    def feed(self, line: str) -> LineEvent | None:
        text = line.rstrip("\n")
        if not text.strip():
            return None
        self.events += 1
        self.last_event_at = time.time()
        if match := _MODEL.match(text):
            self.model = match.group(1)
            return LineEvent("init", f"init: {self.model}")
        if match := _TOKENS.match(text):
            return self._usage(match, text)
        if text.startswith("Cost: ") and self._cost(text):
            return LineEvent("usage", short(text))
        if match := _ERROR.match(text):
            self.pending_error = (match.group(1), match.group(2))
            return LineEvent("error", f"error: {match.group(1)}")
        if match := _APPLIED.match(text):
            self.last_tool = short(text)
            return LineEvent("edit", short(text))
        self._text.append(text)
        del self._text[:-40]
        return LineEvent("output", f"output: {short(text)}")

    def _usage(self, match: re.Match[str], text: str) -> LineEvent:
        groups = match.groups()

        def count(index: int) -> int:
            number, suffix = groups[index], groups[index + 1]
            return parse_count(number, suffix) if number else 0

        # `sent` already includes cache writes (aider adds them in), and excludes cache hits.
        sent, written, hit, received = count(0), count(2), count(4), count(6)
        self.tokens = self.tokens + Tokens(input=max(sent - written, 0), cache_creation=written,
                                           cache_read=hit, output=received)
        self.turns += 1
        self.pending_error = None  # a reply arrived, so any earlier error was retried away
        self.final_message = "\n".join(self._text)[-4000:]
        self._text = []
        self._cost(text)
        return LineEvent("usage", short(text))

    def _cost(self, text: str) -> bool:
        # Usually on the Tokens line; on its own line when both cache reads and writes appear.
        if cost := _COST.search(text):
            self.session_cost = float(cost.group(2))
            return True
        return False

    def outcome(self, exit_code: int | None, stderr: str = "") -> AgentOutcome:
        """Success needs exit 0, at least one model reply, and no unanswered API error."""
        failure, message = self._classify(exit_code, stderr)
        return build_outcome(
            self, failure, message, exit_code,
        )

    def _classify(self, exit_code: int | None, stderr: str) -> tuple[FailureClass, str]:
        exited = "agent " + (describe_exit(exit_code) if exit_code is not None else "exit unknown")
        if exit_code is not None and exit_code < 0:
            return "killed", exited
        if self.pending_error is not None:
            name, text = self.pending_error
            failure = _ERROR_CLASSES.get(name) or classify_error_text(f"{name} {text}")
            if failure == "auth":
                return "auth", f"{AUTH_FIX} (aider said: {name}: {short(text, 120)})"
            return failure, f"{name}: {short(text, 160)} ({exited})"
        if exit_code != 0:
            tail = stderr_tail(stderr) or (short(self._text[-1], 160) if self._text else "")
            return "agent_error", f"{exited}" + (f": {tail}" if tail else "")
        if self.turns == 0:
            return "agent_error", "aider exited 0 without a model reply"
        return "none", f"success after {self.turns} model repl{'y' if self.turns == 1 else 'ies'}"


class AiderAgent(Agent):
    name = "aider"
    install_hint = "install aider with `pipx install aider-chat`"
    # Aider prints no session id, so a retry has nothing to hand back and starts over.
    resumes_sessions = False
    home_state = (".aider",)
    prompt_on_stdin = False

    def command(self, run: Invocation) -> list[str]:
        return build_command(
            executable=self.name, prompt_file=run.prompt_file, model=run.model, extra_args=run.extra_args,
            resume_session=run.resume_session,
        )

    def parser(self, model: str | None = None) -> AiderOutputParser:
        return AiderOutputParser(model=model)
