"""Where WorkflowManagers run. The engine talks to a backend only through submit/cancel/kill and
a queue of events, so another backend (a cluster) can replace the local one."""
from __future__ import annotations

from orchestrator.backends.base import Backend, BackendEvent
from orchestrator.backends.local import LocalBackend

__all__ = ["Backend", "BackendEvent", "LocalBackend"]
