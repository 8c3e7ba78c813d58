"""What every agent CLI adapter declares, and the one parser surface the WorkflowManager reads.

An adapter is one module with one `Agent` subclass; the registry in `orchestrator.agents` lists
them. Everything the rest of the package asks about an agent (its command line, its parser,
whether it can resume, how to install it, what it refuses at launch) is asked of that object, so
no caller branches on an agent's name.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from orchestrator.models import AgentOutcome, Tokens

# Declared by every subclass, with no default: an adapter that forgets one fails at import.
_REQUIRED_FACTS = ("name", "install_hint", "resumes_sessions", "prompt_on_stdin")


class ParsedEvent(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def summary(self) -> str: ...


class AgentParser(Protocol):
    """Feed an agent's stdout lines in order; read state at any time (heartbeats) and `outcome()`
    at the end. Read-only members, so parsers may serve them as properties or plain attributes."""

    @property
    def session_id(self) -> str | None: ...
    @property
    def turns(self) -> int: ...
    @property
    def tokens(self) -> Tokens: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def cost_estimated(self) -> bool:
        """True when `cost_usd` is our list-price estimate from tokens, not a figure the CLI reported."""
        ...
    @property
    def events(self) -> int: ...
    @property
    def final_message(self) -> str: ...
    @property
    def last_tool(self) -> str | None: ...

    def feed(self, line: str) -> ParsedEvent | None: ...

    def outcome(self, exit_code: int | None, stderr: str = "") -> AgentOutcome: ...


@dataclass(frozen=True)
class Invocation:
    """What one headless run's command line may be built from. Each agent takes the options its
    CLI has a flag for and leaves the rest, so a Claude-only option never reaches another CLI."""

    worktree: str
    prompt_file: str
    model: str | None = None
    max_turns: int | None = None
    permission_mode: str | None = None
    allowed_tools: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    resume_session: str | None = None
    mcp: str = "inherit"  # MCP servers: inherit, none, or a config file (Claude Code)
    max_budget_usd: float | None = None
    # For a user-supplied command (`--agent-cmd`): the template, and what its placeholders name
    # besides the prompt file and the worktree.
    template: str | None = None
    task_id: str = ""
    branch: str = ""
    run_id: str = ""


class Agent(ABC):
    """One agent CLI. Subclasses declare the facts below as class attributes and implement
    `command` and `parser`; the argv's first item is the program name, resolved by the caller."""

    name: ClassVar[str]
    install_hint: ClassVar[str]
    # Whether a retry can continue the previous attempt's session instead of starting over.
    resumes_sessions: ClassVar[bool]
    # Whether the CLI reads the prompt from stdin; otherwise `command` names the prompt file.
    prompt_on_stdin: ClassVar[bool]
    # Whether launches must be spaced out (Claude Code races on its own settings files).
    staggered_launch: ClassVar[bool] = False
    # What the CLI writes under HOME (its sessions, caches): writable inside the sandbox.
    home_state: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [fact for fact in _REQUIRED_FACTS if not hasattr(cls, fact)]
        if missing:
            raise TypeError(f"agent {cls.__name__} does not declare {', '.join(missing)}")

    @abstractmethod
    def command(self, run: Invocation) -> list[str]:
        """argv for one headless run in `run.worktree`."""

    @abstractmethod
    def parser(self, model: str | None = None) -> AgentParser:
        """A fresh parser for one run's output. `model` prices the tokens of CLIs that report no
        dollars (the price table in `pricing`); CLIs that report their cost or name their model
        in their output use it only as a fallback or not at all."""

    def check_command(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, euid: int | None = None
    ) -> None:
        """Raise InputError (one line) for a command line this CLI would refuse at launch; `env`
        is the agent's environment, `euid` the user it runs as. Most CLIs have no such rule."""
        return None
