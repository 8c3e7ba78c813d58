"""The backend interface: request → handle → events; results come back as `exit` events."""
from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from orchestrator.task.wire import TaskRequest


@dataclass
class BackendEvent:
    """`event`: a WorkflowManager event line; `exit`: the WorkflowManager is gone (rc in data)."""

    kind: Literal["event", "exit"]
    task_id: str
    attempt: int
    name: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    events: queue.Queue[BackendEvent]

    def submit(self, request: TaskRequest) -> tuple[int | None, float | None]:
        """Start a WorkflowManager for the request; returns its (pid, create time) where there is
        one; its events arrive on `events`."""

    def attach(self, request: TaskRequest, pid: int, create_time: float) -> None:
        """Watch a WorkflowManager started by an earlier orchestrator (resume) until it exits."""

    def cancel(self, task_id: str, *, timeout: bool = False) -> None:
        """Ask the task to stop gracefully (its WorkflowManager escalates on the agent); with
        `timeout` the task ends `timeout` rather than `cancelled`."""

    def kill(self, task_id: str) -> None:
        """Stop the task at once: SIGKILL to the WorkflowManager and the agent's process group."""

    def running(self) -> list[str]:
        """Task ids whose WorkflowManager has not exited yet."""

    def close(self) -> None:
        """Release resources; running WorkflowManagers are left alone (they outlive us)."""
