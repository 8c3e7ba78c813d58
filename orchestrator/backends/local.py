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

import orchestrator
from orchestrator.atomic import write_json_atomic
from orchestrator.backends.base import BackendEvent
from orchestrator.wire import TaskRequest

# Run the WorkflowManager from the directory holding our package, so `-m` finds it even when the
# orchestrator itself runs from a source checkout rather than an installed copy.
_PACKAGE_PARENT = Path(orchestrator.__file__).resolve().parent.parent


@dataclass
class _Handle:
    request: TaskRequest
    proc: subprocess.Popen[bytes]
    agent_pid: int | None = None
    reader: threading.Thread | None = field(default=None, repr=False)


class LocalBackend:
    def __init__(self, env: dict[str, str], *, python: str = sys.executable) -> None:
        self.env = env
        self.python = python
        self.events: queue.Queue[BackendEvent] = queue.Queue()
        self._handles: dict[str, _Handle] = {}
        self._lock = threading.Lock()

    def submit(self, request: TaskRequest) -> None:
        request.task_dir.mkdir(parents=True, exist_ok=True)
        request_path = request.task_dir / "request.json"
        write_json_atomic(request_path, request.model_dump(mode="json"))
        with (request.task_dir / "workflow_manager.stderr.log").open("ab") as stderr:
            proc = subprocess.Popen(
                [self.python, "-m", "orchestrator.workflow_manager", "--request", str(request_path)],
                cwd=_PACKAGE_PARENT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        handle = _Handle(request=request, proc=proc)
        with self._lock:
            self._handles[request.task_id] = handle
        handle.reader = threading.Thread(target=self._read, args=(handle,), daemon=True, name=f"wm-{request.task_id}")
        handle.reader.start()

    def wm_pid(self, task_id: str) -> int | None:
        handle = self._handles.get(task_id)
        return handle.proc.pid if handle else None

    def _read(self, handle: _Handle) -> None:
        req = handle.request
        assert handle.proc.stdout is not None
        for raw in handle.proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            name = str(line.get("event", ""))
            data = line.get("data") or {}
            if name == "agent_started":
                handle.agent_pid = data.get("pid")
            self.events.put(BackendEvent("event", req.task_id, req.attempt, name, data))
        rc = handle.proc.wait()
        with self._lock:
            self._handles.pop(req.task_id, None)
        self.events.put(BackendEvent("exit", req.task_id, req.attempt, "exit", {"returncode": rc}))

    def cancel(self, task_id: str) -> None:
        handle = self._handles.get(task_id)
        if handle is not None and handle.proc.poll() is None:
            handle.proc.send_signal(signal.SIGTERM)

    def kill(self, task_id: str) -> None:
        handle = self._handles.get(task_id)
        if handle is None:
            return
        for pgid in (handle.agent_pid, handle.proc.pid):
            if pgid:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def running(self) -> list[str]:
        with self._lock:
            return list(self._handles)

    def close(self) -> None:
        for handle in list(self._handles.values()):
            if handle.reader is not None:
                handle.reader.join(timeout=0.1)
