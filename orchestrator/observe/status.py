"""What `orchestrator status` and the live view show: one row per task, progress and an ETA.

Rows are built from registry entries (`ProcessInfo`), so a live run (in-process snapshots) and
another terminal (the JSON files in the monitoring directory) render the same thing. Reading never
moves or rewrites a file: the writer owns them.

Files alone cannot tell a run in progress from one whose orchestrator was killed: both say
`running`. So a run the journal shows unfinished is checked against the process that should be
driving it, and one nobody drives is reported as orphaned, with the command that continues it.
"""
from __future__ import annotations

import json
import math
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from orchestrator.agents.failures import describe_failure
from orchestrator.config.durations import format_duration
from orchestrator.errors import InputError, StateError
from orchestrator.gitops import git
from orchestrator.models import FailureClass, TaskStatus, sum_costs, utcnow
from orchestrator.observe.run_segments import parse_ts
from orchestrator.proctree import is_alive
from orchestrator.state.journal import read_journal
from orchestrator.state.registry import REGISTRY_FILE
from orchestrator.state.registry_models import ProcessInfo, RetryWait, replay, seconds_since
from orchestrator.state.runlock import RunLock

_ORDER = {TaskStatus.RUNNING: 0, TaskStatus.QUEUED: 1}  # then every terminal state, in input order
_FINISHED_WORK = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.TIMEOUT)
_RUN_STARTS = frozenset({"run_started", "run_resumed"})
# Only `run_finished`, written once the report exists: a run killed after its registry was
# finalized but before its report still has something for `resume` to finish.
_RUN_ENDS = frozenset({"run_finished"})


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
    orchestrator_gone: bool = False
    """Shown as running, but nobody watches it any more: its elapsed time stops where the
    orchestrator was last seen, since whether the agent still works is unknown."""
    retry_note: str | None = None
    """For a queued task waiting out a retry backoff: "retry 2/3 in 4s (why)"."""


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
    orchestrator_alive: bool | None = None
    """Whether the process driving the run still runs; None when the run ended or, with no
    journal to go by, nobody can tell."""
    orphaned: bool = False
    orchestrator_gone_since: str | None = None
    resume_command: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for row in data["rows"]:
            row["status"] = row["status"].value
        return data

    def notice(self, now: datetime | None = None) -> str | None:
        """The one line that says this run's orchestrator is gone, or None while it is not."""
        if not self.orphaned:
            return None
        return orphan_notice(self.run_id, self.orchestrator_gone_since, now)


@dataclass(frozen=True)
class RunLiveness:
    """Is anybody still driving a run? From its journal and the repository's run lock."""

    run_id: str
    unfinished: bool
    """The journal's last `run_started`/`run_resumed` has no `run_finished` after it."""
    alive: bool | None
    """Only asked of an unfinished run (None otherwise)."""
    last_seen: str | None
    """When the orchestrator last wrote anything we can see (ISO-8601)."""

    @property
    def orphaned(self) -> bool:
        return self.unfinished and self.alive is False

    @property
    def resume_command(self) -> str:
        return f"orchestrator resume {shlex.quote(self.run_id)}"


ETA_NOTE = "estimate: mean time of finished tasks x work left / slots"


def row_from_entry(entry: ProcessInfo, now: datetime, *, gone_at: datetime | None = None) -> TaskRow:
    """`gone_at`: when the run's orchestrator was last seen, if it is gone; a running task's
    clock stops there instead of counting time nobody watched."""
    if entry.status.terminal:
        elapsed = entry.duration_seconds if entry.started_at else None
    elif entry.started_at:
        elapsed = seconds_since(entry.started_at, gone_at or now)
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
        orchestrator_gone=gone_at is not None and entry.status is TaskStatus.RUNNING,
        retry_note=retry_note(entry.retry_wait, now, gone=gone_at is not None)
        if entry.status is TaskStatus.QUEUED else None,
    )


def retry_note(wait: RetryWait | None, now: datetime, *, gone: bool = False) -> str | None:
    """"retry 2/3 in 4s (the model API failed or was overloaded)", or None when not waiting.
    With the orchestrator gone nothing starts the retry until `resume` does."""
    if wait is None:
        return None
    left = None if gone else ((parse_ts(wait.retry_at) or now) - now).total_seconds()
    return describe_retry(left, wait.failure, count=f"{wait.retry}/{wait.retries}")


