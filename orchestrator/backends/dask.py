"""WorkflowManagers on a Dask cluster (the `[dask]` extra).

Dask only moves work and results. Each attempt is one Dask task (`run_task_remote`, key
`run_id/task_id/attempt`, resource `agent=1`, no Dask retries): the worker runs the ordinary
WorkflowManager in its own copy of the repository and returns the result plus the task branch as
a git bundle, which is verified and fetched into the local repository here. Events come back over
Dask's event channel (`log_event` → `subscribe_topic`); stopping is cooperative through a Dask
Event the task polls. A worker lost mid-task ends the attempt without a result, which the engine
records as `lost` and our retry policy handles. The orchestrator stays the only writer of
`.gadugi/`: logs and results come back in the return value and are written here.
"""
from __future__ import annotations

import hashlib
import json
import logging
import queue
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.backends.base import BackendEvent
from orchestrator.backends.dask_repo import RepoShipper
from orchestrator.backends.remote.task import (
    TOPIC,
    RemoteTaskSpec,
    run_task_remote,
    started_name,
    stop_names,
    worker_versions,
)
from orchestrator.errors import InputError, OrchestratorError
from orchestrator.gitops import git
from orchestrator.gitops.bundles import (
    INCOMING,
    adopt_branch,
    delete_ref,
    fetch_bundle,
    verify_bundle,
)
from orchestrator.models import TaskResult, TaskStatus
from orchestrator.state.atomic import write_bytes_atomic, write_json_atomic
from orchestrator.state.locks import file_lock
from orchestrator.state.secrets import Redactor
from orchestrator.task.wire import TaskRequest
from orchestrator.tracing import SpanRef, exporter_env, handoff_env

log = logging.getLogger(__name__)

INSTALL_HINT = "the dask backend needs the [dask] extra: pip install 'gadugi-orchestrator[dask]'"
EVENT_DRAIN = 5.0  # seconds an attempt's exit waits for its last events to arrive
CONNECT_TIMEOUT = 10.0


def import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return distributed


@dataclass
class _Attempt:
    request: TaskRequest
    key: str
    future: Any
    received: int = 0  # events seen so far, to order the exit after the last one
    stop_kind: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def loopback_http() -> dict[str, Any]:
    """LocalCluster arguments for a cluster that serves this process alone. Dask's HTTP endpoints
    (health, metrics) start even with the dashboard off: `dashboard_address=None` still binds the
    scheduler's to port 8787 on every interface in-process, and warns when a cluster of the user's
    holds 8787. These bind scheduler and workers to the loopback, on free ports, dashboard off."""
    return {"dashboard_address": "127.0.0.1:0", "worker_dashboard_address": "127.0.0.1:0",
            "scheduler_kwargs": {"dashboard": False}}


