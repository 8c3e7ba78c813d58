"""How a backend starts a WorkflowManager (`python -m orchestrator.task --request <path>`): forked
by a launcher when it has one, else spawned. Either way it runs in its own session from
PACKAGE_PARENT, with its stdout a pipe to us, and holds the attempt's lock from its first moment
(see task/attempt_lock.py). Used by the local backend and by the worker side of the Dask backend.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from orchestrator.backends.launcher import PACKAGE_PARENT, Launcher
from orchestrator.process import spawn_with_stops_deferred, stops_deferred
from orchestrator.task import attempt_lock


@dataclass(frozen=True)
class Started:
    """A WorkflowManager just started: forked by `launcher`, or spawned as `proc`."""

    pid: int
    stdout: IO[bytes]
    launcher: Launcher | None = None  # the one that forked it, and will report its exit
    proc: subprocess.Popen[bytes] | None = None


def workflow_manager(launcher: Launcher | None, python: str, request_path: Path, env: dict[str, str],
                     stderr_fd: int, lock: Path) -> Started:
    """Start it holding the attempt's lock at `lock` from its first moment: forked by `launcher`
    when there is one, else (or when that one is gone: `Started.launcher` is then None, and the
    caller drops it) spawned by `python`."""
    lock_fd = attempt_lock.take(lock)
    try:
        if launcher is not None:
            forked = _fork(launcher, request_path, env, stderr_fd, lock_fd)
            if forked is not None:
                return Started(*forked, launcher=launcher)
        proc = _spawn(python, request_path, env, stderr_fd, lock_fd)
        assert proc.stdout is not None
        return Started(proc.pid, proc.stdout, proc=proc)
    finally:
        os.close(lock_fd)  # the WorkflowManager holds it now


def _fork(launcher: Launcher, request_path: Path, env: dict[str, str], stderr_fd: int,
          lock_fd: int) -> tuple[int, IO[bytes]] | None:
    """Fork it from `launcher`: its pid and its stdout; None when the launcher is gone, which is
    then closed (so it is reaped) and the caller spawns instead."""
    read_fd, write_fd = os.pipe()
    try:
        with stops_deferred():  # as for a Popen: a Ctrl-C now must not lose the pid
            pid = launcher.spawn(["--request", str(request_path)], env=env, cwd=PACKAGE_PARENT,
                                 stdout_fd=write_fd, stderr_fd=stderr_fd, lock_fd=lock_fd)
    finally:
        os.close(write_fd)
    if pid is None:
        os.close(read_fd)
        launcher.close()
        return None
    return pid, os.fdopen(read_fd, "rb")


def _spawn(python: str, request_path: Path, env: dict[str, str], stderr_fd: int,
           lock_fd: int) -> subprocess.Popen[bytes]:
    """Spawn it the plain way, a new interpreter that imports our code itself."""
    return spawn_with_stops_deferred(lambda: subprocess.Popen(
        [python, "-m", "orchestrator.task", "--request", str(request_path)],
        cwd=PACKAGE_PARENT,
        env={**env, attempt_lock.LOCK_FD_ENV: str(lock_fd)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_fd,
        start_new_session=True,
        pass_fds=(lock_fd,),
    ))