def describe_retry(left: float | None, failure: FailureClass, *, count: str = "") -> str:
    """The retry wording shared by every view; `left`: seconds until it may start (None: only
    on resume). Past its time a retry is "due": it waits for a slot."""
    if left is None:
        when = "on resume"
    elif left <= 0:
        when = "due"
    else:
        # Whole seconds, rounded up: a countdown that says "0s" while still waiting would mislead.
        seconds = math.ceil(left)
        when = f"in {seconds}s" if seconds < 60 else f"in {format_duration(seconds)}"
    return " ".join(part for part in ("retry", count, when) if part) + f" ({describe_failure(failure)})"


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
    return Progress(
        total=len(rows),
        counts=counts,
        done=sum(1 for r in rows if r.status.terminal),
        running=counts["running"],
        failed=counts["failed"] + counts["timeout"],
        queued=counts["queued"],
        cost_usd=sum_costs(r.cost_usd for r in rows),
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
    liveness: RunLiveness | None = None,
) -> RunView:
    now = now or utcnow()
    orphaned = liveness is not None and liveness.orphaned and not finished
    gone_at = parse_ts(liveness.last_seen) if liveness is not None and orphaned else None
    if orphaned and gone_at is None:
        gone_at = now  # no timestamp to stop at; the notice still says the orchestrator is gone
    rows = sort_rows(row_from_entry(e, now, gone_at=gone_at) for e in entries.values())
    summary = progress(rows, slots)
    if orphaned:
        summary = replace(summary, eta_seconds=None)  # nothing moves until someone resumes the run
    return RunView(
        run_id=run_id, finished=finished, rows=rows, progress=summary, slots=slots, source=source,
        orchestrator_alive=liveness.alive if liveness is not None else None,
        orphaned=orphaned,
        orchestrator_gone_since=liveness.last_seen if liveness is not None and orphaned else None,
        resume_command=liveness.resume_command if liveness is not None and orphaned else None,
    )


# -- is the run's orchestrator still there? --------------------------------------------------------


def run_liveness(gadugi_dir: Path, run_id: str, *, seen: str | None = None) -> RunLiveness:
    """Read the run's journal; for an unfinished run, check its orchestrator.

    `seen`: another time the orchestrator is known to have written something (the registry's
    timestamp), so a long quiet task does not make it look gone since the task's last transition.
    """
    records = read_journal(gadugi_dir / "runs" / run_id / "events.jsonl")
    start: dict[str, Any] | None = None
    ended = False
    for record in records:
        event = record.get("event")
        if event in _RUN_STARTS:
            start, ended = record, False
        elif event in _RUN_ENDS and start is not None:
            ended = True
    unfinished = start is not None and not ended
    alive = _orchestrator_alive(gadugi_dir, run_id, start or {}) if unfinished else None
    last = records[-1].get("ts") if records else None
    return RunLiveness(run_id=run_id, unfinished=unfinished, alive=alive, last_seen=_latest(last, seen))


def _orchestrator_alive(gadugi_dir: Path, run_id: str, start: Mapping[str, Any]) -> bool:
    # The process that wrote the last start record, when it said who it is (pid and create time,
    # so a reused pid is never taken for it), settles it without touching the lock.
    if _identity_alive(start) is True:
        return True
    # Otherwise the run lock: during a `resume` the lock is already held, by a new process, before
    # its `run_resumed` record is written. A lock held for another run, or whose recorded holder
    # is dead (some child kept the descriptor), drives nothing here.
    lock = RunLock(gadugi_dir)
    if not lock.held_by_other():
        return False
    holder = lock.holder()
    return holder.get("run_id") == run_id and _identity_alive(holder) is not False


def _identity_alive(record: Mapping[str, Any]) -> bool | None:
    """Is the process a record names (pid + create_time) alive? None when it names none."""
    pid, created = record.get("pid"), record.get("create_time")
    if isinstance(pid, bool) or not isinstance(pid, int) or not isinstance(created, (int, float)):
        return None
    return is_alive(pid, float(created))


