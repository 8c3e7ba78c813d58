"""The worker side of the Dask backend: one task, run by the same WorkflowManager as locally.

`run_task_remote` executes inside a Dask worker. It brings the worker's copy of the repository up
to date (bundles shipped by the orchestrator, or the shared remote), writes a worker-local
request, runs the WorkflowManager in its own session exactly as the local backend does (forked
by a launcher each worker process starts once, or spawned without one), forwards its NDJSON
events over Dask's event channel, turns the stop flag the orchestrator sets into the same
signals (SIGTERM cancel, SIGUSR1 timeout, SIGKILL kill), and returns the result with the task
branch as a git bundle. It writes nothing outside the worker's local directory and cleans up its
worktree and task directory before it returns.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, Field

from orchestrator.backends import start
from orchestrator.backends.launcher import PACKAGE_PARENT, Launcher
from orchestrator.backends.remote.repo import WorkerRepo
from orchestrator.cmd import which
from orchestrator.models import TaskResult, TaskStatus, iso
from orchestrator.proctree import create_time_of, signal_group
from orchestrator.state.atomic import write_json_atomic
from orchestrator.state.secrets import Redactor
from orchestrator.task import attempt_lock
from orchestrator.task.wire import AGENT_ARGV_ENV, FRESH_ARGV_ENV, TaskRequest

TOPIC = "gadugi"  # the Dask event topic the orchestrator subscribes to
POLL = 0.5  # seconds between checks of the stop flag
HEARTBEAT_EVERY = 1.0  # forward at most one heartbeat per task per second; the rest are noise
SHIPPED_FILES = ("workflow_manager.log", "workflow_manager.stderr.log", "agent.stderr.log", "agent.jsonl", "setup.json")
MAX_SHIPPED = 8 * 2**20  # bytes per file sent back; a longer log comes back as its tail


class RemoteTaskSpec(BaseModel):
    """Everything a worker needs for one attempt; crosses the wire, never written to disk whole."""

    key: str = Field(description="Dask key, unique per attempt: run_id/task_id/attempt.")
    request: TaskRequest = Field(description="The request as the orchestrator built it (its paths).")
    prompt_text: str
    fresh_prompt_text: str | None = Field(default=None, description="The prompt used if the session is gone.")
    repo_key: str = Field(description="Names the worker's copy of this project's repository.")
    repo_url: str | None = Field(default=None, description="A remote the worker may fetch commits from.")
    need: list[str] = Field(default_factory=list, description="Commits that must exist before the task starts.")
    from_remote: list[str] = Field(default_factory=list, description="Commits to fetch from repo_url by SHA.")
    branch_tip: str | None = Field(default=None, description="A retry continues the branch from here.")
    known: list[str] = Field(default_factory=list, description="Commits the orchestrator has.")
    env: dict[str, str] = Field(default_factory=dict, description="Laid over the worker's own environment.")
    keep_pids: bool = Field(default=False, description="Same machine as the orchestrator: pids mean something.")


def stop_names(key: str) -> tuple[str, str]:
    """The Dask Event (is a stop requested?) and Variable (which one) for an attempt."""
    return f"gadugi-stop-{key}", f"gadugi-stop-kind-{key}"


def started_name(key: str) -> str:
    return f"gadugi-started-{key}"


def worker_versions() -> dict[str, str]:
    """What the version check at connect compares (run on every worker with client.run)."""
    import distributed

    from orchestrator.version import __version__

    return {"orchestrator": __version__, "python": sys.version.split()[0],
            "distributed": distributed.__version__}


def run_task_remote(spec: RemoteTaskSpec, base_bundle: bytes | None, delta_bundle: bytes | None) -> dict[str, Any]:
    """Run one attempt on this worker; returns {"result", "bundle", "files", "events_sent", "worker"}."""
    from distributed import Event, get_worker

    worker = get_worker()
    started = Event(started_name(spec.key))
    if started.is_set():
        # Dask rescheduled an attempt whose worker died. Our retry policy, not Dask's, decides
        # whether it runs again (as a new attempt), so this one ends here without a result.
        raise RuntimeError(f"attempt {spec.key} already started on a worker that died; not running it twice")
    started.set()
    runner = _Runner(spec, Path(worker.local_directory) / "gadugi", worker)
    return runner.run(base_bundle, delta_bundle)


class _Runner:
    def __init__(self, spec: RemoteTaskSpec, root: Path, worker: Any) -> None:
        self.spec = spec
        self.req = spec.request
        self.root = root
        self.worker = worker
        self.repo = WorkerRepo(root, spec.repo_key)
        self.task_dir = root / "runs" / self.req.run_id / self.req.task_id
        self.worktree = self.repo.path / ".worktrees" / self.req.run_id / self.req.worktree.name
        self.seq = 0
        self._last_heartbeat: dict[str, Any] | None = None
        self._heartbeat_sent = 0.0

    # -- events ---------------------------------------------------------------------------------

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        self.worker.log_event(TOPIC, {
            "key": self.spec.key, "run_id": self.req.run_id, "task_id": self.req.task_id,
            "attempt": self.req.attempt, "seq": self.seq, "event": event, "data": data,
        })

    def forward(self, line: dict[str, Any]) -> None:
        name = str(line.get("event", ""))
        data = dict(line.get("data") or {})
        if name == "result":
            return  # the result travels as the task's return value
        if name == "heartbeat":
            now = time.monotonic()
            if now - self._heartbeat_sent < HEARTBEAT_EVERY:
                self._last_heartbeat = data
                return
            self._heartbeat_sent = now
            self._last_heartbeat = None
        elif self._last_heartbeat is not None:
            self.emit("heartbeat", self._last_heartbeat)
            self._last_heartbeat = None
        if name == "agent_started" and not self.spec.keep_pids:
            # A pid on another machine means nothing to the orchestrator's liveness checks.
            data["remote_pid"], data["pid"], data["create_time"] = data.get("pid"), None, None
            data["worker"] = self.worker.address
        self.emit(name, data)

    # -- the attempt ----------------------------------------------------------------------------

    def run(self, base_bundle: bytes | None, delta_bundle: bytes | None) -> dict[str, Any]:
        try:
            request = self._prepare(base_bundle, delta_bundle)
            result = self._execute(request)
            bundle = self._bundle() if result is not None else None
            files = self._collect()
        finally:
            self._clean()
        if self._last_heartbeat is not None:
            self.emit("heartbeat", self._last_heartbeat)
        return {"result": result, "bundle": bundle, "files": files, "events_sent": self.seq,
                "worker": self.worker.address}

    def _prepare(self, base_bundle: bytes | None, delta_bundle: bytes | None) -> TaskRequest:
        spec, req = self.spec, self.req
        with self.repo.locked():
            wanted = [*spec.need, spec.branch_tip or ""]
            if spec.repo_url and spec.from_remote:
                self.repo.fetch_from(spec.repo_url, spec.from_remote)
            scratch = self.root / "incoming" / f"{spec.key.replace('/', '_')}.bundle"
            for bundle in (base_bundle, delta_bundle):
                if bundle is not None and self.repo.missing(wanted):
                    self.repo.ingest(bundle, scratch, url=spec.repo_url)
            missing = self.repo.missing(wanted)
            if missing:
                raise RuntimeError(f"commits {', '.join(s[:10] for s in missing)} did not reach worker {self.worker.address}")
            self.repo.reset_branch(req.branch, spec.branch_tip)
        if self.task_dir.exists():
            shutil.rmtree(self.task_dir)
        self.task_dir.mkdir(parents=True)
        prompt = self.task_dir / req.prompt_path.name
        prompt.write_text(spec.prompt_text, encoding="utf-8")
        reuse = req.reuse_worktree and spec.branch_tip is not None
        fresh: dict[str, Any] = {"fresh_agent_command": None, "fresh_prompt_path": None}
        if req.fresh_agent_command and req.fresh_prompt_path and spec.fresh_prompt_text is not None:
            # Sessions are worker-local: a retry landing here may need to start afresh.
            fresh_prompt = self.task_dir / req.fresh_prompt_path.name
            fresh_prompt.write_text(spec.fresh_prompt_text, encoding="utf-8")
            fresh = {"fresh_prompt_path": fresh_prompt,
                     "fresh_agent_command": self._agent_argv(fresh_prompt, req.fresh_agent_command,
                                                             req.fresh_prompt_path)}
        val = req.validation
        fixup_prompt = self.task_dir / "fixup-prompt.md"
        # Fix-up rounds start the agent here too: their commands and prompt file move like the rest.
        validation = val.model_copy(update={
            "prompt_path": fixup_prompt if val.prompt_path else None,
            **{key: self._agent_argv(fixup_prompt, argv, val.prompt_path) if argv and val.prompt_path else None
               for key, argv in (("resume_command", val.resume_command), ("fresh_command", val.fresh_command))},
        })
        return req.model_copy(update={
            **fresh,
            "validation": validation,
            "project_root": self.repo.path,
            "task_dir": self.task_dir,
            "prompt_path": prompt,
            "worktree": self.worktree,
            "worktrees_dir": ".worktrees",
            "agent_command": self._agent_argv(prompt, req.agent_command, req.prompt_path),
            "reuse_worktree": reuse,
            "start_sha": req.start_sha if reuse else "",
            "port_range": req.port_range,
        })

    def _agent_argv(self, prompt: Path, command: list[str], their_prompt: Path) -> list[str]:
        """The orchestrator's argv with its paths swapped for this worker's: the executable found
        here when the orchestrator's path does not exist, the prompt file and worktree moved."""
        argv = list(command)
        if argv and not Path(argv[0]).is_file():
            argv[0] = which(Path(argv[0]).name, path=self._env().get("PATH", "")) or argv[0]
        swaps = ((str(their_prompt), str(prompt)), (str(self.req.worktree), str(self.worktree)))
        out = []
        for arg in argv:
            for old, new in swaps:
                arg = arg.replace(old, new)
            out.append(arg)
        return out

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.spec.env}

    def _execute(self, request: TaskRequest) -> dict[str, Any] | None:
        """Run the WorkflowManager to its end; its result.json as a dict, or None if it left none."""
        from distributed import Event, Variable

        stop_event, stop_kind = (Event(stop_names(self.spec.key)[0]), Variable(stop_names(self.spec.key)[1]))
        env = self._env()
        redactor = Redactor.from_env(env)
        shown = redactor.argv(request.agent_command)
        if shown != request.agent_command:
            env[AGENT_ARGV_ENV] = json.dumps(request.agent_command)
        fresh_shown = redactor.argv(request.fresh_agent_command) if request.fresh_agent_command else None
        if fresh_shown != request.fresh_agent_command:
            env[FRESH_ARGV_ENV] = json.dumps(request.fresh_agent_command)
        request_path = self.task_dir / "request.json"
        write_json_atomic(request_path, request.model_copy(update={
            "agent_command": shown, "fresh_agent_command": fresh_shown}).model_dump(mode="json"))
        if stop_event.is_set():
            return self._stopped_before_start(request, str(stop_kind.get()))
        with (self.task_dir / "workflow_manager.stderr.log").open("ab") as stderr:
            proc = _start_workflow_manager(request_path, env, stderr.fileno(),
                                           attempt_lock.lock_path(self.task_dir, request.attempt))
        guard = _Guard(proc.pid)
        lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True, name=f"wm-{self.spec.key}").start()
        agent_group: int | None = None
        ready = False  # the WorkflowManager's signal handlers are in place once it said anything
        acted: set[str] = set()
        next_poll = 0.0
        try:
            while True:
                try:
                    raw = lines.get(timeout=POLL)
                except queue.Empty:
                    raw = b""
                if raw is None:
                    break
                if raw:
                    ready = True
                    line = _parse(raw)
                    if line is not None:
                        if line.get("event") == "agent_started":
                            data = line.get("data") or {}
                            if data.get("pid"):
                                agent_group = int(data["pid"])
                                guard.watch(agent_group, float(data.get("create_time") or 0.0))
                        self.forward(line)
                now = time.monotonic()
                if now >= next_poll:
                    next_poll = now + POLL
                    kind = self._stop_requested(stop_event, stop_kind)
                    # SIGTERM/SIGUSR1 only once its handlers are installed (it has said something),
                    # or they would kill it outright and lose the result; SIGKILL needs no handler.
                    if kind is not None and kind not in acted and (ready or kind == "kill"):
                        acted.add(kind)
                        _signal(proc.pid, agent_group, kind)
            proc.wait()
        finally:
            guard.close(finished=proc.finished())
        try:
            data = json.loads(request.result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("attempt") == request.attempt else None

    def _stop_requested(self, stop_event: Any, stop_kind: Any) -> str | None:
        state = self.worker.state.tasks.get(self.spec.key)
        if state is not None and state.state == "cancelled":
            return "cancel"  # the orchestrator released the future (it stopped, or lost us)
        if not stop_event.is_set():
            return None
        return str(stop_kind.get())

    def _stopped_before_start(self, request: TaskRequest, kind: str) -> dict[str, Any]:
        timeout = kind == "timeout"
        result = TaskResult(
            task_id=request.task_id, status=TaskStatus.TIMEOUT if timeout else TaskStatus.CANCELLED,
            attempt=request.attempt, branch=request.branch, worktree=str(request.worktree),
            base_sha=request.base_sha, error_message="stopped before it started on the worker",
            started_at=iso(), completed_at=iso(),
        )
        result.outcome.failure = "timeout" if timeout else "cancelled"
        return result.model_dump(mode="json")

    def _bundle(self) -> bytes | None:
        out = self.task_dir / "branch.bundle"
        with self.repo.locked():
            made = self.repo.branch_bundle(self.req.branch, out, self.spec.known + [self.spec.branch_tip or ""])
        return out.read_bytes() if made else None

    def _collect(self) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        for name in SHIPPED_FILES:
            path = self.task_dir / name
            try:
                size = path.stat().st_size
                with path.open("rb") as fh:
                    fh.seek(max(0, size - MAX_SHIPPED))
                    files[name] = fh.read()
            except OSError:
                continue
        return files

    def _clean(self) -> None:
        """The worktree and task files go; the branch lives on in the returned bundle."""
        with self.repo.locked():
            if self.worktree.exists():
                self.repo.remove_worktree(self.worktree)
            self.repo.reset_branch(self.req.branch, None)
        shutil.rmtree(self.task_dir, ignore_errors=True)
        for empty in (self.worktree.parent, self.task_dir.parent):
            try:
                empty.rmdir()  # the run's directory, once its last task is gone
            except OSError:
                pass


class _WorkflowManager:
    """The task's WorkflowManager on this worker: forked by the worker's launcher, or spawned."""

    def __init__(self, started: start.Started, lock: Path) -> None:
        self.pid = started.pid
        self.stdout = started.stdout
        self._lock = lock
        self._launcher = started.launcher
        self._proc = started.proc

    def wait(self) -> None:
        if self._proc is not None:
            self._proc.wait()
        elif self._launcher is None or self._launcher.wait_exit(self.pid) is None:
            attempt_lock.wait_released(self._lock)  # the launcher is gone: its attempt lock tells

    def finished(self) -> bool:
        return self._proc.poll() is not None if self._proc is not None else not attempt_lock.is_held(self._lock)


# One launcher per worker process, started with its first task and shared by the tasks its threads
# run: each WorkflowManager then costs a fork instead of ~0.4 s of CPU for the interpreter and our
# imports (backends/launcher.py says what stays the same for the task).
_launcher: Launcher | None = None
_launcher_lock = threading.Lock()


def _worker_launcher() -> Launcher | None:
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            _launcher = Launcher.start(sys.executable, os.environ)
        return _launcher


def _launcher_lost(launcher: Launcher) -> None:
    global _launcher
    with _launcher_lock:
        if _launcher is launcher:
            _launcher = None  # the next task starts a new one


def _start_workflow_manager(request_path: Path, env: dict[str, str], stderr_fd: int, lock: Path) -> _WorkflowManager:
    """The task's WorkflowManager, holding the attempt's lock for its life; forked by the worker's
    launcher, or spawned the plain way without one (backends/start.py)."""
    launcher = _worker_launcher()
    started = start.workflow_manager(launcher, sys.executable, request_path, env, stderr_fd, lock)
    if launcher is not None and started.launcher is None:
        _launcher_lost(launcher)
    return _WorkflowManager(started, lock)


class _Guard:
    """The `orchestrator.backends.remote.guard` process watching this task's process groups."""

    def __init__(self, wm_pid: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.backends.remote.guard"], cwd=PACKAGE_PARENT, stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        self.watch(wm_pid, create_time_of(wm_pid) or 0.0)

    def watch(self, pid: int, created: float) -> None:
        self._send(f"watch {pid} {created or create_time_of(pid) or 0.0!r}\n")

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def close(self, *, finished: bool) -> None:
        if finished:
            self._send("done\n")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()


def _pump(stream: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    for raw in stream:
        lines.put(raw)
    lines.put(None)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line if isinstance(line, dict) else None


def _signal(wm_pid: int, agent_group: int | None, kind: str) -> None:
    """cancel and timeout go to the WorkflowManager, which escalates on the agent as it does
    locally; kill takes both groups down at once."""
    try:
        if kind == "kill":
            for pgid in (agent_group, wm_pid):
                if pgid:
                    signal_group(pgid, signal.SIGKILL)
        else:
            os.kill(wm_pid, signal.SIGUSR1 if kind == "timeout" else signal.SIGTERM)
    except ProcessLookupError:
        pass
