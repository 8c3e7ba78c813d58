"""Agent adapters: how to launch each agent CLI headlessly and how to read what it reports.

One module per CLI, each with one `Agent` subclass (see `base`); this registry is the only list
of them. Adding an agent is writing its module and adding an instance in `_by_name`.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.agents.base import Agent, AgentParser, Invocation, ParsedEvent
from orchestrator.errors import InputError, closest

if TYPE_CHECKING:
    AGENTS: tuple[Agent, ...]
    AGENT_NAMES: tuple[str, ...]


@cache
def _by_name() -> dict[str, Agent]:
    # Imported on first use: a module such as `agents.failures` (read by `status --json`) must not
    # pull in every adapter and its price table.
    from orchestrator.agents.aider import AiderAgent
    from orchestrator.agents.claude import ClaudeAgent
    from orchestrator.agents.codex import CodexAgent
    from orchestrator.agents.gemini import GeminiAgent
    from orchestrator.agents.generic import GenericAgent

    agents: tuple[Agent, ...] = (ClaudeAgent(), CodexAgent(), GeminiAgent(), AiderAgent(), GenericAgent())
    by_name = {agent.name: agent for agent in agents}
    if len(by_name) != len(agents):
        raise TypeError(f"two agents share a name in {[agent.name for agent in agents]}")
    return by_name


def __getattr__(name: str) -> object:
    if name == "AGENTS":
        return tuple(_by_name().values())
    if name == "AGENT_NAMES":
        return tuple(_by_name())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_agent(name: str) -> Agent:
    """The agent called `name`; InputError naming the closest known one when there is none."""
    agent = _by_name().get(name)
    if agent is not None:
        return agent
    names = tuple(_by_name())
    close = closest(name, names)
    guess = f"did you mean {close!r}? " if close else ""
    raise InputError(f"unknown agent {name!r} ({guess}known: {', '.join(names)}; or use --agent-cmd)")


def agent_of_command(argv: Sequence[str]) -> Agent:
    """The agent whose CLI this command line runs, judged by the program's name (so a `--agent-cmd`
    that runs `claude` still gets Claude's launch checks); the generic agent for any other program."""
    generic = _by_name()["generic"]
    return _by_name().get(Path(argv[0]).name, generic) if argv else generic


__all__ = [
    "AGENTS",
    "AGENT_NAMES",
    "Agent",
    "AgentParser",
    "Invocation",
    "ParsedEvent",
    "agent_of_command",
    "get_agent",
]
