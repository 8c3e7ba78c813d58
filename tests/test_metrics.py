"""Prometheus text format: checked by a strict parser here and by prometheus_client's own parser."""
from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from orchestrator.models import OrchestrationResult, TaskResult, TaskStatus
from orchestrator.observe.events import RunFinished, RunStarted, TaskFinished
from orchestrator.observe.metrics import MetricsObserver, MetricsWriter, metric_families
from orchestrator.state.registry import ProcessRegistry
from orchestrator.state.registry_models import ProcessInfo
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:[a-zA-Z_]\w*={LABEL_VALUE},?)*)\}})? (\S+)$")
LABEL = re.compile(rf"([a-zA-Z_]\w*)=({LABEL_VALUE})")
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Series = tuple[str, frozenset[tuple[str, str]]]


def series(name: str, **labels: str) -> Series:
    """A sample's key: label order carries no meaning in the format."""
    return name, frozenset(labels.items())


def unquote(value: str) -> str:
    return re.sub(r"\\[\\\"n]", lambda m: UNESCAPE[m.group(0)], value[1:-1])


def parse(text: str) -> dict[Series, float]:
    """A strict reading of the 0.0.4 text format as the textfile collector needs it."""
    assert text.endswith("\n") and "\r" not in text
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[Series, float] = {}
    finished: set[str] = set()
    current = ""
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helps, f"second HELP for {name}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types and kind in ("counter", "gauge", "histogram", "summary", "untyped")
            types[name] = kind
            if current:
                finished.add(current)
            current = name
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        family = next((f for f in (name, re.sub(r"_(bucket|sum|count)$", "", name)) if f in types), None)
        assert family == current and family not in finished, f"{name} outside its family block"
        if types[family] == "counter":
            assert name.endswith("_total")
        pairs = tuple(LABEL.findall(labels or ""))
        assert len({k for k, _ in pairs}) == len(pairs)
        key = series(name, **{k: unquote(v) for k, v in pairs})
        assert key not in samples, f"duplicate series {key}"
        samples[key] = float(value)
    assert helps == set(types)
    return samples


class Families:
    """A collector for a list of families, so the library renders exactly what the writer would."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def render(entries: Iterable[ProcessInfo], *, wall_seconds: float, finished: bool = False) -> str:
    families = metric_families(entries, run_id="run-1", wall_seconds=wall_seconds, finished=finished)
    return generate_latest(Families(families)).decode()


def registry(tmp_path: Path) -> ProcessRegistry:
    reg = ProcessRegistry(tmp_path / "mon", "run-1", fsync=False)
    for tid in ("ok", "bad", "run", 'we"ird\\id', "wait"):
        reg.register(tid, task_name=tid, command=["x"], working_directory="/w", prompt_file=None, branch=tid,
                     base_sha="0", worktree="/w", priority=5)
    for tid in ("ok", "bad", "run", 'we"ird\\id'):
        reg.transition(tid, TaskStatus.RUNNING)
        reg.heartbeat(tid, cost_usd=0.25)
    reg.transition("ok", TaskStatus.COMPLETED)
    reg.transition("bad", TaskStatus.FAILED, reason="boom")
    reg.transition('we"ird\\id', TaskStatus.QUEUED, attempt=2, reason="retry")
    return reg


def test_format_and_values(tmp_path: Path) -> None:
    text = render(registry(tmp_path).snapshot().values(), wall_seconds=12.5)
    s = parse(text)
    run = {"run_id": "run-1"}
    for status, n in {"queued": 2, "running": 1, "completed": 1, "failed": 1, "timeout": 0, "cancelled": 0}.items():
        assert s[series("gadugi_tasks", **run, status=status)] == n
    assert s[series("gadugi_task_attempts_total", **run)] == 4  # ok, bad, run and the first try of the retried one
    assert s[series("gadugi_cost_usd_total", **run)] == 1.0
    assert s[series("gadugi_task_cost_usd", **run, task_id='we"ird\\id')] == 0.25
    assert 'task_id="we\\"ird\\\\id"' in text  # quote and backslash escaped in the file
    assert s[series("gadugi_task_duration_seconds_count", **run)] == 2
    assert s[series("gadugi_task_duration_seconds_bucket", **run, le="+Inf")] == 2
    assert s[series("gadugi_task_duration_seconds_bucket", **run, le="30.0")] == 2
    assert s[series("gadugi_running_agents", **run)] == 1 and s[series("gadugi_run_wall_seconds", **run)] == 12.5
    assert s[series("gadugi_run_finished", **run)] == 0
    assert series("gadugi_task_elapsed_seconds", **run, task_id="run", status="running") in s
    assert series("gadugi_task_elapsed_seconds", **run, task_id="ok", status="completed") in s
    assert not any(name.endswith("_created") for name, _ in s)  # no series the old file did not have


def test_prometheus_client_reads_it(tmp_path: Path) -> None:
    text = render(registry(tmp_path).snapshot().values(), wall_seconds=3.0, finished=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["gadugi_tasks"].type == "gauge" and len(families["gadugi_tasks"].samples) == 6
    assert families["gadugi_task_duration_seconds"].type == "histogram"
    ids = {s.labels.get("task_id") for s in families["gadugi_task_cost_usd"].samples}
    assert 'we"ird\\id' in ids


def test_writer_is_atomic_and_throttled(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    out = tmp_path / "textfile" / "gadugi.prom"
    writer = MetricsWriter(out, "run-1", min_interval=3600)
    assert writer.update(reg.snapshot()) is True
    assert writer.update(reg.snapshot()) is False  # within the interval
    writer.final(reg.snapshot())
    assert writer.writes == 2 and parse(out.read_text())[series("gadugi_run_finished", run_id="run-1")] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["gadugi.prom"]  # no temp files left


def test_writer_drops_series_of_tasks_that_moved_on(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    out = tmp_path / "metrics.prom"
    writer = MetricsWriter(out, "run-1", min_interval=3600)
    writer.update(reg.snapshot())
    assert series("gadugi_task_elapsed_seconds", run_id="run-1", task_id="run", status="running") in parse(out.read_text())
    reg.transition("run", TaskStatus.COMPLETED)
    writer.final(reg.snapshot())
    after = parse(out.read_text())
    assert series("gadugi_task_elapsed_seconds", run_id="run-1", task_id="run", status="running") not in after
    assert series("gadugi_task_elapsed_seconds", run_id="run-1", task_id="run", status="completed") in after
    assert after[series("gadugi_task_duration_seconds_count", run_id="run-1")] == 3


def test_observer_writes_at_start_and_end(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    observer = MetricsObserver(min_interval=3600)
    observer(RunStarted(run_id="run-1", run_dir=tmp_path, monitoring_dir=tmp_path / "mon", registry=reg, max_parallel=1,
                        total=2))
    path = tmp_path / "mon" / "metrics.prom"
    assert parse(path.read_text())[series("gadugi_run_finished", run_id="run-1")] == 0
    reg.transition("run", TaskStatus.COMPLETED)
    observer(TaskFinished(task_id="run", result=TaskResult(task_id="run", status=TaskStatus.COMPLETED)))
    observer(RunFinished(result=OrchestrationResult(run_id="run-1", total_tasks=2, successful_tasks=2, failed_tasks=0,
                                                    execution_time_seconds=1.0)))
    final = parse(path.read_text())
    assert final[series("gadugi_run_finished", run_id="run-1")] == 1
    assert final[series("gadugi_tasks", run_id="run-1", status="completed")] == 2
