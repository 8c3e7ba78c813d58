"""Notifications: the user's own command (`--notify-cmd`) and/or a JSON POST (`--notify-url`)
when a task ends, when one needs attention, and when the run ends.

Delivery happens on one background thread with a timeout per attempt, so a notifier that fails,
hangs or is slow costs the run nothing; `close()` gives pending ones a bounded time at the end.

Events (the `event` field, also in `$GADUGI_EVENT`):
- `task_end`: a task finished (completed, failed, timeout, cancelled while running); `attention`
  is true for failed and timeout.
- `task_attention`: trouble that is not an end: a `stalled` task, the circuit breaker stopping
  launches, the run timeout. (A task that stalled and was stopped ends failed/timeout: task_end.)
- `run_end`: the run is over; `counts` has every status, `result` the totals.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from orchestrator.errors import InputError
from orchestrator.models import TaskStatus, iso
from orchestrator.observe.events import (
    BreakerTripped,
    EngineEvent,
    RunFinished,
    RunStarted,
    RunTimedOut,
    Stalled,
    TaskCancelled,
    TaskFinished,
)
from orchestrator.proctree import signal_group
from orchestrator.state.registry import ProcessRegistry

log = logging.getLogger(__name__)

SHELL = "/bin/sh"
MAX_PENDING = 1000  # beyond this a stuck notifier loses messages rather than memory
_ATTENTION = (TaskStatus.FAILED, TaskStatus.TIMEOUT)
_ENV_KEYS = {"event": "EVENT", "run_id": "RUN_ID", "task_id": "TASK_ID", "status": "STATUS", "error": "ERROR",
             "branch": "BRANCH", "cost_usd": "COST_USD", "duration_seconds": "DURATION_SECONDS",
             "attention": "ATTENTION", "reason": "REASON"}


def payload_env(payload: Mapping[str, Any], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for --notify-cmd: the caller's plus GADUGI_<FIELD> for the flat fields."""
    env = dict(os.environ if base is None else base)
    for key, name in _ENV_KEYS.items():
        value = payload.get(key)
        if value is None:
            env.pop(f"GADUGI_{name}", None)
        else:
            env[f"GADUGI_{name}"] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return env


def run_notify_cmd(cmd: str, payload: Mapping[str, Any], *, timeout: float) -> None:
    """Run the user's command through /bin/sh with the payload as JSON on stdin.

    Not cmd.run_cmd: on a timeout subprocess.run kills only the shell and then waits for its
    pipes, which a grandchild (`sleep 60; curl ...`) keeps open, so the wait never ends. Here the
    command gets its own session and the whole group is killed. Raises RuntimeError on failure.
    """
    data = json.dumps(payload).encode("utf-8")
    proc = subprocess.Popen([SHELL, "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=payload_env(payload), start_new_session=True)
    try:
        _, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        try:
            proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:  # something outside the group holds stderr open
            proc.kill()
        raise RuntimeError(f"--notify-cmd timed out after {timeout:g}s and was killed") from None
    finally:
        if proc.stderr is not None:
            proc.stderr.close()
        proc.wait()
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"--notify-cmd exited {proc.returncode}" + (f": {tail[-1]}" if tail else ""))


def post_json(url: str, payload: Mapping[str, Any], *, timeout: float) -> None:
    """POST the payload as JSON; RuntimeError unless the server answers 2xx."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "gadugi-orchestrator"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"--notify-url answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"--notify-url failed: {getattr(exc, 'reason', exc)}") from None


class Notifier:
    """Engine observer that sends notifications in the background. `close(timeout)` at the end."""

    def __init__(self, cmd: str | None, url: str | None, *, timeout: float = 10.0) -> None:
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise InputError(f"--notify-url must be an http:// or https:// URL, not {url!r}")
        self.cmd = cmd or None
        self.url = url or None
        self.timeout = timeout
        self.run_id = ""
        self.sent = 0
        self.failures: list[str] = []
        self._registry: ProcessRegistry | None = None
        self._counts = {s.value: 0 for s in TaskStatus}
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.cmd is not None or self.url is not None

    # -- observer ------------------------------------------------------------------------------

    def __call__(self, event: EngineEvent) -> None:
        match event:
            case RunStarted():
                self.run_id = event.run_id
                self._registry = event.registry
            case TaskFinished(result=r):
                self._counts[r.status.value] += 1
                self.send({
                    "event": "task_end", "task_id": event.task_id, "status": r.status.value,
                    "attention": r.status in _ATTENTION, "error": r.error_message, "failure": r.outcome.failure,
                    "branch": r.branch, "attempt": r.attempt, "cost_usd": r.outcome.cost_usd,
                    "duration_seconds": r.duration_seconds, "commits": len(r.commits),
                })
            case TaskCancelled():
                self._counts["cancelled"] += 1
            case Stalled(reason=reason) | BreakerTripped(reason=reason) | RunTimedOut(reason=reason):
                self.send({"event": "task_attention", "task_id": event.task_id or None, "status": event.name,
                           "attention": True, "reason": reason})
            case RunFinished(result=result):
                keys = ("total_tasks", "successful_tasks", "failed_tasks", "cancelled_tasks", "skipped_tasks",
                        "execution_time_seconds", "total_cost_usd", "interrupted", "abort_reason", "report_path")
                summary = {k: getattr(result, k) for k in keys}
                self.send({"event": "run_end", "status": "interrupted" if result.interrupted else "finished",
                           "attention": bool(result.failed_tasks or result.abort_reason),
                           "cost_usd": result.total_cost_usd, "duration_seconds": result.execution_time_seconds,
                           "result": summary})

    def counts(self) -> dict[str, int]:
        """Tasks by status, from the registry when there is one (it also knows the queued)."""
        if self._registry is not None:
            try:
                counts = {s.value: 0 for s in TaskStatus}
                for entry in self._registry.snapshot().values():
                    counts[entry.status.value] += 1
                return counts
            except Exception:
                log.debug("registry snapshot for notification failed", exc_info=True)
        return dict(self._counts)

    # -- delivery ------------------------------------------------------------------------------

    def send(self, fields: Mapping[str, Any]) -> None:
        """Queue one notification (never blocks); the run_id, time and counts are added here."""
        if not self.enabled or self._closed:
            return
        if self._queue.qsize() >= MAX_PENDING:
            self.failures.append("queue full: notification dropped")
            return
        payload = {"event": fields.get("event"), "run_id": self.run_id, "timestamp": iso(), **fields,
                   "counts": self.counts()}
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="gadugi-notify", daemon=True)
            self._thread.start()
        self._queue.put(payload)

    def _work(self) -> None:
        while (payload := self._queue.get()) is not None:
            self.deliver(payload)

    def deliver(self, payload: Mapping[str, Any]) -> None:
        """Send one payload to every target now; failures are recorded and logged, never raised."""
        for send, target in ((run_notify_cmd, self.cmd), (post_json, self.url)):
            if target is None:
                continue
            try:
                send(target, payload, timeout=self.timeout)
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 - the user's notifier must never fail the run
                message = f"notification {payload.get('event')} {payload.get('task_id') or ''}: {exc}".replace("  ", " ")
                self.failures.append(message)
                log.warning("%s", message)

    def close(self, timeout: float = 15.0) -> bool:
        """Let queued notifications go out for up to `timeout` seconds; True when all went.
        What is left after that is abandoned (the thread is a daemon)."""
        self._closed = True
        if self._thread is None:
            return True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("gave up on %d pending notification(s) after %gs", self._queue.qsize(), timeout)
            return False
        return True
