"""The run as an OpenTelemetry trace, made from the engine's events (see docs/tracing.md).

A root span for the run (for a resumed run: a `resume` span under the first root), a `task`
span per task and an `attempt` span per attempt under it; the phases inside an attempt are
spans of its WorkflowManager, which exports them itself under the attempt's span id
(orchestrator.tracing.attempt_span). Retries, stalls, fix-up rounds, waits and cancels are span
events; a task's span links to the tasks it started from.

Imported only when tracing is on: it imports the OpenTelemetry SDK.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from orchestrator.models import TaskResult, TaskStatus
from orchestrator.observe.events import (
    BreakerTripped,
    CancelRequested,
    EngineEvent,
    FixupStarted,
    Heartbeat,
    Interrupted,
    Killing,
    Retrying,
    RunFinished,
    RunStarted,
    RunTimedOut,
    Stalled,
    TaskAttached,
    TaskCancelled,
    TaskFinished,
    TaskStarted,
    Waiting,
)
from orchestrator.otel import Span, Tracing, fail
from orchestrator.tracing import SpanRef, attempt_span

log = logging.getLogger(__name__)

_FAILED = (TaskStatus.FAILED, TaskStatus.TIMEOUT)


class RunTracer:
    """Engine observer making the run's spans; `close()` at the end ends what is open and flushes.

    `anchor` is the run's trace id and the span id of its first root, as the journal keeps them;
    `tasks` the attributes each task's spans carry from the start (id, branch, agent, model...).
    """

    def __init__(self, tracing: Tracing, anchor: SpanRef, *, resumed: bool,
                 tasks: Mapping[str, Mapping[str, Any]], attributes: Mapping[str, Any]) -> None:
        self.tracing = tracing
        self.anchor = anchor
        self.resumed = resumed
        self.task_attributes = tasks
        self.attributes = dict(attributes)
        self.run: Span | None = None
        self.tasks: dict[str, Span] = {}  # open task spans
        self.attempts: dict[str, Span] = {}  # open attempt spans, by task
        self.ended: dict[str, Span] = {}  # task spans already ended, still worth a link
        self._beats: dict[str, Heartbeat] = {}
        self._broken = False

    def __call__(self, event: EngineEvent) -> None:
        try:
            self._on(event)
        except Exception:  # noqa: BLE001 - tracing must never stop the scheduler
            if not self._broken:
                self._broken = True
                log.warning("tracing failed on %r; later failures not logged", event.name, exc_info=True)

    def _on(self, event: EngineEvent) -> None:
        match event:
            case RunStarted():
                self._start_run(event)
            case TaskStarted(task_id=tid, attempt=attempt, predecessors=preds, launched_ns=launched_ns):
                self._start_attempt(tid, attempt, preds, start_time=launched_ns)
            case TaskAttached(task_id=tid, attempt=attempt):
                self._start_attempt(tid, attempt, ()).add_event("attached", {"gadugi.pid": event.pid})
            case Heartbeat(task_id=tid):
                self._beats[tid] = event
            case Stalled(task_id=tid, reason=reason):
                self._event_on_attempt(tid, "stalled", {"gadugi.reason": reason})
            case FixupStarted(task_id=tid):
                self._event_on_attempt(tid, "fixup", {"gadugi.round": event.round, "gadugi.rounds": event.rounds,
                                                      "gadugi.reason": event.reason})
            case Retrying():
                self._retrying(event)
            case TaskFinished(task_id=tid, result=result):
                self._finished(tid, result)
            case TaskCancelled(task_id=tid, reason=reason):
                self._cancelled(tid, reason)
            case CancelRequested(tasks=tasks):
                self._run_event("cancel_requested", {"gadugi.tasks": list(tasks)})
                for tid in tasks:
                    if tid in self.tasks:
                        self.tasks[tid].add_event("cancel_requested")
            case Waiting(reason=reason):
                self._run_event("waiting", {"gadugi.reason": reason})
            case RunTimedOut(reason=reason) | BreakerTripped(reason=reason):
                self._run_event(event.name, {"gadugi.reason": reason, "gadugi.task_id": event.task_id or None})
            case Interrupted(running=running) | Killing(running=running):
                self._run_event(event.name, {"gadugi.running": list(running)})
            case RunFinished(result=result):
                self._end_open("the run ended first")
                if self.run is not None:
                    self.run.set_attributes({
                        "gadugi.successful": result.successful_tasks, "gadugi.failed": result.failed_tasks,
                        "gadugi.cancelled": result.cancelled_tasks, "gadugi.cost_usd": result.total_cost_usd,
                        "gadugi.interrupted": result.interrupted,
                    })
                    if result.abort_reason:
                        self.run.set_attribute("gadugi.abort_reason", result.abort_reason)
                    if result.failed_tasks or result.abort_reason:
                        fail(self.run, result.abort_reason or f"{result.failed_tasks} task(s) failed")
                    self.run.end()
                    self.run = None

    # -- spans -----------------------------------------------------------------------------------

    def _start_run(self, event: RunStarted) -> None:
        attributes = {**self.attributes, "gadugi.run_id": event.run_id, "gadugi.tasks": event.total,
                      "gadugi.max_parallel": event.max_parallel, "gadugi.resumed": self.resumed}
        if self.resumed:  # under the run's first root, which an earlier process made (and maybe never ended)
            self.run = self.tracing.start("resume", parent=self.anchor, attributes=attributes)
        else:
            self.run = self.tracing.start("run", span_id=self.anchor.span_id, attributes=attributes)

    def _task(self, tid: str, predecessors: tuple[str, ...], start_time: int | None = None) -> Span:
        span = self.tasks.get(tid)
        if span is None:
            links = [self.tasks.get(p) or self.ended[p] for p in predecessors if p in self.tasks or p in self.ended]
            span = self.tracing.start("task", parent=self.run, links=links, start_time=start_time,
                                      attributes={**self.task_attributes.get(tid, {}), "gadugi.task_id": tid,
                                                  "gadugi.starts_from": list(predecessors) or None})
            self.tasks[tid] = span
        return span

    def _start_attempt(self, tid: str, attempt: int, predecessors: tuple[str, ...],
                       start_time: int | None = None) -> Span:
        task = self._task(tid, predecessors, start_time)
        self._end_attempt(tid, "a later attempt started")
        span = self.tracing.start("attempt", parent=task, span_id=attempt_span(self.anchor, tid, attempt).span_id,
                                  start_time=start_time, attributes={"gadugi.task_id": tid, "gadugi.attempt": attempt})
        self.attempts[tid] = span
        return span

    def _event_on_attempt(self, tid: str, name: str, attributes: Mapping[str, Any]) -> None:
        span = self.attempts.get(tid) or self.tasks.get(tid)
        if span is not None:
            span.add_event(name, _present(attributes))

    def _retrying(self, event: Retrying) -> None:
        tid = event.task_id
        span = self.attempts.pop(tid, None)
        details = _present({"gadugi.attempt": event.attempt, "gadugi.failure": event.failure,
                            "gadugi.error": event.error, "gadugi.delay_seconds": round(event.delay, 3)})
        if span is not None:
            span.set_attributes({**_heartbeat(self._beats.pop(tid, None)), "gadugi.status": "retried",
                                 "gadugi.failure": event.failure})
            fail(span, event.error or event.failure)
            span.end()
        if tid in self.tasks:
            # A rate limit's wait is its reset time; every other retry waits out a backoff.
            self.tasks[tid].add_event("rate_limit_wait" if event.failure == "rate_limited" else "retry", details)

    def _finished(self, tid: str, result: TaskResult) -> None:
        attributes = _result_attributes(result)
        span = self.attempts.pop(tid, None)
        if span is not None:
            span.set_attributes(attributes)
            if result.status in _FAILED:
                fail(span, result.error_message)
            span.end()
        self._beats.pop(tid, None)
        task = self._task(tid, ())
        task.set_attributes({**attributes, "gadugi.attempts": len(result.attempts) + 1,
                             "gadugi.cost_usd": result.total_cost_usd()})
        if result.status in _FAILED:
            fail(task, result.error_message)
        self._end_task(tid)

    def _cancelled(self, tid: str, reason: str) -> None:
        task = self._task(tid, ())
        task.add_event("cancelled", {"gadugi.reason": reason})
        task.set_attributes({"gadugi.status": TaskStatus.CANCELLED.value, "gadugi.reason": reason})
        self._end_attempt(tid, reason)
        self._end_task(tid)

    def _end_attempt(self, tid: str, why: str) -> None:
        span = self.attempts.pop(tid, None)
        if span is not None:
            span.set_attributes({"gadugi.status": "unfinished", "gadugi.reason": why})
            span.end()

    def _end_task(self, tid: str) -> None:
        span = self.tasks.pop(tid, None)
        if span is not None:
            span.end()
            self.ended[tid] = span

    def _end_open(self, why: str) -> None:
        for tid in list(self.attempts):
            self._end_attempt(tid, why)
        for tid in list(self.tasks):
            self.tasks[tid].set_attribute("gadugi.status", "unfinished")
            self._end_task(tid)

    def _run_event(self, name: str, attributes: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.add_event(name, _present(attributes))

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A span under the run for work the orchestrator does itself at the end (the merge check)."""
        span = self.tracing.start(name, parent=self.run) if self.run is not None else None
        try:
            yield
        finally:
            if span is not None:
                span.end()

    def close(self) -> None:
        """End whatever is still open (the run stopped by an error) and flush, in bounded time."""
        self._end_open("the run stopped")
        if self.run is not None:
            fail(self.run, "the run stopped before it finished")
            self.run.end()
            self.run = None
        self.tracing.close()


