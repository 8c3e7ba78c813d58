"""What `orchestrator status` and the live view show: one row per task, progress and an ETA.

Rows are built from registry entries (`ProcessInfo`), so a live run (in-process snapshots) and
another terminal (the JSON files in the monitoring directory) render the same thing. Reading never
moves or rewrites a file: the writer owns them.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError, StateError
from orchestrator.journal import read_journal
from orchestrator.models import TaskStatus, utcnow
from orchestrator.registry_models import ProcessInfo, replay, seconds_since

REGISTRY_FILE = "process_registry.json"
_ORDER = {TaskStatus.RUNNING: 0, TaskStatus.QUEUED: 1}  # then every terminal state, in input order
_FINISHED_WORK = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.TIMEOUT)


@dataclass(frozen=True)
class TaskRow:
    """One line of the table."""

    task_id: str
    status: TaskStatus
    phase: str
    attempt: int
    elapsed_seconds: float | None
    last_event: str | None
    turns: int
    cost_usd: float | None
    branch: str = ""
    error_message: str | None = None
    started_at: str | None = None
    completed_at: str | None = None


@dataclass(frozen=True)
class Progress:
    total: int
    counts: dict[str, int]
    done: int
    running: int
    failed: int  # failed + timeout: the tasks that need a look
    queued: int
    cost_usd: float | None
    eta_seconds: float | None


@dataclass(frozen=True)
class RunView:
    run_id: str
    finished: bool
    rows: list[TaskRow]
    progress: Progress
    slots: int | None
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for row in data["rows"]:
            row["status"] = row["status"].value
        return data


ETA_NOTE = "estimate: mean time of finished tasks x work left / slots"


def row_from_entry(entry: ProcessInfo, now: datetime) -> TaskRow:
    if entry.status.terminal:
        elapsed = entry.duration_seconds if entry.started_at else None
    elif entry.started_at:
        elapsed = seconds_since(entry.started_at, now)
    else:
        elapsed = None
    return TaskRow(
        task_id=entry.task_id,
        status=entry.status,
        phase=entry.phase.value,
        attempt=entry.attempt,
        elapsed_seconds=elapsed,
        last_event=entry.last_event,
        turns=entry.turns,
        cost_usd=entry.cost_usd,
        branch=entry.branch,
        error_message=entry.error_message,
        started_at=entry.started_at,
        completed_at=entry.completed_at,
    )


def sort_rows(rows: Iterable[TaskRow]) -> list[TaskRow]:
    """Running first, then queued, then finished; stable, so input order holds within each."""
    return sorted(rows, key=lambda r: _ORDER.get(r.status, 2))


def estimate_eta(rows: Iterable[TaskRow], slots: int | None) -> float | None:
    """Seconds until the run ends, or None before any task has finished.

    An estimate, and labelled as one wherever shown: every task is assumed to take the mean
    duration of the tasks that finished so far; a running task has that mean minus its elapsed
    time left; the work left is spread over the slots, and the result is never less than the
    longest single piece left. None too while a task has run longer than that mean, since
    nothing then says when it will end. Ordering edges are ignored, so a long dependency chain
    makes it optimistic.
    """
    rows = list(rows)
    durations = [r.elapsed_seconds for r in rows if r.status in _FINISHED_WORK and r.elapsed_seconds]
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    running = [r.elapsed_seconds or 0.0 for r in rows if r.status is TaskStatus.RUNNING]
    if any(elapsed >= mean for elapsed in running):
        # A task already running longer than the typical one could end any moment or in an hour:
        # saying "~0s" would be a guess dressed as a number.
        return None
    left = [mean - elapsed for elapsed in running]
    left += [mean for r in rows if r.status is TaskStatus.QUEUED]
    if not left:
        return 0.0
    width = max(1, min(slots or len(left), len(left)))
    return max(sum(left) / width, max(left))


def progress(rows: Iterable[TaskRow], slots: int | None) -> Progress:
    rows = list(rows)
    counts = {s.value: 0 for s in TaskStatus}
    for r in rows:
        counts[r.status.value] += 1
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    return Progress(
        total=len(rows),
        counts=counts,
        done=sum(1 for r in rows if r.status.terminal),
        running=counts["running"],
        failed=counts["failed"] + counts["timeout"],
        queued=counts["queued"],
        cost_usd=round(sum(costs), 6) if costs else None,
        eta_seconds=estimate_eta(rows, slots),
    )


def build_view(
    run_id: str,
    entries: Mapping[str, ProcessInfo],
    *,
    finished: bool,
    slots: int | None,
    now: datetime | None = None,
    source: str = "",
) -> RunView:
    now = now or utcnow()
    rows = sort_rows(row_from_entry(e, now) for e in entries.values())
    return RunView(run_id=run_id, finished=finished, rows=rows, progress=progress(rows, slots), slots=slots,
                   source=source)


# -- reading another process's files ---------------------------------------------------------------


def _read(path: Path) -> Any | None:
    """Parsed JSON, None when missing. Writers replace files atomically, so a parse error means a
    damaged file: say so, and leave it where it is for the writer to deal with."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from exc


