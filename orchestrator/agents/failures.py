"""The failure table (what each failure class means and what it is worth), and failure classes
from an agent's own error text, shared by the adapters whose CLIs report API errors only as
messages (Codex, Gemini, Aider); Claude Code carries a status code instead."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from orchestrator.models import FailureClass

SUMMARY_WIDTH = 60

# transient: usually goes away, worth another attempt after a backoff.
# permanent: repeats identically and only costs money: never retried, and the same one repeating
#   stops new launches (the circuit breaker).
# account_wide: permanent, and true of every task of the account: stops launches at once.
# stopped: the task was ended on purpose (cancelled, out of time): neither retried nor counted.
# own: the task's own work fell short (its checks failed after its fix-up rounds): the same agent
#   would leave the same, so it is never retried, and it says nothing of the other tasks, so the
#   breaker does not count it.
FailureKind = Literal["none", "transient", "permanent", "account_wide", "stopped", "own"]


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    wording: str  # what happened, in words for a person


# Every failure class, declared once: retries, the circuit breaker and reports read it.
FAILURES: Mapping[FailureClass, Failure] = MappingProxyType({
    "none": Failure("none", "no failure"),
    "api_error": Failure("transient", "the model API failed or was overloaded"),
    "rate_limited": Failure("transient", "the model API's rate limit was hit"),
    "killed": Failure("transient", "the agent was killed"),
    "stalled": Failure("transient", "the agent stopped making progress"),
    "crashed": Failure("transient", "the agent crashed"),
    "no_result": Failure("transient", "the agent ended without a result"),
    # The WorkflowManager (or the cluster worker running it) died without leaving a result.
    "lost": Failure("transient", "the task's WorkflowManager died without a result"),
    # A resume found no session and the fresh start was not possible (another agent).
    "session_lost": Failure("transient", "the agent's session to continue was gone"),
    "auth": Failure("account_wide", "the agent is not logged in or its key was refused"),
    "max_turns": Failure("permanent", "the agent reached its turn limit"),
    "budget": Failure("permanent", "the agent reached its spending limit"),
    "verify_failed": Failure("permanent", "the verify command failed"),
    "validation": Failure("own", "its work failed the validation checkpoint after its fix-up rounds"),
    # Flags refused, a command that will not start, an error result: the same agent CLI runs every
    # task, so the same error again means the next task would fail the same way.
    "agent_error": Failure("permanent", "the agent reported an error"),
    # The setup hook and worktree are the same for every task: a failure there repeats.
    "setup_failed": Failure("permanent", "setting up the task's worktree failed"),
    "timeout": Failure("stopped", "the task ran out of time"),
    "cancelled": Failure("stopped", "the task was cancelled"),
})

# Views of the table: what retries (transient), and what never does and counts for the breaker.
TRANSIENT = frozenset(name for name, f in FAILURES.items() if f.kind == "transient")
PERMANENT = frozenset(name for name, f in FAILURES.items() if f.kind in ("permanent", "account_wide"))


def failure_kind(failure: FailureClass) -> FailureKind:
    return FAILURES[failure].kind


def describe_failure(failure: FailureClass) -> str:
    """The failure in words, e.g. for a run that stopped because of it."""
    return FAILURES[failure].wording


# Order matters: an auth failure often mentions a retry, and a 429 message often says "error".
_PATTERNS: tuple[tuple[FailureClass, re.Pattern[str]], ...] = (
    (
        "auth",
        re.compile(
            r"\b401\b|\b403\b|unauthori[sz]ed|authenticat|invalid api key|incorrect api key|"
            r"api key not valid|missing environment variable|not logged in|please (run )?/?login|"
            r"permission[_ ]denied|set an auth method",
            re.IGNORECASE,
        ),
    ),
    (
        "rate_limited",
        re.compile(
            r"\b429\b|too many requests|rate.?limit|usage limit|quota|resource[_ ]exhausted|"
            r"resource has been exhausted",
            re.IGNORECASE,
        ),
    ),
    (
        "api_error",
        re.compile(
            r"\b5\d\d\b|internal server error|server had an error|overloaded|high demand|"
            r"unavailable|stream disconnected|connection failed|connection error|timed? ?out|"
            r"apiconnectionerror|internalservererror|serviceunavailable",
            re.IGNORECASE,
        ),
    ),
)


def classify_error_text(text: str) -> FailureClass:
    """`auth`, `rate_limited` or `api_error` when the text names one, else `agent_error`."""
    for failure, pattern in _PATTERNS:
        if pattern.search(text):
            return failure
    return "agent_error"


def short(text: str, width: int = SUMMARY_WIDTH) -> str:
    """One line of at most `width` characters, for heartbeats and one-line messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def stderr_tail(stderr: str, width: int = 160) -> str:
    """The last non-blank stderr line, shortened; empty when there is none."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return short(lines[-1], width) if lines else ""