def _present(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def _heartbeat(beat: Heartbeat | None) -> dict[str, Any]:
    """What an attempt that ended without a result had spent, as its last heartbeat said."""
    if beat is None:
        return {}
    return _present({"gadugi.turns": beat.turns, "gadugi.cost_usd": beat.cost_usd, "gadugi.session_id": beat.session_id,
                     **{f"gadugi.tokens.{k}": v for k, v in (beat.tokens or {}).items()}})


def _result_attributes(result: TaskResult) -> dict[str, Any]:
    outcome = result.outcome
    return _present({
        "gadugi.status": result.status.value,
        "gadugi.attempt": result.attempt,
        "gadugi.failure": outcome.failure if outcome.failure != "none" else None,
        "gadugi.error": result.error_message,
        "gadugi.cancelled_by": result.cancelled_by,
        "gadugi.branch": result.branch,
        "gadugi.start_sha": result.start_sha or None,
        "gadugi.head_sha": result.head_sha or None,
        "gadugi.commits": len(result.commits),
        "gadugi.files_changed": len(result.changed_files),
        "gadugi.insertions": result.insertions,
        "gadugi.deletions": result.deletions,
        "gadugi.turns": outcome.num_turns,
        "gadugi.cost_usd": outcome.cost_usd,
        "gadugi.cost_estimated": outcome.cost_estimated or None,
        "gadugi.session_id": outcome.session_id,
        "gadugi.duration_seconds": result.duration_seconds,
        **{f"gadugi.tokens.{k}": v for k, v in outcome.tokens.model_dump().items()},
    })
