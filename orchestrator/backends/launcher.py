"""The orchestrator's end of the launcher: a pre-imported process that forks one WorkflowManager
per task (its own end is `orchestrator.task.forkserver`).

Starting `python -m orchestrator.task` costs each task ~0.4 s of CPU before it does anything
(the interpreter, pydantic and our models); on a short task that is most of the overhead, and
with many tasks the imports compete with the agents for the cores. The launcher pays the imports
once per run: the orchestrator sends it a spawn request over a socket, with the task's stdout,
stderr and attempt-lock descriptors attached, and it forks a child that becomes the
WorkflowManager. Nothing else changes for the task:

- the child calls `setsid`, so it outlives the orchestrator and the launcher, as before;
- it starts with the stop signals blocked (the launcher keeps them blocked) and unblocks them
  once its handlers are in, as a spawned WorkflowManager does;
- it holds the attempt's lock from the fork on, so resume sees it exactly as before;
- the launcher reaps it and reports its exit status, which a Popen would have given us.

The launcher is single-threaded (forking a threaded process is unsafe) and lives as long as its
socket: when the orchestrator exits or is killed, the socket closes and the launcher exits;
children already forked carry on in their own sessions. Where the launcher cannot run (no
SOCK_SEQPACKET, or it died), `start` returns None and callers spawn the plain way.
"""
from __future__ import annotations

import json
import queue
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.task.forkserver import MAX_MESSAGE

# WorkflowManagers start from the directory holding our package, so `-m` finds it even when the
# orchestrator itself runs from a source checkout rather than an installed copy.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


class Launcher:
    """The orchestrator's end: one request at a time, replies read by a thread of its own."""

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self._proc = proc
        self._sock = sock
        self._spawn_lock = threading.Lock()
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._exits: dict[int, int] = {}
        self._exited = threading.Condition()
        self._gone = False
        threading.Thread(target=self._read, daemon=True, name="wm-launcher").start()

    @classmethod
    def start(cls, python: str, env: Mapping[str, str], *, home: Path | None = None,
              traced: bool = False) -> Launcher | None:
        """Start it from PACKAGE_PARENT (where `-m` finds our package); it then moves to `home`,
        the project, so whoever lists the project's processes finds it among them. `traced`:
        it imports the OpenTelemetry SDK once too, for every WorkflowManager it forks."""
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except (AttributeError, OSError):
            return None
        try:
            # Its own session: a Ctrl-C at the terminal is for the orchestrator, which decides
            # what the tasks get; the launcher just ends with the orchestrator's socket.
            proc = subprocess.Popen(
                [python, "-m", "orchestrator.task.forkserver", "--socket-fd", str(theirs.fileno()),
                 *(["--chdir", str(home)] if home is not None else []), *(["--traced"] if traced else [])],
                cwd=PACKAGE_PARENT, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),), start_new_session=True,
            )
        except OSError:
            ours.close()
            return None
        finally:
            theirs.close()
        return cls(proc, ours)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def spawn(self, args: Sequence[str], *, env: Mapping[str, str], cwd: Path,
              stdout_fd: int, stderr_fd: int, lock_fd: int) -> int | None:
        """Fork a WorkflowManager with these `python -m orchestrator.task` arguments; its pid, or
        None when the launcher is gone (the caller then spawns it the plain way)."""
        message = json.dumps({"args": list(args), "env": dict(env), "cwd": str(cwd)}).encode()
        with self._spawn_lock:
            if self._gone:
                return None
            try:
                socket.send_fds(self._sock, [message], [stdout_fd, stderr_fd, lock_fd])  # FDS_PER_SPAWN
            except OSError:
                return None
            reply = self._replies.get()
        if reply is None or "pid" not in reply:
            return None
        return int(reply["pid"])

    def wait_exit(self, pid: int) -> int | None:
        """Block until the launcher reports `pid`'s exit status; None if the launcher is gone
        first (the caller then waits on the attempt lock instead)."""
        with self._exited:
            self._exited.wait_for(lambda: pid in self._exits or self._gone)
            return self._exits.pop(pid, None)

    def close(self) -> None:
        """End the launcher (idempotent); WorkflowManagers it forked carry on."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _read(self) -> None:
        while True:
            try:
                raw = self._sock.recv(MAX_MESSAGE)
            except OSError:
                raw = b""
            if not raw:
                break
            reply = json.loads(raw)
            if "exited" in reply:
                with self._exited:
                    self._exits[int(reply["exited"])] = int(reply["returncode"])
                    self._exited.notify_all()
            else:
                self._replies.put(reply)
        with self._exited:
            self._gone = True
            self._exited.notify_all()
        self._replies.put(None)
