"""Each run as one OpenTelemetry trace, checked against a real OTLP/HTTP receiver on 127.0.0.1:
the span tree across the orchestrator and its WorkflowManagers (local, on a Dask worker, across a
kill -9 and a resume), no cost when off, one line without the package, a dead collector harmless."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from orchestrator.observe.events import TaskStarted
from orchestrator.tracing import SpanRef

from conftest import wait_until
from otlp_receiver import STATUS_ERROR, ReceivedSpan, Receiver, otlp_receiver
from test_e2e import write_prompt
from test_reliability import FAST, started, tasks_of
from test_resume import kill_leftovers

PHASES = {"setup", "agent", "commit", "report"}  # every attempt that ran its agent has these


def run_traced(repo: Path, path_env: str, *args: str, env: Mapping[str, str], log: Path | None = None,
               timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=repo, capture_output=True, text=True,
                          env=_env(path_env, env, log), timeout=timeout)


def _env(path_env: str, extra: Mapping[str, str], log: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in ("TRACEPARENT", "TRACESTATE")}
    env.update(PATH=path_env, **extra)
    if log is not None:
        env["FAKE_CLAUDE_LOG"] = str(log)
    return env


def journal(repo: Path) -> list[dict]:  # type: ignore[type-arg]
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def task_spans(received: Receiver) -> dict[str, list[ReceivedSpan]]:
    found: dict[str, list[ReceivedSpan]] = {}
    for span in received.named("task"):
        found.setdefault(span.attributes["gadugi.task_id"], []).append(span)
    return found


def attempts_of(received: Receiver, task: ReceivedSpan) -> dict[int, ReceivedSpan]:
    return {s.attributes["gadugi.attempt"]: s for s in received.named("attempt") if s.parent_id == task.span_id}


def children(received: Receiver, parent: ReceivedSpan) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in received.spans if s.parent_id == parent.span_id}


def test_a_run_is_one_trace_across_processes(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    write_prompt(repo, "b.md", "id: b\ndepends_on: [a]", "# B\nfake-claude: commit")
    write_prompt(repo, "o.md", "id: o", f"# O\nfake-claude: overloaded times=1 state={tmp_path / 'o.state'}")
    write_prompt(repo, "bad.md", "id: bad", "# Bad\nfake-claude: fail")
    with otlp_receiver() as received:
        proc = run_traced(repo, path_with, "run", "a", "b", "o", "bad", "--json", "--launch-stagger", "0", *FAST,
                          env={"OTEL_EXPORTER_OTLP_ENDPOINT": received.endpoint})
        assert proc.returncode == 1, proc.stderr
        assert tasks_of(proc.stdout)["o"]["attempts"] == 2
        # The orchestrator flushed before it exited, each WorkflowManager before it did.
        wait_until(lambda: received.named("run") and len(received.named("task")) == 4, "the run's spans")
    started = next(r for r in journal(repo) if r["event"] == "run_started")
    assert {s.trace_id for s in received.spans} == {started["trace_id"]}, "one trace, the one the journal keeps"
    assert {s.service for s in received.spans} == {"gadugi-orchestrator"}
    (run,) = received.named("run")
    assert run.parent_id == "" and run.span_id == started["trace_span_id"]
    assert run.attributes["gadugi.failed"] == 1 and run.status == STATUS_ERROR

    tasks = {tid: spans[0] for tid, spans in task_spans(received).items()}
    assert set(tasks) == {"a", "b", "o", "bad"}
    assert all(t.parent_id == run.span_id for t in tasks.values())
    assert tasks["b"].attributes["gadugi.depends_on"] == ["a"]
    assert tasks["b"].links == [tasks["a"].span_id], "the dependent task links to the task it started from"
    assert tasks["a"].attributes["gadugi.agent"] == "claude" and tasks["a"].attributes["gadugi.branch"] == "gadugi/a"
    assert tasks["a"].attributes["gadugi.status"] == "completed" and tasks["a"].attributes["gadugi.files_changed"] >= 1
    assert tasks["a"].attributes["gadugi.cost_usd"] > 0 and tasks["a"].attributes["gadugi.tokens.output"] > 0

    # The retried task: two attempts, the first failed, and a retry event on the task.
    o_attempts = attempts_of(received, tasks["o"])
    assert sorted(o_attempts) == [1, 2]
    assert o_attempts[1].status == STATUS_ERROR and o_attempts[1].attributes["gadugi.failure"] == "api_error"
    assert o_attempts[2].status != STATUS_ERROR and o_attempts[2].attributes["gadugi.status"] == "completed"
    (retry,) = [attrs for name, attrs in tasks["o"].events if name == "retry"]
    assert retry["gadugi.attempt"] == 1 and retry["gadugi.failure"] == "api_error"

    # The failure: ERROR on the task, its attempt and the phase it failed in (the agent).
    assert tasks["bad"].status == STATUS_ERROR and tasks["bad"].attributes["gadugi.status"] == "failed"
    (bad_attempt,) = attempts_of(received, tasks["bad"]).values()
    assert bad_attempt.status == STATUS_ERROR
    assert children(received, bad_attempt)["agent"].status == STATUS_ERROR

    # Phases come from each WorkflowManager process, under the attempt span the orchestrator made.
    for tid in ("a", "b"):
        (attempt,) = attempts_of(received, tasks[tid]).values()
        phases = children(received, attempt)
        assert PHASES <= set(phases), phases
        assert "worktree" in children(received, phases["setup"])
        assert attempt.start_ns <= phases["setup"].start_ns and phases["report"].end_ns <= attempt.end_ns
    assert PHASES <= set(children(received, o_attempts[1])) | {"commit", "report"}
    assert [s.parent_id for s in received.named("merge_check")] == [run.span_id]
    assert all(s.parent_id in received.by_id() for s in received.spans if s is not run), "no orphans"


def test_a_dask_workers_workflow_managers_join_the_trace(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    write_prompt(repo, "b.md", "id: b\ndepends_on: [a]", "# B\nfake-claude: commit")
    with otlp_receiver() as received:
        proc = run_traced(repo, path_with, "run", "a", "b", "--json", "--backend", "dask-local", "--otel",
                          env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{received.endpoint}/v1/traces"})
        assert proc.returncode == 0, proc.stderr
        wait_until(lambda: received.named("run"), "the run's spans")
    assert len({s.trace_id for s in received.spans}) == 1
    tasks = {tid: spans[0] for tid, spans in task_spans(received).items()}
    for tid in ("a", "b"):
        (attempt,) = attempts_of(received, tasks[tid]).values()
        assert PHASES <= set(children(received, attempt)), f"{tid}: the worker's WorkflowManager exported its phases"
    assert tasks["b"].links == [tasks["a"].span_id]


def test_kill_9_then_resume_keeps_one_trace(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    go = tmp_path / "go"
    write_prompt(repo, "done.md", "id: done", "# D\nfake-claude: commit")
    write_prompt(repo, "w.md", "id: w", f"# W\nfake-claude: slow until={go}")
    log = tmp_path / "agents.log"
    with otlp_receiver() as received:
        env = _env(path_with, {"OTEL_EXPORTER_OTLP_ENDPOINT": received.endpoint}, log)
        first = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "done", "w", "--launch-stagger", "0",
                                  *FAST], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        run_dir: Path | None = None
        try:
            wait_until(lambda: "w" in started(log), "w's agent started")
            run_dir = next((repo / ".gadugi" / "runs").iterdir())
            wait_until(lambda: (run_dir / "tasks" / "done" / "result.json").exists(), "done finished")
            first.send_signal(signal.SIGKILL)
            first.communicate()
            # w's WorkflowManager outlives the kill; the resumed run attaches to it, then it finishes.
            resumed = subprocess.Popen([sys.executable, "-m", "orchestrator", "resume", "--json"], cwd=repo, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_until(lambda: "attached w" in (run_dir / "orchestrator.log").read_text(), "the resume attached w")
            go.touch()
            out, err = resumed.communicate(timeout=90)
            assert resumed.returncode == 0, err
            assert tasks_of(out)["w"]["status"] == "completed"
        finally:
            go.touch()
            kill_leftovers(repo)
        wait_until(lambda: received.named("resume"), "the resumed run's spans")
    records = journal(repo)
    started_at = next(r for r in records if r["event"] == "run_started")
    resumed_at = next(r for r in records if r["event"] == "run_resumed")
    assert resumed_at["trace_id"] == started_at["trace_id"]
    assert {s.trace_id for s in received.spans} == {started_at["trace_id"]}, "both processes, one trace"
    (resume,) = received.named("resume")
    assert resume.parent_id == started_at["trace_span_id"], "the resumed segment hangs under the run's first root"
    # The attempt the killed orchestrator started is made again, with the id its WorkflowManager
    # was given, so the phases that process exported have their parent.
    (w_task,) = task_spans(received)["w"]
    assert w_task.parent_id == resume.span_id
    (w_attempt,) = attempts_of(received, w_task).values()
    assert PHASES <= set(children(received, w_attempt))
    assert "attached" in w_attempt.event_names()


def _shim(tmp_path: Path) -> tuple[Path, Path]:
    """A directory that, first on PYTHONPATH, makes `import opentelemetry` fail in every process
    of a run, and notes each process that tried."""
    shim, marker = tmp_path / "shim", tmp_path / "imported"
    (shim / "opentelemetry").mkdir(parents=True)
    (shim / "opentelemetry" / "__init__.py").write_text(
        f"import os\nopen({str(marker)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "raise ImportError('No module named opentelemetry (a test shim)')\n")
    return shim, marker


def test_nothing_imports_opentelemetry_when_tracing_is_off(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    write_prompt(repo, "b.md", "id: b\ndepends_on: [a]", "# B\nfake-claude: commit")
    shim, marker = _shim(tmp_path)
    proc = run_traced(repo, path_with, "run", "a", "b", "--json", "--launch-stagger", "0",
                      env={"PYTHONPATH": str(shim)})
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "no process of the run (orchestrator, launcher, WorkflowManagers) imported it"
    assert "TRACEPARENT" not in (next((repo / ".gadugi" / "runs").iterdir()) / "tasks" / "a" / "request.json").read_text()


def test_otel_without_the_package_is_one_line(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    shim, marker = _shim(tmp_path)
    proc = run_traced(repo, path_with, "run", "a", "--otel", env={"PYTHONPATH": str(shim)})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: --otel needs the OpenTelemetry packages: pip install 'gadugi-orchestrator[otel]'"]
    assert marker.exists() and not (repo / ".gadugi" / "runs").exists(), "it looked, and started nothing"
    # The standard variables alone may be meant for other programs: a warning, and the run goes on.
    proc = run_traced(repo, path_with, "run", "a", "--json", "--launch-stagger", "0",
                      env={"PYTHONPATH": str(shim), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'gadugi-orchestrator[otel]'" in proc.stderr


def test_a_collector_that_is_down_costs_the_run_nothing(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    write_prompt(repo, "b.md", "id: b\ndepends_on: [a]", "# B\nfake-claude: commit")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = run_traced(repo, path_with, "run", "a", "b", "--json", "--launch-stagger", "0",
                      env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert proc.returncode == 0, proc.stderr
    assert {t["status"] for t in tasks_of(proc.stdout).values()} == {"completed"}
    # One warning: on stderr, or in the run log when the first export failed while the run went on.
    run_log = (next((repo / ".gadugi" / "runs").iterdir()) / "orchestrator.log").read_text()
    warnings = [line for line in [*proc.stderr.splitlines(), *run_log.splitlines()] if "trace" in line.lower()]
    assert len(warnings) == 1 and "trace export to" in warnings[0], (proc.stderr, run_log)
    assert not any("Traceback" in line or "opentelemetry" in line for line in proc.stderr.splitlines()), proc.stderr
    # Nor did any process wait for the exporter's retries at its end (cut off with "did not finish
    # within 2s"): each WorkflowManager's end is when its dependents may start.
    wm_logs = sorted((repo / ".gadugi" / "runs").glob("*/tasks/*/workflow_manager.stderr.log"))
    assert len(wm_logs) == 2
    for text in [proc.stderr, *(log.read_text() for log in wm_logs)]:
        assert "failed (Connection refused)" in text and "did not finish" not in text, text


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_collector_is_refused_only_when_nothing_takes_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.otel import _refused

    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    closed = _closed_port()
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        assert _refused(f"http://127.0.0.1:{port}/v1/traces") is None
        assert _refused(f"http://127.0.0.1:{closed}/v1/traces") == "Connection refused"
        # Through a proxy it is the proxy that takes the connection, unless the host bypasses it.
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        assert _refused(f"http://127.0.0.1:{closed}/v1/traces") is None
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert _refused(f"http://127.0.0.1:{closed}/v1/traces") == "Connection refused"


def test_an_attempt_and_its_task_start_when_the_workflow_manager_was_launched(monkeypatch: pytest.MonkeyPatch) -> None:
    # The WorkflowManager's own spans may begin before the engine tells observers it started one
    # (a loaded machine, a fork that runs first): the attempt's span must still enclose them, so it
    # begins at the launch the event reports, not when the observer hears of it.
    from orchestrator.observe.traces import RunTracer
    from orchestrator.otel import Tracing

    anchor = SpanRef.new()
    launched = time.time_ns() - 5_000_000_000
    with otlp_receiver() as received:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", received.endpoint)
        tracer = RunTracer(Tracing(anchor.trace_id), anchor, resumed=False, tasks={}, attributes={})
        tracer(TaskStarted(task_id="t", branch="gadugi/t", predecessors=(), attempt=1, launched_ns=launched))
        tracer.close()
        wait_until(lambda: received.named("attempt") and received.named("task"), "the task's spans")
    (attempt,), (task,) = received.named("attempt"), received.named("task")
    assert attempt.start_ns == launched and task.start_ns == launched
