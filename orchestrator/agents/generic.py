"""Any command as the agent (`--agent-cmd 'tool --prompt-file {prompt_file}'`): outcome by exit code."""
from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.agents.base import Agent, Invocation
from orchestrator.errors import InputError
from orchestrator.models import AgentOutcome, Tokens

PLACEHOLDERS = ("prompt_file", "worktree", "task_id", "branch", "run_id")


def build_command(template: str, values: Mapping[str, str]) -> list[str]:
    """Split the template like a shell would, then fill placeholders per argument, so a value with
    spaces or quotes stays one argument and never passes through a shell."""
    try:
        parts = shlex.split(template)
    except ValueError as exc:
        raise InputError(f"--agent-cmd: cannot parse {template!r}: {exc}") from None
    if not parts:
        raise InputError("--agent-cmd is empty")
    out = []
    for part in parts:
        try:
            out.append(part.format_map(_Strict(values)))
        except (KeyError, IndexError, ValueError) as exc:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise InputError(f"--agent-cmd: unknown placeholder in {part!r} ({exc}); known: {known}") from None
    return out


class _Strict(dict[str, str]):
    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)

    def __missing__(self, key: str) -> str:
        raise KeyError(key)


@dataclass
class LineEvent:
    type: str
    summary: str


class GenericParser:
    """Every output line is a sign of life; the exit code alone decides the outcome."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.turns = 0
        self.cost_usd: float | None = None
        self.cost_estimated = False
        self.tokens = Tokens()
        self.events = 0
        self.last_line = ""
        self.last_tool: str | None = None
        self.last_event_at = 0.0

    @property
    def final_message(self) -> str:
        return self.last_line

    def feed(self, line: str) -> LineEvent | None:
        text = line.strip()
        if not text:
            return None
        self.events += 1
        self.last_line = text[:200]
        self.last_event_at = time.time()
        return LineEvent(type="output", summary=f"output: {text[:80]}")

    def outcome(self, exit_code: int | None, stderr: str = "") -> AgentOutcome:
        outcome = AgentOutcome(exit_code=exit_code, events=self.events, final_message=self.last_line)
        if exit_code == 0:
            outcome.success, outcome.message = True, "agent command exited 0"
        elif exit_code is not None and exit_code < 0:
            outcome.failure, outcome.message = "killed", f"agent killed by signal {-exit_code}"
        else:
            last = (stderr.strip().splitlines() or [""])[-1][:200]
            detail = f": {last}" if last else ""
            outcome.failure, outcome.message = "agent_error", f"agent command exited {exit_code}{detail}"
        return outcome


class GenericAgent(Agent):
    """The user's own command (`--agent-cmd`): whatever it is, it gets the prompt on stdin or
    through `{prompt_file}`, and only its exit code counts."""

    name = "generic"
    install_hint = "check --agent-cmd and PATH"
    resumes_sessions = False
    prompt_on_stdin = True

    def command(self, run: Invocation) -> list[str]:
        if run.template is None:
            raise InputError("agent 'generic' runs the command given with --agent-cmd, and none was given")
        values = {
            "prompt_file": run.prompt_file, "worktree": run.worktree, "task_id": run.task_id,
            "branch": run.branch, "run_id": run.run_id,
        }
        return [*build_command(run.template, values), *run.extra_args]

    def parser(self, model: str | None = None) -> GenericParser:
        return GenericParser()
