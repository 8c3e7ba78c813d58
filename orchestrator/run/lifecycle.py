"""Where a run stands, read from its journal: work left, or ended by its last orchestrator."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import StateError
from orchestrator.state.atomic import read_json
from orchestrator.state.journal import read_journal
from orchestrator.state.registry_models import ProcessInfo, replay

JOURNAL_FILE = "events.jsonl"
PLAN_FILE = "plan.json"  # the plan and options a run was started with


def saved_plan(run_dir: Path) -> dict[str, Any]:
    """The run's saved plan (`tasks`, `base_ref`, `base_sha`, ...); empty when it has none or it
    cannot be read (a damaged file is kept aside by read_json)."""
    try:
        saved = read_json(run_dir / PLAN_FILE)
    except StateError:
        return {}
    plan = saved.get("plan") if isinstance(saved, dict) else None
    return plan if isinstance(plan, dict) else {}


def resumable(entries: Mapping[str, ProcessInfo]) -> bool:
    """Work is left: a task not in a final state, or one an interrupt cancelled."""
    return any(not e.status.terminal or e.cancelled_by == "interrupt" for e in entries.values())


def ended_cleanly(records: Sequence[Mapping[str, Any]]) -> bool:
    """The run's last orchestrator got to the end (run_finished after the last start): its
    registry is final and its report written. A kill after the last task but before that end
    leaves a run whose tasks are all done and which resume still finishes."""
    for record in reversed(records):
        if record.get("event") == "run_finished":
            return True
        if record.get("event") in ("run_started", "run_resumed"):
            return False
    return False


def is_finished(run_dir: Path) -> bool:
    """Nothing is left to do in the run: `resume` would only say so."""
    records = list(read_journal(run_dir / JOURNAL_FILE))
    return bool(records) and ended_cleanly(records) and not resumable(replay(records, run_dir.name))
