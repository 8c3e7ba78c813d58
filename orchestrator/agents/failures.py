"""Failure classes from an agent's own error text, shared by the adapters whose CLIs report API
errors only as messages (Codex, Gemini, Aider); Claude Code carries a status code instead."""
from __future__ import annotations

import re

from orchestrator.models import FailureClass

SUMMARY_WIDTH = 60

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