def orphaned_runs(project_root: Path) -> list[RunLiveness]:
    """Every run in the repository that the journal shows unfinished and nobody drives."""
    gadugi = git.toplevel(project_root.resolve()) / ".gadugi"
    try:
        registry = _read(gadugi / "monitoring" / REGISTRY_FILE)
    except StateError:
        registry = None  # only a better "last seen" for the current run; the journals decide
    current = registry.get("run_id") if isinstance(registry, dict) else None
    seen = registry.get("timestamp") if isinstance(registry, dict) else None
    found = []
    for journal in sorted((gadugi / "runs").glob("*/events.jsonl")):
        run_id = journal.parent.name
        liveness = run_liveness(gadugi, run_id, seen=seen if run_id == current and isinstance(seen, str) else None)
        if liveness.orphaned:
            found.append(liveness)
    return found


def orphan_notice(run_id: str, since: str | None, now: datetime | None = None) -> str:
    """One line: the run's orchestrator is gone, since when, and how to continue the run."""
    when = ""
    stamp = parse_ts(since)
    if stamp is not None:
        ago = max(0.0, ((now or utcnow()) - stamp).total_seconds())
        when = f" since {stamp.astimezone():%Y-%m-%d %H:%M:%S %Z} ({_ago(ago)})"
    return (f"run {run_id}: orchestrator gone{when}, its tasks unwatched; "
            f"continue with: orchestrator resume {shlex.quote(run_id)}")


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s ago"
    if minutes < 60:
        return f"{minutes} min ago"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min ago"
    return f"{hours // 24} days ago"


def _latest(*stamps: object) -> str | None:
    dated = [(when, stamp) for stamp in stamps if isinstance(stamp, str) and (when := parse_ts(stamp))]
    return max(dated)[1] if dated else None


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


def run_slots(runs_dir: Path | None, run_id: str) -> int | None:
    """max_parallel from the journal's `run_started` record (near the top), if there is one."""
    if runs_dir is None:
        return None
    path = runs_dir / run_id / "events.jsonl"
    try:
        with path.open(encoding="utf-8") as fh:
            for line in islice(fh, 200):
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
    monitoring_dir: Path, run_id: str, *, runs_dir: Path | None = None, now: datetime | None = None
) -> RunView:
    """The view of run `run_id` from the files another process wrote.

    The current run comes from process_registry.json; an older one from `<run>_final.json`, or, if
    it never finished, is replayed from its journal in `runs_dir` (as is the current one when its
    registry file is damaged). With `runs_dir`, the view also says whether the run's orchestrator
    is still alive. InputError when there is no such run.
    """
    if not monitoring_dir.is_dir():
        raise InputError(f"no run found: {monitoring_dir} does not exist (start one with `orchestrator run`)")
    registry_path = monitoring_dir / REGISTRY_FILE
    try:
        registry, damaged = _read(registry_path), None
    except StateError as exc:
        registry, damaged = None, exc
    status = _read(monitoring_dir / f"{run_id}_status.json")
    finished = bool(status.get("finished")) if isinstance(status, dict) else False
    final_path = monitoring_dir / f"{run_id}_final.json"
    journal = runs_dir / run_id / "events.jsonl" if runs_dir is not None else None
    current = isinstance(registry, dict) and registry.get("run_id") == run_id
    if current:
        entries, source = _entries(registry, registry_path), registry_path
    elif (final := _read(final_path)) is not None:
        entries, source, finished = _entries(final, final_path), final_path, True
    elif journal is not None and journal.is_file():
        entries, source = replay(read_journal(journal), run_id), journal
    elif damaged is not None:
        raise damaged
    else:
        raise InputError(f"no run {run_id!r} in {monitoring_dir}")
    liveness = None
    if runs_dir is not None:
        # The run lock lives beside runs/, in .gadugi; the registry's own timestamp is the
        # orchestrator's latest sign of life when the registry is this run's.
        seen = registry.get("timestamp") if current and isinstance(registry, dict) else None
        liveness = run_liveness(runs_dir.parent, run_id, seen=seen if isinstance(seen, str) else None)
    return build_view(run_id, entries, finished=finished, slots=run_slots(runs_dir, run_id), now=now,
                      source=str(source), liveness=liveness)
