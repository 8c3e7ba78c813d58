"""Agent adapters: how to launch each agent CLI headlessly and how to read what it reports.

Every parser has the same surface (`AgentParser`), so the WorkflowManager feeds lines and asks for
the outcome without knowing which agent ran.
"""
from __future__ import annotations

from typing import Protocol

from orchestrator.agents.claude import ClaudeStreamParser, StreamEvent, build_command, refused_flag
from orchestrator.models import AgentOutcome, Tokens


class ParsedEvent(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def summary(self) -> str: ...


class AgentParser(Protocol):
    """What the WorkflowManager reads from a parser for heartbeats and the final outcome."""

    @property
    def session_id(self) -> str | None: ...

    @property
    def turns(self) -> int: ...

    @property
    def cost_usd(self) -> float | None: ...

    @property
    def tokens(self) -> Tokens: ...

    @property
    def events(self) -> int: ...

    def feed(self, line: str) -> ParsedEvent | None: ...

    def outcome(self, exit_code: int | None, stderr: str = "") -> AgentOutcome: ...


def make_parser(agent: str, *, model: str | None = None) -> AgentParser:
    """The stream parser for an agent name (`claude`, `codex`, `gemini`, `aider`, `generic`).

    `model` prices the tokens of CLIs that report no dollars (codex needs it; gemini and aider
    name their model in their output and use this only as a fallback)."""
    if agent == "claude":
        return ClaudeStreamParser()
    if agent == "codex":
        from orchestrator.agents.codex import CodexStreamParser

        return CodexStreamParser(model=model)
    if agent == "gemini":
        from orchestrator.agents.gemini import GeminiStreamParser

        return GeminiStreamParser(model=model)
    if agent == "aider":
        from orchestrator.agents.aider import AiderOutputParser

        return AiderOutputParser(model=model)
    if agent == "generic":
        from orchestrator.agents.generic import GenericParser

        return GenericParser()
    raise ValueError(f"no parser for agent {agent!r}")


__all__ = [
    "AgentParser",
    "ClaudeStreamParser",
    "ParsedEvent",
    "StreamEvent",
    "build_command",
    "make_parser",
    "refused_flag",
]
