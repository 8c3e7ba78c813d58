"""Run logs: JSON lines with run_id/task_id and every engine event; text otherwise."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from orchestrator.models import OrchestrationResult, TaskResult, TaskStatus
from orchestrator.observe.events import (
    CancelRequested,
    Heartbeat,
    Retrying,
    RunFinished,
    RunStarted,
    RunTimedOut,
    TaskAttached,
    TaskCancelled,
    TaskFinished,
    TaskStarted,
    record,
)
from orchestrator.observe.logs import EventLog, JsonFormatter, task_logger
from orchestrator.state.registry import ProcessRegistry


def run_started(run_id: str, run_dir: Path, tmp_path: Path) -> RunStarted:
    registry = ProcessRegistry(tmp_path / "mon", run_id, fsync=False)
    return RunStarted(run_id=run_id, run_dir=run_dir, monitoring_dir=tmp_path, registry=registry, max_parallel=2,
                      total=1)


def test_json_log_of_a_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    events = EventLog("json", level=logging.DEBUG)
    events(run_started("run-1", run_dir, tmp_path))
    try:
        events(TaskStarted(task_id="a", branch="gadugi/a", predecessors=(), attempt=1))
        events(Heartbeat(task_id="a", summary="tool_use: Edit", turns=1))
        logging.getLogger("orchestrator.state.registry").warning("disk %s", "slow", extra={"path": "/x"})
        task_logger("a", 2).info("retrying", extra={"delay": 1.5})
        events(TaskFinished(task_id="a", result=TaskResult(task_id="a", status=TaskStatus.FAILED, error_message="boom")))
    finally:
        events(RunFinished(result=OrchestrationResult(run_id="run-1", total_tasks=1, successful_tasks=0, failed_tasks=1,
                                                      execution_time_seconds=2.5)))
    assert events.handler is None
    records = [json.loads(line) for line in (run_dir / "orchestrator.jsonl").read_text().splitlines()]
    assert all({"ts", "level", "logger", "message", "run_id", "task_id"} <= r.keys() for r in records)
    assert all(r["run_id"] == "run-1" and r["ts"].endswith("+00:00") for r in records)
    by_event = {r.get("event"): r for r in records if r.get("event")}
    assert set(by_event) == {"run_started", "started", "heartbeat", "finished", "run_finished"}
    assert by_event["started"]["task_id"] == "a" and by_event["started"]["data"]["branch"] == "gadugi/a"
    # The data keep their shape: what readers of this log already parse.
    assert by_event["run_started"]["task_id"] is None and by_event["run_started"]["data"] == {
        "run_id": "run-1", "run_dir": str(run_dir), "monitoring_dir": str(tmp_path), "max_parallel": 2, "total": 1}
    assert by_event["started"]["data"] == {"branch": "gadugi/a", "predecessors": [], "attempt": 1}
    assert by_event["run_finished"]["data"]["failed_tasks"] == 1
    assert by_event["run_finished"]["data"]["execution_time_seconds"] == 2.5
    assert by_event["heartbeat"]["level"] == "DEBUG"
    assert by_event["finished"]["level"] == "WARNING" and by_event["finished"]["data"]["error"] == "boom"
    module = next(r for r in records if r["logger"] == "orchestrator.state.registry")
    assert module["message"] == "disk slow" and module["path"] == "/x" and module["task_id"] is None
    retry = next(r for r in records if r["message"] == "retrying")
    assert retry["task_id"] == "a" and retry["attempt"] == 2 and retry["delay"] == 1.5
    # After the run the handler is gone: nothing more is written.
    logging.getLogger("orchestrator.state.registry").warning("after")
    assert "after" not in (run_dir / "orchestrator.jsonl").read_text()


def test_event_records_keep_the_run_log_shape() -> None:
    # Readers of orchestrator.jsonl parse these: names, order and JSON types stay as they were.
    beat = Heartbeat(task_id="a", summary="s", session_id="x", turns=2, cost_usd=0.5, tokens={"input": 1}, events=7)
    assert list(record(beat).items()) == [("summary", "s"), ("session_id", "x"), ("turns", 2), ("cost_usd", 0.5),
                                          ("tokens", {"input": 1}), ("events", 7)]
    retry = Retrying(task_id="a", attempt=1, delay=2.5, error="529", failure="api_error")
    assert list(record(retry).items()) == [("attempt", 1), ("delay", 2.5), ("error", "529"), ("failure", "api_error")]
    assert record(TaskAttached(task_id="a", pid=42, attempt=2)) == {"pid": 42, "attempt": 2}
    assert record(CancelRequested(tasks=("a", "b"))) == {"tasks": ["a", "b"]}
    assert record(RunTimedOut(reason="r", running=("a",))) == {"reason": "r", "running": ["a"]}


def test_text_log(tmp_path: Path) -> None:
    events = EventLog("text")
    events(run_started("run-2", tmp_path, tmp_path))
    events(TaskCancelled(task_id="b", reason="dependency 'a' failed"))
    events.close()
    text = (tmp_path / "orchestrator.log").read_text()
    assert "[run-2 b] cancelled b: dependency 'a' failed" in text


def test_formatter_keeps_exceptions_and_odd_values() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.makeLogRecord({"name": "x", "levelname": "ERROR", "msg": "oops", "obj": Path("/p"),
                                    "exc_info": exc_info})
    data = json.loads(JsonFormatter().format(record))
    assert data["obj"] == "/p" and data["message"] == "oops" and "ValueError: bad" in data["exc_info"]