class DaskBackend:
    """The Backend protocol over a Dask scheduler (`address`) or an in-process cluster (`local`)."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        address: str | None = None,
        local: bool = False,
        project_root: Path,
        max_parallel: int = 4,
        processes: bool = False,
        n_workers: int = 1,
        forward_env: list[str] | None = None,
        remote: str | None = None,
        trace: SpanRef | None = None,
    ) -> None:
        distributed = import_distributed()
        if not local and not address:
            raise InputError("--backend dask needs --scheduler tcp://HOST:8786 (or use --backend dask-local)")
        self.env = env
        self.trace = trace
        self.local = local
        self.project_root = Path(project_root)
        self.redactor = Redactor.from_env(env)
        # In-process: the environment never leaves this machine, so it all goes to the agents, as
        # with the local backend. Remote workers use their own environment (their PATH, their
        # agent login) plus only the variables named in forward_env.
        if local:
            self.forwarded = dict(env)
        else:
            self.forwarded = {k: env[k] for k in (forward_env or []) if k in env}
            if trace is not None:  # the worker's WorkflowManagers export to the same collector
                self.forwarded.update(exporter_env(env))
        self.events: queue.Queue[BackendEvent] = queue.Queue()
        self._attempts: dict[str, _Attempt] = {}  # by Dask key
        self._by_task: dict[str, str] = {}  # task id -> key of its running attempt
        self._lock = threading.Condition()
        self._done: queue.Queue[Any] = queue.Queue()
        self._distributed = distributed
        # The in-process cluster's workers keep their repository copies here, gone with us.
        self._scratch = tempfile.TemporaryDirectory(prefix="gadugi-dask-", ignore_cleanup_errors=True)
        t0 = time.monotonic()
        self.cluster: Any = None
        self.client = self._connect(distributed, address, max_parallel, processes, n_workers)
        self.start_seconds = time.monotonic() - t0
        self.shipper = RepoShipper(self.project_root, self.client, remote=remote, local=local)
        self.repo_key = hashlib.sha256(f"{socket.gethostname()}:{self.project_root}".encode()).hexdigest()[:16]
        self.client.subscribe_topic(TOPIC, self._on_event)
        self._finisher = threading.Thread(target=self._finish_loop, daemon=True, name="dask-results")
        self._finisher.start()

    # -- connecting ------------------------------------------------------------------------------

    def _connect(self, distributed: Any, address: str | None, max_parallel: int, processes: bool,
                 n_workers: int) -> Any:
        import dask

        if self.local:
            # Our retry policy is the only one: a task whose worker dies is not re-run by Dask.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster = distributed.LocalCluster(
                    processes=processes,
                    n_workers=n_workers,
                    threads_per_worker=max_parallel,
                    resources={"agent": max_parallel},
                    **loopback_http(),
                    local_directory=self._scratch.name,
                )
            return distributed.Client(self.cluster, set_as_default=False)
        try:
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        try:
            check_versions(client)
        except BaseException:
            client.close()
            raise
        return client

    # -- Backend protocol ------------------------------------------------------------------------

    def submit(self, request: TaskRequest) -> tuple[int | None, float | None]:
        request.task_dir.mkdir(parents=True, exist_ok=True)
        shown = self.redactor.argv(request.agent_command)
        fresh = self.redactor.argv(request.fresh_agent_command) if request.fresh_agent_command else None
        write_json_atomic(request.task_dir / "request.json", request.model_copy(
            update={"agent_command": shown, "fresh_agent_command": fresh}).model_dump(mode="json"))
        key = f"{request.run_id}/{request.task_id}/{request.attempt}"
        shipment = self.shipper.prepare(request)
        spec = RemoteTaskSpec(
            key=key,
            request=request,
            prompt_text=request.prompt_path.read_text(encoding="utf-8"),
            fresh_prompt_text=(request.fresh_prompt_path.read_text(encoding="utf-8")
                               if request.fresh_prompt_path is not None else None),
            repo_key=self.repo_key,
            repo_url=shipment.url,
            need=shipment.need,
            from_remote=shipment.from_remote,
            branch_tip=shipment.branch_tip,
            known=shipment.known,
            env=handoff_env(self.forwarded, self.trace, request.task_id, request.attempt),
            keep_pids=self.local,
        )
        with self._lock:
            future = self.client.submit(
                run_task_remote, spec, shipment.base_bundle, shipment.delta_bundle,
                key=key, pure=False, resources={"agent": 1}, retries=0,
            )
            self._attempts[key] = _Attempt(request=request, key=key, future=future)
            self._by_task[request.task_id] = key
        # Runs on the client's event loop: hand over, never work there.
        future.add_done_callback(self._done.put)
        return None, None

    def attach(self, request: TaskRequest, pid: int, create_time: float) -> None:
        """Dask futures do not outlive the client that made them: the attempt an earlier
        orchestrator started is told to stop (if it still runs) and ends here without a result,
        so the engine re-queues it."""
        self._request_stop(f"{request.run_id}/{request.task_id}/{request.attempt}", "kill")
        self.events.put(BackendEvent("exit", request.task_id, request.attempt, "exit", {"returncode": None}))

    def cancel(self, task_id: str, *, timeout: bool = False) -> None:
        key = self._by_task.get(task_id)
        if key is not None:
            self._request_stop(key, "timeout" if timeout else "cancel")

    def kill(self, task_id: str) -> None:
        key = self._by_task.get(task_id)
        if key is None:
            return
        self._request_stop(key, "kill")
        attempt = self._attempts.get(key)
        if attempt is not None and attempt.future.status == "pending":
            attempt.future.cancel()  # not started on a worker yet: nothing there to stop

    def running(self) -> list[str]:
        with self._lock:
            return [a.request.task_id for a in self._attempts.values()]

    def close(self) -> None:
        for key in list(self._attempts):
            self._request_stop(key, "kill")
        self._done.put(None)
        self._finisher.join(timeout=EVENT_DRAIN)
        try:
            self.client.unsubscribe_topic(TOPIC)
        except Exception as exc:  # noqa: BLE001 - closing anyway
            log.debug("unsubscribe failed: %s", exc)
        self.shipper.close()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self._scratch.cleanup()

    # -- stopping --------------------------------------------------------------------------------

    def _request_stop(self, key: str, kind: str) -> None:
        event_name, kind_name = stop_names(key)
        # The kind first: a worker that sees the event reads it at once.
        self._distributed.Variable(kind_name, client=self.client).set(kind)
        self._distributed.Event(event_name, client=self.client).set()
        attempt = self._attempts.get(key)
        if attempt is not None:
            attempt.stop_kind = kind

    def _forget_stop(self, key: str) -> None:
        event_name, kind_name = stop_names(key)
        try:
            self._distributed.Event(event_name, client=self.client).clear()
            self._distributed.Event(started_name(key), client=self.client).clear()
            self._distributed.Variable(kind_name, client=self.client).delete()
        except Exception as exc:  # noqa: BLE001 - scheduler bookkeeping only; the cluster may be gone
            log.debug("could not clear the stop flags of %s: %s", key, exc)

    # -- events and results ----------------------------------------------------------------------

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """Runs on the client's event loop: enqueue only."""
        _, msg = event
        if not isinstance(msg, dict):
            return
        with self._lock:
            attempt = self._attempts.get(str(msg.get("key")))
            if attempt is None:
                return  # another orchestrator's task on a shared cluster, or an earlier attempt
            attempt.received += 1
            self._lock.notify_all()
        data = msg.get("data") or {}
        self.events.put(BackendEvent("event", attempt.request.task_id, attempt.request.attempt,
                                     str(msg.get("event", "")), dict(data)))

    def _finish_loop(self) -> None:
        while True:
            future = self._done.get()
            if future is None:
                return
            attempt = self._attempts.get(str(future.key))
            if attempt is None:
                continue
            wrote = False
            try:
                wrote = self._finish(attempt, future)
            except Exception as exc:  # noqa: BLE001 - the attempt must end whatever happened
                self._note(attempt.request, f"gadugi: collecting the result failed: {exc}")
            with self._lock:
                self._attempts.pop(attempt.key, None)
                if self._by_task.get(attempt.request.task_id) == attempt.key:
                    del self._by_task[attempt.request.task_id]
            self._forget_stop(attempt.key)
            req = attempt.request
            self.events.put(BackendEvent("exit", req.task_id, req.attempt, "exit",
                                         {"returncode": 0 if wrote else None}))

    def _finish(self, attempt: _Attempt, future: Any) -> bool:
        """Write the attempt's logs and result.json from what the worker returned; False when
        it returned none (the engine then records the attempt as lost)."""
        req = attempt.request
        try:
            out = future.result()
        except BaseException as exc:  # noqa: BLE001 - KilledWorker, CancelledError (a BaseException), a worker error
            self._note(req, f"gadugi: attempt {attempt.key} ended on the cluster without a result: "
                            f"{type(exc).__name__}: {exc}")
            return False
        self._drain(attempt, int(out.get("events_sent") or 0))
        for name, payload in (out.get("files") or {}).items():
            write_bytes_atomic(req.task_dir / Path(name).name, payload)
        if out.get("result") is None:
            self._note(req, f"gadugi: the WorkflowManager on {out.get('worker')} left no result")
            return False
        result = TaskResult.model_validate(out["result"])
        result.worktree = str(req.worktree)
        try:
            self._adopt_branch(req, result, out.get("bundle"))
        except OrchestratorError as exc:
            result.status = TaskStatus.FAILED
            result.outcome.failure = "setup_failed"
            result.error_message = f"could not bring the branch back from the worker: {exc}"
        write_json_atomic(req.result_path, json.loads(self.redactor.text(result.model_dump_json())))
        return True

    def _drain(self, attempt: _Attempt, sent: int) -> None:
        """The result overtakes events still in flight; the exit waits (briefly) for them."""
        deadline = time.monotonic() + EVENT_DRAIN
        with self._lock:
            while attempt.received < sent and time.monotonic() < deadline:
                self._lock.wait(timeout=max(0.0, deadline - time.monotonic()))

    def _adopt_branch(self, req: TaskRequest, result: TaskResult, bundle: bytes | None) -> None:
        repo = self.project_root
        if bundle is None:
            # No new commits: the branch sits on a commit we already have (its start).
            if result.head_sha and git.rev_parse(repo, result.head_sha) and not git.branch_exists(repo, req.branch):
                refused = adopt_branch(repo, req.branch, result.head_sha)
                if refused:
                    raise OrchestratorError(refused)
            return
        scratch = f"{INCOMING}/{req.run_id}/{req.task_id}/{req.attempt}"
        with tempfile.TemporaryDirectory(prefix="gadugi-bundle-") as tmp:
            path = Path(tmp) / "branch.bundle"
            path.write_bytes(bundle)
            with file_lock(git.git_common_dir(repo) / "gadugi-git.lock"):
                verify_bundle(repo, path)
                fetch_bundle(repo, path, [f"+refs/heads/{req.branch}:{scratch}"])
                new = git.rev_parse(repo, scratch)
                if new is None or (result.head_sha and new != result.head_sha):
                    raise OrchestratorError(f"the bundle's {req.branch} is not the reported head {result.head_sha[:10]}")
                refused = adopt_branch(repo, req.branch, new)
                if refused:
                    raise OrchestratorError(f"{refused}; the task's work is kept as {scratch}")
                delete_ref(repo, scratch)

    def _note(self, req: TaskRequest, line: str) -> None:
        """The engine's `lost` message points at this file; say there what happened."""
        req.task_dir.mkdir(parents=True, exist_ok=True)
        with (req.task_dir / "workflow_manager.stderr.log").open("a", encoding="utf-8") as fh:
            fh.write(self.redactor.text(line) + "\n")


def check_versions(client: Any) -> None:
    """One clear line when this orchestrator and a worker would not understand each other."""
    from orchestrator.version import __version__

    try:
        client.get_versions(check=True)
    except ValueError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(f"Dask versions differ between this orchestrator and the cluster: "
                         f"{' '.join(first[:4])}") from None
    answers = client.run(worker_versions, on_error="return")
    for address, found in sorted(answers.items()):
        if isinstance(found, BaseException):
            raise InputError(f"worker {address} cannot run gadugi-orchestrator tasks "
                             f"({type(found).__name__}: {found}); install 'gadugi-orchestrator[dask]' "
                             f"{__version__} there")
        if found.get("orchestrator") != __version__:
            raise InputError(f"version skew: this orchestrator is gadugi-orchestrator {__version__}, "
                             f"worker {address} has {found.get('orchestrator')}; install the same version everywhere")
