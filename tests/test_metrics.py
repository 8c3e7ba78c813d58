"""Prometheus text format: checked by a strict parser here and by prometheus_client's when installed."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from orchestrator.models import OrchestrationResult, TaskResult, TaskStatus
from orchestrator.observe.events import RunFinished, RunStarted, TaskFinished
from orchestrator.observe.metrics import (
    MetricsObserver,
    MetricsWriter,
    escape_label,
    render_metrics,
)
from orchestrator.state.registry import ProcessRegistry

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:[a-zA-Z_]\w*={LABEL_VALUE},?)*)\}})? (\S+)$")
LABEL = re.compile(rf"([a-zA-Z_]\w*)=({LABEL_VALUE})")


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A strict reading of the 0.0.4 text format as the textfile collector needs it."""
    assert text.endswith("\n") and "\r" not in text
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
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
        key = (name, pairs)
        assert key not in samples, f"duplicate series {key}"
        samples[key] = float(value)
    assert helps == set(types)
    return samples


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
    text = render_metrics(registry(tmp_path).snapshot().values(), run_id="run-1", wall_seconds=12.5)
    s = parse(text)
    run = (("run_id", '"run-1"'),)
    for status, n in {"queued": 2, "running": 1, "completed": 1, "failed": 1, "timeout": 0, "cancelled": 0}.items():
        assert s[("gadugi_tasks", (*run, ("status", f'"{status}"')))] == n
    assert s[("gadugi_task_attempts_total", run)] == 4  # ok, bad, run and the first try of the retried one
    assert s[("gadugi_cost_usd_total", run)] == 1.0
    assert s[("gadugi_task_cost_usd", (*run, ("task_id", '"we\\"ird\\\\id"')))] == 0.25
    assert s[("gadugi_task_duration_seconds_count", run)] == 2
    assert s[("gadugi_task_duration_seconds_bucket", (*run, ("le", '"+Inf"')))] == 2
    assert s[("gadugi_running_agents", run)] == 1 and s[("gadugi_run_wall_seconds", run)] == 12.5
    assert s[("gadugi_run_finished", run)] == 0
    assert ("gadugi_task_elapsed_seconds", (*run, ("task_id", '"run"'), ("status", '"running"'))) in s
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_prometheus_client_reads_it(tmp_path: Path) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    text = render_metrics(registry(tmp_path).snapshot().values(), run_id="run-1", wall_seconds=3.0, finished=True)
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
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
    assert writer.writes == 2 and parse(out.read_text())[("gadugi_run_finished", (("run_id", '"run-1"'),))] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["gadugi.prom"]  # no temp files left


def test_observer_writes_at_start_and_end(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    observer = MetricsObserver(min_interval=3600)
    observer(RunStarted(run_id="run-1", run_dir=tmp_path, monitoring_dir=tmp_path / "mon", registry=reg, max_parallel=1,
                        total=2))
    path = tmp_path / "mon" / "metrics.prom"
    assert parse(path.read_text())[("gadugi_run_finished", (("run_id", '"run-1"'),))] == 0
    reg.transition("run", TaskStatus.COMPLETED)
    observer(TaskFinished(task_id="run", result=TaskResult(task_id="run", status=TaskStatus.COMPLETED)))
    observer(RunFinished(result=OrchestrationResult(run_id="run-1", total_tasks=2, successful_tasks=2, failed_tasks=0,
                                                    execution_time_seconds=1.0)))
    final = parse(path.read_text())
    assert final[("gadugi_run_finished", (("run_id", '"run-1"'),))] == 1
    assert final[("gadugi_tasks", (("run_id", '"run-1"'), ("status", '"completed"')))] == 2
