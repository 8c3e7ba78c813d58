"""Agent adapters: how to launch each agent CLI headlessly and how to read what it reports.

One module per CLI, each with one `Agent` subclass (see `base`); this registry is the only list
of them. Adding an agent is writing its module and adding an instance to `AGENTS`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orchestrator.agents.aider import AiderAgent
from orchestrator.agents.base import Agent, AgentParser, Invocation, ParsedEvent
from orchestrator.agents.claude import ClaudeAgent
from orchestrator.agents.codex import CodexAgent
from orchestrator.agents.gemini import GeminiAgent
from orchestrator.agents.generic import GenericAgent
from orchestrator.errors import InputError, closest

GENERIC = GenericAgent()
AGENTS: tuple[Agent, ...] = (ClaudeAgent(), CodexAgent(), GeminiAgent(), AiderAgent(), GENERIC)
_BY_NAME = {agent.name: agent for agent in AGENTS}
if len(_BY_NAME) != len(AGENTS):
    raise TypeError(f"two agents share a name in {[agent.name for agent in AGENTS]}")
AGENT_NAMES = tuple(_BY_NAME)


def get_agent(name: str) -> Agent:
    """The agent called `name`; InputError naming the closest known one when there is none."""
    agent = _BY_NAME.get(name)
    if agent is not None:
        return agent
    close = closest(name, AGENT_NAMES)
    guess = f"did you mean {close!r}? " if close else ""
    raise InputError(f"unknown agent {name!r} ({guess}known: {', '.join(AGENT_NAMES)}; or use --agent-cmd)")


def agent_of_command(argv: Sequence[str]) -> Agent:
    """The agent whose CLI this command line runs, judged by the program's name (so a `--agent-cmd`
    that runs `claude` still gets Claude's launch checks); the generic agent for any other program."""
    return _BY_NAME.get(Path(argv[0]).name, GENERIC) if argv else GENERIC


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
