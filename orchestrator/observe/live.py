"""The live view of a run on a terminal, and the choice between it and plain progress lines.

`rich` draws the table: with dozens of agents a redrawn table is readable where scrolling lines
are not, and rich honours NO_COLOR and stops animating when the output is not a terminal. The same
renderer serves `orchestrator status`, from registry snapshots.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Protocol, Self

import click
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.agents.failures import describe_failure
from orchestrator.config.durations import format_duration
from orchestrator.models import FailureClass, TaskStatus
from orchestrator.observe.events import (
    STATUS_CHANGES,
    BreakerTripped,
    CancelRequested,
    EngineEvent,
    FixupStarted,
    Heartbeat,
    Interrupted,
    Killing,
    Observer,
    PhaseChanged,
    Retrying,
    RunFinished,
    RunStarted,
    RunTimedOut,
    Stalled,
    TaskAttached,
    TaskCancelled,
    TaskFinished,
    TaskLog,
    TaskStarted,
    Waiting,
)
from orchestrator.observe.status import (
    ETA_NOTE,
    RunView,
    TaskRow,
    build_view,
    describe_retry,
    progress,
    sort_rows,
)
from orchestrator.state.registry_models import ProcessInfo

log = logging.getLogger(__name__)

REFRESH_PER_SECOND = 4.0
SNAPSHOT_INTERVAL = 0.5  # seconds a registry snapshot is reused between redraws

STATUS_STYLE = {
    TaskStatus.QUEUED: "dim",
    TaskStatus.RUNNING: "bold cyan",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "bold red",
    TaskStatus.TIMEOUT: "bold yellow",
    TaskStatus.CANCELLED: "magenta",
}


class Snapshotter(Protocol):
    def snapshot(self) -> dict[str, ProcessInfo]: ...


# -- rendering (shared with `status`) -------------------------------------------------------------


TASK_ID_CAP = 40  # longer ids keep both ends around a "…": ids of one plan often differ only at the end
_TASK_ID_MIN = 12  # the least an id shrinks to when even the status column alone does not fit
_EVENT_MIN, _EVENT_MAX = 16, 72
# Each column costs its width plus 3 (a space of padding either side and the divider), less one
# for the table as a whole: box.SIMPLE_HEAD with pad_edge=False. tests/test_live.py checks the fit.
_COLUMN_GAP = 3
# When the columns do not fit, the task id stays whole (it is what names the row) and the others
# give way. The last event shrinks first, down to _EVENT_MIN; then cost and turns go (the report
# has both) to give it room, since it is what says why a task failed or waits; then the last event
# itself; then phase, try and elapsed. Status never goes. Only when id and status alone are too
# wide does the id shrink, keeping both ends.
_DROP_ORDER = ("cost", "turns", "last event", "phase", "try", "elapsed")
_COLUMNS: tuple[tuple[str, str, int], ...] = (  # name, justify, width (the task and event widths are fitted)
    ("task", "left", 0), ("status", "left", 9), ("phase", "left", 6), ("try", "right", 3),
    ("elapsed", "right", 7), ("last event", "left", 0), ("turns", "right", 5), ("cost", "right", 8),
)


def _cell(text: str | None, width: int) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def middle_ellipsis(text: str, width: int) -> str:
    """`text` in at most `width` characters, its middle replaced by "…" when too long."""
    if len(text) <= width:
        return text
    keep = max(width - 1, 2)
    head = (keep + 1) // 2
    return text[:head] + "…" + text[len(text) - (keep - head):]


def fit_columns(width: int, task_width: int, event_width: int) -> dict[str, int]:
    """The columns shown at `width` and their widths, in table order (see _DROP_ORDER)."""
    widths = {name: w for name, _, w in _COLUMNS}
    widths["task"] = task_width
    wanted_event = min(max(event_width, _EVENT_MIN), _EVENT_MAX)

    def used() -> int:
        return sum(widths.values()) + _COLUMN_GAP * len(widths) - 1

    def place_event() -> None:  # the last event takes whatever room is left, down to its minimum
        if "last event" in widths:
            widths["last event"] = 0
            widths["last event"] = max(_EVENT_MIN, min(wanted_event, width - used()))

    place_event()
    for name in _DROP_ORDER:
        if used() <= width:
            break
        del widths[name]
        place_event()
    if used() > width:
        widths["task"] = max(_TASK_ID_MIN, widths["task"] - (used() - width))
    return widths


def _status_cell(row: TaskRow) -> Text:
    # "running" would be a claim nobody can back: the orchestrator that watched it is gone.
    if row.orchestrator_gone:
        return Text("orphaned", style="bold red")
    if row.retry_note is not None:
        return Text("waiting", style="yellow")  # queued, but not before its retry time
    return Text(row.status.value, style=STATUS_STYLE[row.status])


def _event_text(row: TaskRow) -> str | None:
    if row.status in (TaskStatus.FAILED, TaskStatus.TIMEOUT):
        return row.error_message
    return row.retry_note or row.last_event


# The statuses a finished task can have, in the order the summary lists them.
_FINISHED_ORDER = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.TIMEOUT, TaskStatus.CANCELLED)


def summary_line(view: RunView, *, wall_seconds: float | None = None) -> Text:
    """The counts line: "5/11 finished (3 completed, 1 failed, 1 cancelled) · 2 running · ...".
    A failed task is finished, not done; the parenthesis names only the outcomes that happened."""
    p = view.progress
    line = Text(f"{p.done}/{p.total} finished")
    outcomes = [(s, p.counts.get(s.value, 0)) for s in _FINISHED_ORDER]
    outcomes = [(s, n) for s, n in outcomes if n]
    if outcomes:
        line.append(" (")
        for i, (status, n) in enumerate(outcomes):
            line.append(", " if i else "")
            bad = status in (TaskStatus.FAILED, TaskStatus.TIMEOUT)
            line.append(f"{n} {status.value}", style="bold red" if bad else "")
        line.append(")")
    # Tasks of a run whose orchestrator is gone may or may not still run: nobody knows.
    line.append(f" · {p.running} orphaned" if view.orphaned else f" · {p.running} running")
    line.append(f" · {p.queued} queued")
    if p.cost_usd is not None:
        line.append(f" · ${p.cost_usd:.4f}")
    if wall_seconds is not None:
        line.append(f" · elapsed {format_duration(wall_seconds)}")
    if view.finished:
        line.append(" · run ended", style="bold")
    elif view.orphaned:
        line.append(" · orchestrator gone", style="bold red")
    elif p.eta_seconds is not None:
        line.append(f" · ETA ~{format_duration(p.eta_seconds)} ({ETA_NOTE})", style="dim")
    return line


def render_view(view: RunView, *, width: int = 120, max_rows: int | None = None,
                wall_seconds: float | None = None) -> RenderableType:
    """The table (running tasks first) and a progress line, fitted to `width` columns (task ids
    whole up to TASK_ID_CAP, the other columns giving way); rows beyond `max_rows` are counted."""
    table = Table(title=f"run {view.run_id}" if view.run_id else None, title_justify="left", expand=False,
                  box=box.SIMPLE_HEAD, pad_edge=False)
    shown = view.rows if max_rows is None else view.rows[: max(max_rows, 1)]
    events = [_event_text(row) for row in shown]
    longest_id = max((len(r.task_id) for r in shown), default=4)
    widths = fit_columns(width, max(4, min(longest_id, TASK_ID_CAP)),
                         max((len(e or "") for e in events), default=0))
    # rich cannot shrink no_wrap columns, so every column gets its width explicitly.
    for name, justify, _ in _COLUMNS:
        if name in widths:
            table.add_column(name, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                             min_width=widths[name] if name == "task" else None, max_width=widths[name])
    for row, event in zip(shown, events, strict=True):
        cells: dict[str, RenderableType] = {
            "task": middle_ellipsis(row.task_id, widths["task"]),
            "status": _status_cell(row),
            "phase": row.phase,
            "try": str(row.attempt),
            "elapsed": format_duration(row.elapsed_seconds) if row.elapsed_seconds is not None else "-",
            "last event": _cell(event, widths.get("last event", 0)),
            "turns": str(row.turns) if row.turns else "-",
            "cost": f"${row.cost_usd:.4f}" if row.cost_usd is not None else "-",
        }
        table.add_row(*(cells[name] for name in widths))
    parts: list[RenderableType] = [table]
    hidden = len(view.rows) - len(shown)
    if hidden > 0:
        parts.append(Text(f"… {hidden} more task(s) not shown", style="dim"))
    parts.append(summary_line(view, wall_seconds=wall_seconds))
    return Group(*parts)


# -- the live observer ----------------------------------------------------------------------------


@dataclass
class _EventRow:
    """What the events alone say about a task, for when no registry was handed over."""

    status: TaskStatus = TaskStatus.RUNNING
    phase: str = "setup"
    attempt: int = 1
    started: float = 0.0
    elapsed: float | None = None
    last_event: str | None = None
    turns: int = 0
    cost_usd: float | None = None
    error: str | None = None
    retry_at: float | None = None  # monotonic time its retry may start, while it waits for it
    retry_failure: FailureClass = "none"


class LiveView:
    """Engine observer that redraws a table at most REFRESH_PER_SECOND times a second.

    With a `run_started` event carrying the registry, rows come from registry snapshots (queued
    tasks included); before that, or without one, from the engine's events. Stop it with
    `close()` (or a `run_finished` event); the table is transient, the summary printed after it
    is the lasting record.
    """

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        self.console = console
        self.verbose = verbose
        self.t0 = time.monotonic()
        self.run_id = ""
        self.slots: int | None = None
        self._registry: Snapshotter | None = None
        self._rows: dict[str, _EventRow] = {}
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, ProcessInfo]] | None = None
        self._snapshot_cost = 0.0
        self._live: Live | None = None
        self._closed = False

    def __call__(self, event: EngineEvent) -> None:
        message = self._apply(event)
        if isinstance(event, RunFinished):
            self.close()
            return
        self._start()
        if message is not None and self._live is not None:
            self._live.console.print(message)

    def _apply(self, event: EngineEvent) -> Text | None:
        now = time.monotonic()
        with self._lock:
            if isinstance(event, RunStarted):
                self.run_id = event.run_id
                self._registry = event.registry
                self.slots = event.max_parallel
                self._cached = None
                return None
            if isinstance(event, STATUS_CHANGES):
                self._cached = None  # a status changed: the next redraw takes a fresh snapshot
            task_id = event.task_id
            row = self._rows.get(task_id)
            match event:
                case TaskStarted(attempt=attempt):  # a new row: a retry's wait ends here
                    self._rows[task_id] = _EventRow(started=now, attempt=attempt)
                case Retrying(attempt=attempt, error=error) if row is not None:
                    # `attempt` is the one that failed; the next is queued.
                    row.status, row.attempt = TaskStatus.QUEUED, attempt + 1
                    row.phase, row.error = "queued", None
                    row.retry_at, row.retry_failure = now + event.delay, event.failure
                    return Text(f"retry: {task_id} attempt {row.attempt} after: {error or ''}", style="yellow")
                case PhaseChanged(phase=phase) if row is not None:
                    row.phase = phase
                case Heartbeat() if row is not None:
                    row.last_event = event.summary or row.last_event
                    row.turns = event.turns or row.turns
                    row.cost_usd = event.cost_usd if event.cost_usd is not None else row.cost_usd
                case TaskFinished(result=result):
                    row = self._rows.setdefault(task_id, _EventRow(started=now))
                    row.status, row.phase, row.elapsed = result.status, "done", result.duration_seconds
                    row.cost_usd, row.turns = result.outcome.cost_usd, result.outcome.num_turns
                    row.error = result.error_message
                    if result.status in (TaskStatus.FAILED, TaskStatus.TIMEOUT):
                        return Text(f"{result.status.value}: {task_id}: {result.error_message or ''}", style="red")
                case TaskCancelled(reason=reason):
                    self._rows[task_id] = _EventRow(status=TaskStatus.CANCELLED, phase="-", started=now, elapsed=0.0,
                                                    error=reason)
                case Interrupted(running=running):
                    return Text(f"interrupted: stopping {len(running)} running task(s); "
                                "press Ctrl-C again to kill them at once", style="bold yellow")
                case Killing(running=running):
                    return Text(f"killing {len(running)} task(s) now", style="bold red")
                case BreakerTripped(reason=reason) | RunTimedOut(reason=reason):
                    return Text(reason, style="bold red")
                case Stalled(reason=reason):
                    return Text(f"stalled: {task_id}: {reason}", style="yellow")
                case FixupStarted(round=round_, rounds=rounds, reason=reason):
                    line = f"fixing {round_}/{rounds}: {reason}"
                    if row is not None:
                        row.last_event = line
                    return Text(f"{task_id}: {line}", style="yellow")
                case TaskLog(message=message) if self.verbose:
                    return Text(f"{task_id}: {message}", style="dim")
        return None

    def view(self) -> RunView:
        """The current rows, from a registry snapshot when there is a registry."""
        with self._lock:
            registry, cached, slots = self._registry, self._cached, self.slots
        if registry is not None:
            now = time.monotonic()
            if cached is None or now - cached[0] > max(SNAPSHOT_INTERVAL, self._snapshot_cost * 20):
                cached = (now, registry.snapshot())
                # A snapshot holds the registry lock while it copies (65 ms at 1000 tasks, measured):
                # keep it under ~5% of the time so the engine and WorkflowManagers are not held up.
                self._snapshot_cost = time.monotonic() - now
                with self._lock:
                    self._cached = cached
            return build_view(self.run_id, cached[1], finished=False, slots=slots)
        with self._lock:
            now = time.monotonic()
            rows = sort_rows(
                TaskRow(task_id=tid, status=r.status, phase=r.phase, attempt=r.attempt,
                        elapsed_seconds=r.elapsed if r.elapsed is not None else now - r.started,
                        last_event=r.error if r.error else r.last_event, turns=r.turns, cost_usd=r.cost_usd,
                        retry_note=None if r.retry_at is None else describe_retry(r.retry_at - now, r.retry_failure))
                for tid, r in self._rows.items()
            )
        return RunView(run_id=self.run_id, finished=False, rows=rows, progress=progress(rows, slots), slots=slots)

    def _renderable(self) -> RenderableType:
        try:
            return render_view(self.view(), width=self.console.width,
                               max_rows=max(self.console.size.height - 8, 3),
                               wall_seconds=time.monotonic() - self.t0)
        except Exception as exc:  # a drawing bug must not take the run down with it
            log.debug("live view render failed", exc_info=True)
            return Text(f"(live view unavailable: {exc})")

    def _start(self) -> None:
        if self._live is not None or self._closed:
            return
        self._live = Live(console=self.console, get_renderable=self._renderable, auto_refresh=True,
                          refresh_per_second=REFRESH_PER_SECOND, transient=True)
        self._live.start()

    def close(self) -> None:
        """Stop redrawing and clear the table; safe to call twice."""
        self._closed = True
        if self._live is not None:
            self._live.stop()
            self._live = None


# -- choosing and combining observers -------------------------------------------------------------


def use_live(stream: IO[str], *, plain: bool) -> bool:
    """The live table only on a real terminal that can redraw, unless --plain."""
    if plain or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def make_observer(*, plain: bool, quiet: bool, verbose: bool, stream: IO[str]) -> Observer:
    """LiveView on a terminal; ProgressPrinter lines otherwise (and for --quiet, which prints
    nothing until the summary). NO_COLOR is honoured by rich's Console."""
    if quiet or not use_live(stream, plain=plain):
        return ProgressPrinter(quiet=quiet, verbose=verbose)
    return LiveView(Console(file=stream), verbose=verbose)


