"""Each run as one OpenTelemetry trace, checked against a real OTLP/HTTP receiver on 127.0.0.1:
the span tree across the orchestrator and its WorkflowManagers (local, on a Dask worker, across a
kill -9 and a resume), no cost when off, one line without the package, a dead collector harmless."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from conftest import wait_until
from otlp_receiver import STATUS_ERROR, ReceivedSpan, Receiver, otlp_receiver
from test_e2e import write_prompt
from test_reliability import FAST, tasks_of

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
