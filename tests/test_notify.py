"""Notifications: a real shell command and a real local HTTP server receive them; a failing,
hanging or unreachable notifier is recorded and never affects the run."""
from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from orchestrator.errors import InputError
from orchestrator.models import (
    AgentOutcome,
    OrchestrationResult,
    TaskResult,
    TaskStatus,
)
from orchestrator.observe.events import BreakerTripped, RunFinished, RunStarted, TaskFinished, TaskStarted
from orchestrator.observe.notify import Notifier
from orchestrator.state.registry import ProcessRegistry

from test_e2e import write_prompt


def finished(tid: str, status: TaskStatus) -> TaskFinished:
    return TaskFinished(task_id=tid, result=TaskResult(
        task_id=tid, status=status, branch=f"gadugi/{tid}", duration_seconds=3.0,
        error_message="boom" if status is not TaskStatus.COMPLETED else None, outcome=AgentOutcome(cost_usd=0.2)))


def run_end() -> RunFinished:
    return RunFinished(result=OrchestrationResult(run_id="run-1", total_tasks=2, successful_tasks=1, failed_tasks=1,
                                                  execution_time_seconds=9.0))


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(no_proxy: None) -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.headers["Content-Type"] == "application/json"
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", received
    httpd.shutdown()
    httpd.server_close()


def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more


def test_command_and_url_receive_every_event(tmp_path: Path, server: tuple[str, list[dict]]) -> None:
    url, received = server
    out = tmp_path / "out.jsonl"
    env_file = tmp_path / "env.txt"
    fields = "$GADUGI_EVENT $GADUGI_TASK_ID $GADUGI_STATUS $GADUGI_ATTENTION"
    cmd = f'cat >> "{out}"; echo >> "{out}"; echo "{fields}" >> "{env_file}"'
    n = Notifier(cmd, url, timeout=10)
    registry = ProcessRegistry(tmp_path / "mon", "run-1", fsync=False)
    for tid in ("a", "b"):
        registry.register(tid, task_name=tid, command=["agent"], working_directory="/w", prompt_file=None,
                          branch=f"gadugi/{tid}", base_sha="0", worktree="/w", priority=5)
    n(RunStarted(run_id="run-1", run_dir=tmp_path, monitoring_dir=tmp_path / "mon", registry=registry,
                 max_parallel=2, total=2))
    n(TaskStarted(task_id="a", branch="gadugi/a", predecessors=(), attempt=1))
    # The counts sent come from the registry, which the engine changes before it tells observers.
    registry.transition("a", TaskStatus.RUNNING)
    registry.transition("a", TaskStatus.COMPLETED)
    n(finished("a", TaskStatus.COMPLETED))
    registry.transition("b", TaskStatus.RUNNING)
    registry.transition("b", TaskStatus.TIMEOUT)
    n(finished("b", TaskStatus.TIMEOUT))
    n(BreakerTripped(reason="stopped launching"))
    n(run_end())
    assert n.close(timeout=30) is True
    assert n.failures == [] and n.sent == 8
    by_cmd = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert [p["event"] for p in by_cmd] == ["task_end", "task_end", "task_attention", "run_end"]
    assert by_cmd == received
    a, b, breaker, end = by_cmd
    assert a["run_id"] == "run-1" and a["status"] == "completed" and a["attention"] is False
    assert a["branch"] == "gadugi/a" and a["cost_usd"] == 0.2 and a["duration_seconds"] == 3.0
    assert b["attention"] is True and b["error"] == "boom" and b["counts"]["completed"] == 1
    assert breaker["reason"] == "stopped launching"
    assert end["result"]["failed_tasks"] == 1 and end["attention"] is True
    assert (tmp_path / "env.txt").read_text().splitlines() == [
        "task_end a completed 0", "task_end b timeout 1", "task_attention  breaker 1", "run_end  finished 1"]


def test_failing_hanging_and_unreachable_notifiers_are_recorded(tmp_path: Path, no_proxy: None) -> None:
    started = tmp_path / "hang-started"
    for cmd, url, expect in (("echo nope >&2; exit 1", None, "exited 1: nope"),
                             (f'touch "{started}"; sleep 60; echo late', None, "timed out"),
                             (None, refused_url(), "--notify-url failed")):
        n = Notifier(cmd, url, timeout=0.5)
        n(finished("a", TaskStatus.FAILED))  # returns at once: delivery is on a thread
        assert n.close(timeout=30) is True
        assert len(n.failures) == 1 and expect in n.failures[0], n.failures
    assert started.exists()


def test_only_http_urls(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="http"):
        Notifier(None, f"file://{tmp_path}/x")
    assert Notifier(None, None).close() is True  # nothing configured, nothing to do


def test_broken_notifiers_do_not_affect_a_run(make_repo, path_with: str, tmp_path: Path, no_proxy: None) -> None:
    from orchestrator import OrchestrationConfig, OrchestratorCoordinator
    from orchestrator.observe.live import Observers

    repo = make_repo()
    a = write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    b = write_prompt(repo, "b.md", "id: b\ndepends_on: [a]", "# B\nfake-claude: commit")
    config = OrchestrationConfig(max_parallel=2, env=dict(os.environ, PATH=path_with))
    failing = Notifier("exit 7", refused_url(), timeout=2)
    hanging = Notifier("sleep 60", None, timeout=0.2)
    with Observers(failing, hanging) as observer:
        result = OrchestratorCoordinator(config, repo).orchestrate([a, b], observer=observer)
    assert result.exit_code == 0 and result.successful_tasks == 2
    assert len(failing.failures) >= 4 and all("exited 7" in f or "notify-url" in f for f in failing.failures)
    assert hanging.failures and all("timed out" in f for f in hanging.failures)
