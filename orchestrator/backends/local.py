"""WorkflowManagers as local subprocesses, each in its own session so they outlive a crash of ours."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from orchestrator.backends import start
from orchestrator.backends.base import BackendEvent
from orchestrator.backends.launcher import Launcher
from orchestrator.proctree import create_time_of, is_alive, kill_tree_now
from orchestrator.state.atomic import write_json_atomic
from orchestrator.state.secrets import Redactor
from orchestrator.task import attempt_lock
from orchestrator.task.wire import AGENT_ARGV_ENV, FIXUP_ARGV_ENV, FRESH_ARGV_ENV, TaskRequest
from orchestrator.tracing import SpanRef, handoff_env


@dataclass
class _Handle:
    request: TaskRequest
    pid: int
    create_time: float
    proc: subprocess.Popen[bytes] | None = None
    stdout: IO[bytes] | None = None
    launcher: Launcher | None = None  # the one that forked it, and will report its exit
    agent_pid: int | None = None
    agent_create_time: float | None = None
    reader: threading.Thread | None = field(default=None, repr=False)

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return is_alive(self.pid, self.create_time)

    def signal(self, signum: int) -> None:
        if self.alive():
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass


class LocalBackend:
    def __init__(self, env: dict[str, str], *, python: str = sys.executable, project_root: Path | None = None,
                 launcher: Launcher | None = None, trace: SpanRef | None = None) -> None:
        self.env = env
        self.trace = trace
        self.redactor = Redactor.from_env(env)
        self.python = python
        self.events: queue.Queue[BackendEvent] = queue.Queue()
        self._handles: dict[str, _Handle] = {}
        self._lock = threading.Lock()
        # Started now unless the caller started it earlier, so its imports overlap the run's own
        # start rather than the first launch.
        self._launcher = launcher or Launcher.start(python, env, home=project_root, traced=trace is not None)

    def submit(self, request: TaskRequest) -> tuple[int | None, float | None]:
        request.task_dir.mkdir(parents=True, exist_ok=True)
        request_path = request.task_dir / "request.json"
        env = handoff_env(self.env, self.trace, request.task_id, request.attempt)
        shown = self.redactor.argv(request.agent_command)
        if shown != request.agent_command:
            # A secret among the agent's arguments reaches the WorkflowManager only through its
            # environment; the request file on disk records the masked command line.
            env[AGENT_ARGV_ENV] = json.dumps(request.agent_command)
        fresh = self.redactor.argv(request.fresh_agent_command) if request.fresh_agent_command else None
        if fresh != request.fresh_agent_command:
            env[FRESH_ARGV_ENV] = json.dumps(request.fresh_agent_command)
        val = request.validation
        fixup = {key: self.redactor.argv(argv) if argv else None
                 for key, argv in (("resume_command", val.resume_command), ("fresh_command", val.fresh_command))}
        if fixup != {"resume_command": val.resume_command, "fresh_command": val.fresh_command}:
            env[FIXUP_ARGV_ENV] = json.dumps({"resume_command": val.resume_command, "fresh_command": val.fresh_command})
        write_json_atomic(request_path, request.model_copy(
            update={"agent_command": shown, "fresh_agent_command": fresh,
                    "validation": val.model_copy(update=fixup)}).model_dump(mode="json"))
        # The attempt's lock goes to the child at fork: from then on it is held exactly while
        # the WorkflowManager lives, whatever happens to us (see attempt_lock).
        launcher = self._launcher
        with (request.task_dir / "workflow_manager.stderr.log").open("ab") as stderr:
            started = start.workflow_manager(launcher, self.python, request_path, env, stderr.fileno(),
                                             attempt_lock.lock_path(request.task_dir, request.attempt))
        if launcher is not None and started.launcher is None:
            self._launcher = None  # gone: every later task is spawned the plain way
        handle = _Handle(request=request, pid=started.pid, create_time=create_time_of(started.pid) or 0.0,
                         proc=started.proc, stdout=started.stdout, launcher=started.launcher)
        # Recorded the moment it exists (the WorkflowManager writes the same itself as it starts):
        # an orchestrator killed right now must find this process on resume, not start another.
        write_json_atomic(request.task_dir / "wm.json",
                          {"pid": handle.pid, "create_time": handle.create_time, "attempt": request.attempt})
        with self._lock:
            self._handles[request.task_id] = handle
        handle.reader = threading.Thread(target=self._read, args=(handle,), daemon=True, name=f"wm-{request.task_id}")
        handle.reader.start()
        return handle.pid, handle.create_time

    def attach(self, request: TaskRequest, pid: int, create_time: float) -> None:
        handle = _Handle(request=request, pid=pid, create_time=create_time)
        with self._lock:
            self._handles[request.task_id] = handle
        handle.reader = threading.Thread(target=self._watch, args=(handle,), daemon=True, name=f"wm-{request.task_id}")
        handle.reader.start()

    def _watch(self, handle: _Handle) -> None:
        # No pipe to a process we did not start: its exit (and result.json) is all we can see,
        # and the kernel tells us of the exit by releasing the attempt's lock.
        req = handle.request
        attempt_lock.wait_released(attempt_lock.lock_path(req.task_dir, req.attempt))
        with self._lock:
            self._handles.pop(req.task_id, None)
        self.events.put(BackendEvent("exit", req.task_id, req.attempt, "exit", {"returncode": None}))

    def _read(self, handle: _Handle) -> None:
        req = handle.request
        assert handle.stdout is not None
        for raw in handle.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            name = str(line.get("event", ""))
            data = line.get("data") or {}
            if name == "agent_started":
                handle.agent_pid = data.get("pid")
                handle.agent_create_time = data.get("create_time")
            self.events.put(BackendEvent("event", req.task_id, req.attempt, name, data))
        handle.stdout.close()
        rc = self._wait(handle)
        with self._lock:
            self._handles.pop(req.task_id, None)
        self.events.put(BackendEvent("exit", req.task_id, req.attempt, "exit", {"returncode": rc}))

    def _wait(self, handle: _Handle) -> int | None:
        if handle.proc is not None:
            return handle.proc.wait()
        rc = handle.launcher.wait_exit(handle.pid) if handle.launcher is not None else None
        if rc is None:  # the launcher died first: the kernel still tells us when the task ends
            req = handle.request
            attempt_lock.wait_released(attempt_lock.lock_path(req.task_dir, req.attempt))
        return rc

    def cancel(self, task_id: str, *, timeout: bool = False) -> None:
        handle = self._handles.get(task_id)
        if handle is not None:
            # The WorkflowManager maps SIGUSR1 to "timed out" and SIGTERM to "cancelled".
            handle.signal(signal.SIGUSR1 if timeout else signal.SIGTERM)

    def kill(self, task_id: str) -> None:
        handle = self._handles.get(task_id)
        if handle is None or not handle.alive():
            return
        # The whole tree, whichever process group or session each child is in (the agent, a
        # setup hook, a verify command), also for a WorkflowManager re-attached after a resume.
        kill_tree_now(handle.pid, handle.create_time)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._handles)

    def close(self) -> None:
        for handle in list(self._handles.values()):
            if handle.reader is not None:
                handle.reader.join(timeout=0.1)
        if self._launcher is not None:
            self._launcher.close()
