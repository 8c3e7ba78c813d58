"""A run's orchestrator processes, read from its journal: when each ran, and the gaps between.

A run is started by one process (`run_started`) and may be continued by others (`run_resumed`)
after one is killed. The run's wall time is the time some orchestrator of it was alive: the sum of
these segments. Time between them, while none ran, is a gap, reported as such and never counted as
wall time, so figures divided by the wall time (the parallel speedup) mean the same after a resume.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from orchestrator.models import TaskSummary
from orchestrator.state.journal import read_journal

STARTS = frozenset({"run_started", "run_resumed"})


@dataclass(frozen=True)
class Segment:
    """One orchestrator process's share of a run."""

    start: datetime
    end: datetime
    finished: bool
    """It appended `run_finished` and ended there; else it ended at its last journal record
    (it was killed), or at `now` when `running`."""
    running: bool = False
    """The reader's own process, still running: its end is the `now` it was read at."""
    pid: int | None = None
    resumed: bool = False

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


@dataclass(frozen=True)
class Gap:
    """Time between two segments while no orchestrator of the run was running."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())


@dataclass(frozen=True)
class RunTiming:
    """A run's segments and the measured figures derived from them."""

    segments: tuple[Segment, ...]

    @property
    def wall_seconds(self) -> float:
        """The run's wall time: how long some orchestrator of it was alive."""
        return sum(s.seconds for s in self.segments)

    @property
    def gaps(self) -> tuple[Gap, ...]:
        return tuple(gaps_between(self.segments))

    @property
    def gap_seconds(self) -> float:
        return sum(g.seconds for g in self.gaps)

    @property
    def started(self) -> datetime | None:
        return self.segments[0].start if self.segments else None


def parse_ts(value: object) -> datetime | None:
    """An ISO-8601 stamp as an aware datetime (a stamp without a zone is taken as UTC)."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def process_segments(records: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> list[Segment]:
    """The segments of a run, from its journal records in file order.

    A segment starts at `run_started` or `run_resumed`. It ends at its `run_finished` (at its
    `ended_at` when recorded: the instant the process took its figures at), else at its last record
    before the next start (a killed process writes nothing more). The last segment, left open, ends
    at `now` when given (the caller's own process), else at its last record. Records outside any
    segment (before the first start, after a `run_finished`) belong to no orchestrator's lifetime
    and are ignored.
    """
    if now is not None:
        # To the journal's resolution (milliseconds, truncated), so a `run_finished` that records
        # this `now` as its `ended_at` reads back as the very same end.
        now = now.replace(microsecond=now.microsecond // 1000 * 1000, tzinfo=now.tzinfo or UTC)
    segments: list[Segment] = []
    opened: tuple[datetime, int | None, bool] | None = None  # start, pid, resumed
    last: datetime | None = None
    for record in records:
        ts = parse_ts(record.get("ts"))
        if ts is None:
            continue
        event = record.get("event")
        if event in STARTS:
            if opened is not None and last is not None:
                segments.append(_segment(opened, last, finished=False))
            pid = record.get("pid")
            opened, last = (ts, pid if isinstance(pid, int) else None, event == "run_resumed"), ts
        elif opened is None or last is None:
            continue
        elif event == "run_finished":
            segments.append(_segment(opened, parse_ts(record.get("ended_at")) or ts, finished=True))
            opened = last = None
        else:
            last = max(last, ts)
    if opened is not None and last is not None:
        if now is not None:
            segments.append(_segment(opened, max(now, last), finished=False, running=True))
        else:
            segments.append(_segment(opened, last, finished=False))
    return segments


def _segment(opened: tuple[datetime, int | None, bool], end: datetime, *, finished: bool,
             running: bool = False) -> Segment:
    start, pid, resumed = opened
    return Segment(start=start, end=max(end, start), finished=finished, running=running, pid=pid, resumed=resumed)


def gaps_between(segments: Sequence[Segment]) -> list[Gap]:
    """The gap before each segment but the first (zero when clocks of two processes overlap)."""
    return [Gap(start=a.end, end=max(a.end, b.start)) for a, b in pairwise(segments)]


def run_timing(records: Iterable[Mapping[str, Any]], *, now: datetime | None = None) -> RunTiming:
    return RunTiming(tuple(process_segments(records, now=now)))


def read_run_timing(journal: Path, *, now: datetime | None = None) -> RunTiming:
    """The timing of the run whose `events.jsonl` is `journal` (a torn last line is skipped)."""
    return run_timing(read_journal(journal), now=now)


def single_process(wall_seconds: float, *, now: datetime) -> RunTiming:
    """One running process of `wall_seconds` ending `now`: for callers without a journal."""
    return RunTiming((Segment(start=now - timedelta(seconds=max(0.0, wall_seconds)), end=now, finished=False,
                              running=True),))


def seconds_in_gaps(start: datetime, end: datetime, gaps: Iterable[Gap]) -> float:
    """How much of [start, end] falls inside the gaps."""
    return sum(max(0.0, (min(end, g.end) - max(start, g.start)).total_seconds()) for g in gaps)


@dataclass(frozen=True)
class BusyTime:
    """Task time as the attempts measured it, and the part of it that fell in gaps."""

    total: float
    in_gaps: float
    """Measured from the final attempts' start and end stamps; earlier attempts carry only a
    duration, so any part of theirs in a gap cannot be told apart and stays in `counted`."""

    @property
    def counted(self) -> float:
        """What the speedup divides: task time while some orchestrator of the run was alive."""
        return max(0.0, self.total - self.in_gaps)


def busy_time(rows: Iterable[TaskSummary], gaps: Sequence[Gap]) -> BusyTime:
    """Sum the rows' durations. A WorkflowManager keeps working after its orchestrator is killed;
    that work is real but happened outside the wall time, so dividing it by the wall time would
    inflate the speedup past what the slots allow: it is measured separately."""
    total = in_gaps = 0.0
    for row in rows:
        total += row.duration_seconds
        start, end = parse_ts(row.started_at), parse_ts(row.completed_at)
        if gaps and start is not None and end is not None:
            in_gaps += min(seconds_in_gaps(start, end, gaps), row.duration_seconds)
    return BusyTime(total=total, in_gaps=in_gaps)
