"""Prometheus text-format metrics for a run, in a file node_exporter's textfile collector reads.

Format rules followed (text exposition format 0.0.4): one HELP and one TYPE line per metric,
before its samples, all samples of a metric together, label values escaped (backslash, double
quote, line feed), no timestamps (the textfile collector rejects them), a final line feed, no
series twice. The file is replaced atomically (temp file in the same directory + rename), as the
collector requires, and must end in `.prom` for it to be read.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.models import TaskStatus, utcnow
from orchestrator.observe.events import STATUS_CHANGES, EngineEvent, Heartbeat, RunFinished, RunStarted
from orchestrator.state.atomic import write_text_atomic
from orchestrator.state.registry_models import ProcessInfo, seconds_since

METRICS_FILE = "metrics.prom"
MIN_INTERVAL = 1.0  # seconds between rewrites during a run
DURATION_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)

Labels = Sequence[tuple[str, str]]


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


@dataclass
class Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)  # (suffix, labels, value)

    def add(self, labels: Labels, value: float, suffix: str = "") -> None:
        self.samples.append((suffix, labels, value))

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for suffix, labels, value in self.samples:
            label_text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
            lines.append(f"{self.name}{suffix}{{{label_text}}} {format_value(value)}" if labels
                         else f"{self.name}{suffix} {format_value(value)}")
        return lines


def render_metrics(
    entries: Iterable[ProcessInfo],
    *,
    run_id: str,
    wall_seconds: float,
    finished: bool = False,
    now: datetime | None = None,
) -> str:
    """The whole file for one run's registry entries."""
    now = now or utcnow()
    entries = list(entries)
    run: Labels = (("run_id", run_id),)
    tasks = Family("gadugi_tasks", "gauge", "Tasks of the run by status (every status always present).")
    counts = {s: 0 for s in TaskStatus}
    for e in entries:
        counts[e.status] += 1
    for status, n in counts.items():
        tasks.add((*run, ("status", status.value)), n)
    attempts = Family("gadugi_task_attempts_total", "counter", "Attempts started, over all tasks.")
    # A retry puts a task back to queued with attempt + 1 and no started_at: attempt - 1 tries so far.
    attempts.add(run, sum(e.attempt if e.started_at else e.attempt - 1 for e in entries))
    cost = Family("gadugi_cost_usd_total", "counter", "Agent cost in US dollars reported so far, all tasks.")
    cost.add(run, round(sum(e.cost_usd or 0.0 for e in entries), 6))
    task_cost = Family("gadugi_task_cost_usd", "gauge", "Agent cost in US dollars per task, where reported.")
    elapsed = Family("gadugi_task_elapsed_seconds", "gauge",
                     "Per task: the duration of a finished task, the time so far of a running one.")
    hist = Family("gadugi_task_duration_seconds", "histogram", "Durations of finished tasks.")
    durations: list[float] = []
    for e in entries:
        labels: Labels = (*run, ("task_id", e.task_id))
        if e.cost_usd is not None:
            task_cost.add(labels, e.cost_usd)
        if e.status is TaskStatus.RUNNING:
            elapsed.add((*labels, ("status", e.status.value)), round(seconds_since(e.started_at, now), 3))
        elif e.status.terminal and e.duration_seconds is not None and e.started_at:
            elapsed.add((*labels, ("status", e.status.value)), e.duration_seconds)
            durations.append(e.duration_seconds)
    for bound in DURATION_BUCKETS:
        hist.add((*run, ("le", format_value(bound))), sum(1 for d in durations if d <= bound), "_bucket")
    hist.add((*run, ("le", "+Inf")), len(durations), "_bucket")
    hist.add(run, round(sum(durations), 3), "_sum")
    hist.add(run, len(durations), "_count")
    wall = Family("gadugi_run_wall_seconds", "gauge", "Wall time of the run so far.")
    wall.add(run, round(wall_seconds, 3))
    running = Family("gadugi_running_agents", "gauge", "Tasks running now.")
    running.add(run, counts[TaskStatus.RUNNING])
    done = Family("gadugi_run_finished", "gauge", "1 once the run has ended, else 0.")
    done.add(run, 1 if finished else 0)
    stamp = Family("gadugi_metrics_updated_timestamp_seconds", "gauge", "Unix time this file was written.")
    stamp.add(run, round(now.timestamp(), 3))
    families = [tasks, attempts, cost, task_cost, elapsed, hist, wall, running, done, stamp]
    return "\n".join(line for f in families for line in f.render()) + "\n"


class MetricsWriter:
    """Rewrites the metrics file at most once per `min_interval` seconds, and always at `final`."""

    def __init__(self, path: Path, run_id: str, *, min_interval: float = MIN_INTERVAL, fsync: bool = False) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.min_interval = min_interval
        self.fsync = fsync  # a metrics file is rewritten within a second; losing one to a power cut is harmless
        self.started = time.monotonic()
        self._last = -math.inf
        self._cost = 0.0
        self._lock = threading.Lock()
        self.writes = 0

    def due(self) -> bool:
        # Like the live view, stay under ~5% of the time spent taking snapshots and writing.
        return time.monotonic() - self._last >= max(self.min_interval, self._cost * 20)

    def update(self, snapshot: Mapping[str, ProcessInfo], *, force: bool = False, finished: bool = False) -> bool:
        """Write the file from a registry snapshot unless one was written less than
        `min_interval` ago; True when it wrote."""
        with self._lock:
            if not force and not self.due():
                return False
            self._last = time.monotonic()
            text = render_metrics(snapshot.values(), run_id=self.run_id,
                                  wall_seconds=time.monotonic() - self.started, finished=finished)
            write_text_atomic(self.path, text, fsync=self.fsync)
            self._cost = time.monotonic() - self._last
            self.writes += 1
            return True

    def final(self, snapshot: Mapping[str, ProcessInfo]) -> None:
        self.update(snapshot, force=True, finished=True)


class MetricsObserver:
    """Engine observer keeping the metrics file current. It starts at `run_started` (which
    carries the registry and the monitoring directory) and writes the final file at
    `run_finished`; `path` overrides `<monitoring_dir>/metrics.prom`."""

    def __init__(self, path: Path | None = None, *, min_interval: float = MIN_INTERVAL) -> None:
        self.path = path
        self.min_interval = min_interval
        self.writer: MetricsWriter | None = None
        self._registry: Any = None
        self._pending = False

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, RunStarted):
            self._registry = event.registry
            path = self.path or event.monitoring_dir / METRICS_FILE
            self.writer = MetricsWriter(path, event.run_id, min_interval=self.min_interval)
            self.writer.update(self._registry.snapshot(), force=True)
            return
        if self.writer is None or self._registry is None:
            return
        if isinstance(event, RunFinished):
            self.writer.final(self._registry.snapshot())
            return
        # A status change that falls inside the throttle window is written with the next event.
        self._pending = self._pending or isinstance(event, STATUS_CHANGES)
        if (self._pending or isinstance(event, Heartbeat)) and self.writer.due():
            self._pending = False
            self.writer.update(self._registry.snapshot())