class Observers:
    """Several observers as one: each gets every event in order; one that raises is logged and
    skipped, because a display or notification bug must never stop the scheduler."""

    def __init__(self, *observers: Observer | None) -> None:
        self.observers = [o for o in observers if o is not None]
        self._failed: set[int] = set()

    def __call__(self, event: EngineEvent) -> None:
        for i, observer in enumerate(self.observers):
            try:
                observer(event)
            except Exception:
                if i not in self._failed:  # once per observer: a broken one would flood the log
                    self._failed.add(i)
                    log.warning("observer %r failed on %r; later failures not logged", observer, event.name,
                                exc_info=True)

    def close(self) -> None:
        for observer in self.observers:
            close = getattr(observer, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.warning("closing observer %r failed", observer, exc_info=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


_MARK = {
    TaskStatus.COMPLETED: "ok",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.TIMEOUT: "TIMEOUT",
    TaskStatus.CANCELLED: "cancelled",
}


class ProgressPrinter:
    """Plain progress lines, one per lifecycle change; quiet mode prints nothing."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.t0 = time.monotonic()

    # What even --quiet prints: the run stopping or waiting, which nothing else would explain.
    ALWAYS = (Waiting, RunTimedOut, BreakerTripped, Interrupted, Killing)

    def __call__(self, event: EngineEvent) -> None:
        if self.quiet and not isinstance(event, self.ALWAYS):
            return
        stamp = f"[{format_duration(time.monotonic() - self.t0):>7}]"
        task_id = event.task_id
        match event:
            case TaskStarted(branch=branch, predecessors=predecessors):
                after = f" after {', '.join(predecessors)}" if predecessors else ""
                click.echo(f"{stamp} start  {task_id} on {branch}{after}")
            case TaskFinished(result=r):
                work = "no changes" if r.no_changes else f"{len(r.commits)} commit(s), {len(r.changed_files)} file(s)"
                detail = f": {r.error_message}" if r.error_message and r.status != TaskStatus.COMPLETED else ""
                click.echo(f"{stamp} {_MARK.get(r.status, r.status.value):<6} {task_id} in "
                           f"{format_duration(r.duration_seconds)}, {work}{detail}")
            case TaskCancelled(reason=reason):
                click.echo(f"{stamp} skip   {task_id}: {reason}")
            case Interrupted(running=running):
                click.echo(f"{stamp} interrupted: stopping {len(running)} running task(s); "
                           "press Ctrl-C again to kill them at once", err=True)
            case Retrying():
                click.echo(f"{stamp} retry  {task_id}: attempt {event.attempt} failed "
                           f"({describe_failure(event.failure)}): {event.error}; "
                           f"again in {format_duration(event.delay)}")
            case FixupStarted(round=round_, rounds=rounds, reason=reason):
                click.echo(f"{stamp} fix    {task_id}: fixing {round_}/{rounds}: {reason}")
            case TaskAttached(pid=pid, attempt=attempt):
                click.echo(f"{stamp} attach {task_id}: still running (pid {pid}, attempt {attempt})")
            case Waiting(reason=reason) | RunTimedOut(reason=reason) | BreakerTripped(reason=reason):
                click.echo(f"{stamp} {reason}", err=True)
            case CancelRequested(tasks=tasks):
                click.echo(f"{stamp} cancel requested for {', '.join(tasks)}", err=True)
            case Killing(running=running):
                click.echo(f"{stamp} killing {len(running)} task(s) now", err=True)
            case Stalled(reason=reason):
                click.echo(f"{stamp} stall  {task_id}: {reason}", err=True)
            case PhaseChanged(phase=phase) if self.verbose:
                click.echo(f"{stamp}        {task_id}: {phase}")
            case TaskLog(message=message) if self.verbose:
                click.echo(f"{stamp}        {task_id}: {message}")