def _entries(data: Any, path: Path) -> dict[str, ProcessInfo]:
    processes = data.get("processes") if isinstance(data, dict) else None
    if not isinstance(processes, dict):
        raise StateError(f"{path} has no 'processes' object")
    try:
        return {tid: ProcessInfo.model_validate(raw) for tid, raw in processes.items()}
    except ValueError as exc:
        raise StateError(f"{path}: unreadable entry: {str(exc).splitlines()[0]}") from exc


def latest_run_id(monitoring_dir: Path) -> str | None:
    """The run in process_registry.json, else the one whose status file changed last."""
    data = _read(monitoring_dir / REGISTRY_FILE)
    if isinstance(data, dict) and isinstance(data.get("run_id"), str) and data["run_id"]:
        return str(data["run_id"])
    status_files = sorted(monitoring_dir.glob("*_status.json"), key=lambda p: p.stat().st_mtime)
    return status_files[-1].name.removesuffix("_status.json") if status_files else None


def run_slots(runs_dir: Path | None, run_id: str) -> int | None:
    """max_parallel from the journal's `run_started` record (near the top), if there is one."""
    if runs_dir is None:
        return None
    path = runs_dir / run_id / "events.jsonl"
    try:
        with path.open(encoding="utf-8") as fh:
            for _, line in zip(range(200), fh):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and record.get("event") == "run_started":
                    value = record.get("max_parallel")
                    return value if isinstance(value, int) else None
    except OSError:
        return None
    return None


def load_run(
    monitoring_dir: Path, run_id: str | None = None, *, runs_dir: Path | None = None, now: datetime | None = None
) -> RunView:
    """The view of `run_id` (default: the latest run) from the files another process wrote.

    The current run comes from process_registry.json; an older one from `<run>_final.json`, or, if
    it never finished, is replayed from its journal in `runs_dir`. InputError when there is none.
    """
    if not monitoring_dir.is_dir():
        raise InputError(f"no run found: {monitoring_dir} does not exist (start one with `orchestrator run`)")
    wanted = run_id or latest_run_id(monitoring_dir)
    if wanted is None:
        raise InputError(f"no run found in {monitoring_dir} (start one with `orchestrator run`)")
    status = _read(monitoring_dir / f"{wanted}_status.json")
    finished = bool(status.get("finished")) if isinstance(status, dict) else False
    registry_path = monitoring_dir / REGISTRY_FILE
    final_path = monitoring_dir / f"{wanted}_final.json"
    registry = _read(registry_path)
    if isinstance(registry, dict) and registry.get("run_id") == wanted:
        entries, source = _entries(registry, registry_path), registry_path
    elif (final := _read(final_path)) is not None:
        entries, source, finished = _entries(final, final_path), final_path, True
    elif runs_dir is not None and (journal := runs_dir / wanted / "events.jsonl").is_file():
        entries, source = replay(read_journal(journal), wanted), journal
    else:
        raise InputError(f"no run {wanted!r} in {monitoring_dir}")
    return build_view(wanted, entries, finished=finished, slots=run_slots(runs_dir, wanted), now=now,
                      source=str(source))
