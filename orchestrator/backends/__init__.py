"""Where WorkflowManagers run. The engine talks to a backend only through submit/cancel/kill and
a queue of events, so another backend (a cluster) can replace the local one."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.backends.base import Backend, BackendEvent
    from orchestrator.backends.local import LocalBackend

__all__ = ["Backend", "BackendEvent", "LocalBackend"]

# Loaded on first use: the remote guard (`python -m orchestrator.backends.remote.guard`, one per
# task on a Dask worker) lives under this package and needs none of pydantic or the models, which
# importing these eagerly would cost it (~0.3 s of CPU each start).
_HOMES = {"Backend": "base", "BackendEvent": "base", "LocalBackend": "local"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
