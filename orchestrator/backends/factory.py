"""Backend by name: what `--backend` selects. The Dask backends import `distributed` only here."""
from __future__ import annotations

from pathlib import Path

from orchestrator.backends.base import Backend
from orchestrator.backends.launcher import Launcher
from orchestrator.backends.local import LocalBackend
from orchestrator.errors import InputError
from orchestrator.tracing import SpanRef

BACKENDS = ("local", "dask", "dask-local")


def make_backend(
    name: str,
    env: dict[str, str],
    *,
    project_root: Path,
    max_parallel: int = 4,
    scheduler: str | None = None,
    processes: bool = False,
    n_workers: int = 1,
    forward_env: list[str] | None = None,
    launcher: Launcher | None = None,
    trace: SpanRef | None = None,
) -> Backend:
    """`local`: subprocesses here (the default). `dask`: the cluster at `scheduler`.
    `dask-local`: an in-process cluster with `max_parallel` agent slots (for trying it out and
    tests; `processes=True` gives it `n_workers` worker processes instead). `launcher`: one
    already started for the local backend, which then owns it. `trace`: the run's, when it is
    traced; each WorkflowManager gets its attempt's span as TRACEPARENT."""
    if name == "local":
        if scheduler:
            raise InputError("--scheduler only applies to --backend dask")
        return LocalBackend(env, project_root=project_root, launcher=launcher, trace=trace)
    if name in ("dask", "dask-local"):
        from orchestrator.backends.dask import DaskBackend

        if name == "dask":
            return DaskBackend(env, address=scheduler, project_root=project_root, forward_env=forward_env, trace=trace)
        return DaskBackend(env, local=True, project_root=project_root, max_parallel=max_parallel,
                           processes=processes, n_workers=n_workers, trace=trace)
    raise InputError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
