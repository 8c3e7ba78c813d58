"""Prometheus metrics for a run, in a textfile that node_exporter's textfile collector reads.

prometheus_client renders the text format (HELP/TYPE once per family, escaped labels, no
timestamps, no series twice) and `write_to_textfile` replaces the file atomically (temp file in
the same directory + rename), as the collector requires; the name must end in `.prom`.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from orchestrator.models import TaskStatus, sum_costs, utcnow
from orchestrator.observe.events import STATUS_CHANGES, EngineEvent, Heartbeat, RunFinished, RunStarted
from orchestrator.state.registry_models import ProcessInfo, seconds_since

METRICS_FILE = "metrics.prom"
MIN_INTERVAL = 1.0  # seconds between rewrites during a run
DURATION_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)


def metric_families(
    entries: Iterable[ProcessInfo],
    *,
    run_id: str,
    wall_seconds: float,
    finished: bool = False,
    now: datetime | None = None,
) -> list[Metric]:
    """Every metric of the run, computed from its registry entries."""
    now = now or utcnow()
    entries = list(entries)
    tasks = GaugeMetricFamily("gadugi_tasks", "Tasks of the run by status (every status always present).",
                              labels=["run_id", "status"])
    counts = {s: 0 for s in TaskStatus}
    for e in entries:
        counts[e.status] += 1
    for status, n in counts.items():
        tasks.add_metric([run_id, status.value], n)
    attempts = CounterMetricFamily("gadugi_task_attempts", "Attempts started, over all tasks.", labels=["run_id"])
    # A retry puts a task back to queued with attempt + 1 and no started_at: attempt - 1 tries so far.
    attempts.add_metric([run_id], sum(e.attempt if e.started_at else e.attempt - 1 for e in entries))
    cost = CounterMetricFamily("gadugi_cost_usd", "Agent cost in US dollars reported so far, all tasks.", labels=["run_id"])
    cost.add_metric([run_id], sum_costs(e.cost_usd for e in entries) or 0.0)
    task_cost = GaugeMetricFamily("gadugi_task_cost_usd", "Agent cost in US dollars per task, where reported.",
                                  labels=["run_id", "task_id"])
    elapsed = GaugeMetricFamily("gadugi_task_elapsed_seconds",
                                "Per task: the duration of a finished task, the time so far of a running one.",
                                labels=["run_id", "task_id", "status"])
    durations: list[float] = []
    for e in entries:
        if e.cost_usd is not None:
            task_cost.add_metric([run_id, e.task_id], e.cost_usd)
        if e.status is TaskStatus.RUNNING:
            elapsed.add_metric([run_id, e.task_id, e.status.value], round(seconds_since(e.started_at, now), 3))
        elif e.status.terminal and e.duration_seconds is not None and e.started_at:
            elapsed.add_metric([run_id, e.task_id, e.status.value], e.duration_seconds)
            durations.append(e.duration_seconds)
    hist = HistogramMetricFamily("gadugi_task_duration_seconds", "Durations of finished tasks.", labels=["run_id"])
    buckets = [(floatToGoString(bound), sum(1 for d in durations if d <= bound)) for bound in DURATION_BUCKETS]
    hist.add_metric([run_id], [*buckets, ("+Inf", len(durations))], round(sum(durations), 3))
    families: list[Metric] = [tasks, attempts, cost, task_cost, elapsed, hist]
    for name, help_text, value in (
        ("gadugi_run_wall_seconds", "Wall time of the run so far.", round(wall_seconds, 3)),
        ("gadugi_running_agents", "Tasks running now.", counts[TaskStatus.RUNNING]),
        ("gadugi_run_finished", "1 once the run has ended, else 0.", 1 if finished else 0),
        ("gadugi_metrics_updated_timestamp_seconds", "Unix time this file was written.", round(now.timestamp(), 3)),
    ):
        gauge = GaugeMetricFamily(name, help_text, labels=["run_id"])
        gauge.add_metric([run_id], value)
        families.append(gauge)
    return families


class _LatestFamilies:
    """The collector behind a writer's registry: it hands over what the writer computed last.

    A custom collector rather than Gauge/Counter objects: every value is read from a registry
    snapshot, which a Counter or Histogram cannot be set to, and per-task series must vanish
    when a task's status changes.
    """

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return self.families


class MetricsWriter:
    """Rewrites the metrics file at most once per `min_interval` seconds, and always at `final`."""

    def __init__(self, path: Path, run_id: str, *, min_interval: float = MIN_INTERVAL) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.min_interval = min_interval
        self.started = time.monotonic()
        self._last = -math.inf
        self._cost = 0.0
        self._lock = threading.Lock()
        self._latest = _LatestFamilies()
        self._prometheus = CollectorRegistry()  # this writer's own: never the global default registry
        self._prometheus.register(self._latest)
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
            self._latest.families = metric_families(snapshot.values(), run_id=self.run_id,
                                                    wall_seconds=time.monotonic() - self.started, finished=finished)
            # No fsync (the library does none): the file is rewritten within a second, and losing
            # one to a power cut is harmless.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(self.path), self._prometheus)
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
