"""What every adapter's parser does the same way: read one JSON event line, and turn its final
state into the common AgentOutcome."""
from __future__ import annotations

import json
from typing import Any

from orchestrator.agents.base import AgentParser
from orchestrator.models import AgentOutcome, FailureClass


def decode_event(line: str) -> tuple[dict[str, Any] | None, bool]:
    """(event, is_noise): the JSON object of a line with a string `type`; blank lines are neither
    an event nor noise, anything else that is not such an object is noise."""
    text = line.strip()
    if not text:
        return None, False
    try:
        event = json.loads(text)
    except ValueError:
        return None, True
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return None, True
    return event, False


def build_outcome(
    parser: AgentParser,
    failure: FailureClass,
    message: str,
    exit_code: int | None,
    *,
    result_subtype: str | None = None,
    rate_limit_resets_at: float | None = None,
) -> AgentOutcome:
    return AgentOutcome(
        success=failure == "none",
        failure=failure,
        message=message,
        exit_code=exit_code,
        session_id=parser.session_id,
        num_turns=parser.turns,
        tokens=parser.tokens,
        cost_usd=parser.cost_usd,
        cost_estimated=parser.cost_estimated and parser.cost_usd is not None,
        final_message=parser.final_message,
        last_tool=parser.last_tool,
        result_subtype=result_subtype,
        events=parser.events,
        rate_limit_resets_at=rate_limit_resets_at,
    )
