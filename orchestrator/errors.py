"""One error base for everything the user can cause or fix; the CLI maps it to exit code 1."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class OrchestratorError(Exception):
    """An expected failure with a one-line message meant for the user."""


class InputError(OrchestratorError):
    """Bad prompt files, flags or repository state found before anything was created."""


class PlanError(InputError):
    """The prompts cannot form a plan: unknown dependency, cycle, duplicate ids."""


class GitError(OrchestratorError):
    """A git command failed; carries the command and its output."""


class WorktreeError(OrchestratorError):
    """A worktree or branch could not be created, merged or removed safely."""


class AgentUnavailable(OrchestratorError):
    """The agent CLI is missing or not logged in."""


class StateError(OrchestratorError):
    """State files are locked by another run, corrupt or inconsistent."""


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name `name` is probably a typo of: the one place every "not found" message
    (options, keys, prompt names, task ids, agents, runs) gets its suggestion from."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` (did you mean 'x'?)`, or `` when nothing is close."""
    match = closest(name, known)
    return f" (did you mean {match!r}?)" if match else ""
