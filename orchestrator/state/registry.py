"""ProcessRegistry: the lifecycle state of every task, in the JSON files editors and dashboards read.

What Gadugi got wrong and this fixes (reference/gadugi.md §1.8):
- terminal states are final: a late heartbeat or duplicate event is refused and journaled;
- nothing is declared dead from a missing heartbeat; liveness is a pid plus its create_time;
- every write is locked (blocking flock) and atomic, and the run status file is rewritten on every
  status change, not every 30 s;
- several processes can share the registry: each write re-reads the file first if anyone else
  wrote it since our own last write.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.errors import StateError
from orchestrator.liveness import TreeSampler
from orchestrator.models import SCHEMA_VERSION, Phase, TaskStatus, iso, utcnow
from orchestrator.proctree import create_time_of
from orchestrator.state.atomic import CorruptStateFile, dumps_compact, read_json, write_bytes_atomic
from orchestrator.state.journal import Journal, read_journal
from orchestrator.state.locks import file_lock
from orchestrator.state.registry_models import (
    ProcessInfo,
    ResourceUsage,
    heartbeat_entry,
    registry_stats,
    replay,
    run_status,
    seconds_since,
)

log = logging.getLogger(__name__)

REGISTRY_FILE = "process_registry.json"
HEARTBEATS_FILE = "heartbeats.json"
STATS_FILE = "registry_stats.json"
LOCK_FILE = ".registry.lock"
COALESCE_SECONDS = 0.25  # how long a heartbeat may wait to reach the file in a run

_FORWARD: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED, TaskStatus.FAILED}),
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.TIMEOUT, TaskStatus.CANCELLED}
    ),
}
# Set only by register/transition, so a caller cannot bypass the lifecycle rules with update().
_MANAGED = frozenset(
    {"task_id", "run_id", "status", "created_at", "started_at", "completed_at", "duration_seconds", "command"}
)
UPDATABLE = frozenset(ProcessInfo.model_fields) - _MANAGED
# Chatter that is not worth a journal record; everything else is journaled so the registry can be
# rebuilt from the journal alone.
# What heartbeats.json shows of an entry besides status and liveness (see heartbeat_entry).
HEARTBEAT_FIELDS = frozenset({"pid", "phase", "attempt", "resource_usage", "task_name"})
_VOLATILE = frozenset({"last_heartbeat", "last_event", "last_event_at", "resource_usage"})


def transition_allowed(
    current: TaskStatus, target: TaskStatus, attempt_delta: int = 0, *, reopen: bool = False
) -> bool:
    """The lifecycle: queued→running|cancelled|failed, running→any terminal state, and
    running→queued only as a retry (attempt goes up). Nothing leaves a terminal state, except
    that `resume` re-opens a task cancelled by an interrupt (cancelled→queued, `reopen`)."""
    if reopen:
        return current is TaskStatus.CANCELLED and target is TaskStatus.QUEUED and attempt_delta >= 0
    if current.terminal or attempt_delta < 0:
        return False
    if target is TaskStatus.QUEUED:
        return current is TaskStatus.RUNNING and attempt_delta > 0
    return attempt_delta == 0 and target in _FORWARD[current]


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ProcessRegistry:
    """Lifecycle state of one run's tasks, mirrored to the files in `monitoring_dir`.

    Thread-safe, and safe to use from several processes at once (each opens its own instance,
    usually with `load`). `fsync=False` trades durability for speed (tests, tmpfs).
    `stats_interval` bounds how often `registry_stats.json` is rewritten by updates and
    heartbeats; status changes and `finalize` always rewrite it.
    """

    def __init__(
        self,
        monitoring_dir: Path,
        run_id: str,
        *,
        journal: Journal | None = None,
        clean_start: bool = True,
        fsync: bool = True,
        stats_interval: float = 2.0,
        coalesce: float = 0.0,
    ) -> None:
        self.monitoring_dir = Path(monitoring_dir)
        # Non-status changes (heartbeats, phase, cost) reach the file within `coalesce` seconds
        # instead of each rewriting it: the file holds every task, so writing it per heartbeat
        # would cost more the more tasks there are. Status changes are always written at once.
        self.coalesce = coalesce
        self._pending: dict[str, dict[str, Any]] = {}  # task id -> changes not yet in the file
        self._last_write = 0.0
        self._flush_timer: threading.Timer | None = None
        self._closed = False
        self.run_id = run_id
        self.journal = journal
        self.fsync = fsync
        self.stats_interval = stats_interval
        self.registry_path = self.monitoring_dir / REGISTRY_FILE
        self.heartbeats_path = self.monitoring_dir / HEARTBEATS_FILE
        self.stats_path = self.monitoring_dir / STATS_FILE
        self.status_path = self.monitoring_dir / f"{run_id}_status.json"
        self.final_path = self.monitoring_dir / f"{run_id}_final.json"
        self._lock_path = self.monitoring_dir / LOCK_FILE
        self._mutex = threading.RLock()
        self._entries: dict[str, ProcessInfo] = {}
        # Serialised entries, redone only for the entry that changed: with 1000 tasks, encoding
        # everything on each update would cost milliseconds.
        self._encoded: dict[str, str] = {}  # task id → '"id":{...}' for process_registry.json
        self._hb_encoded: dict[str, str] = {}  # task id → '{...}' for heartbeats.json
        self._sig: tuple[int, int, int, int] | None = None
        # An open descriptor on the file we last wrote pins its inode, so the inode cannot be
        # reused by another writer's file and fool the signature check.
        self._pinned: int | None = None
        self._finished = False
        self._stats_at = 0.0
        self.sampler = TreeSampler()
        self._held = False  # this thread holds the file lock (guarded by _mutex)
        self._batch: list[bool] | None = None  # inside batch(): the writes put off, status_changed each
        self.monitoring_dir.mkdir(parents=True, exist_ok=True)
        with self._locked(refresh=False):
            if clean_start:
                self._write(status_changed=True)
            else:
                self._open_existing()

    @classmethod
    def load(
        cls, monitoring_dir: Path, run_id: str, *, journal: Journal | None = None, fsync: bool = True,
        coalesce: float = 0.0,
    ) -> ProcessRegistry:
        """Re-open an existing run's registry. When the file is missing, corrupt (it is moved
        aside) or belongs to another run, the entries are rebuilt from `journal`."""
        return cls(monitoring_dir, run_id, journal=journal, clean_start=False, fsync=fsync, coalesce=coalesce)

    # -- lifecycle ---------------------------------------------------------------------------

    def register(
        self,
        task_id: str,
        *,
        task_name: str,
        command: list[str],
        working_directory: Path | str,
        prompt_file: Path | str | None,
        branch: str,
        base_sha: str,
        worktree: Path | str,
        priority: int,
        attempt: int = 1,
        sandbox: str = "",
    ) -> None:
        """Add a task as queued; a task id already registered in this run is a StateError."""
        with self._locked():
            if task_id in self._entries:
                raise StateError(f"task {task_id!r} is already registered in run {self.run_id}")
            now = iso()
            entry = ProcessInfo(
                task_id=task_id,
                task_name=task_name,
                status=TaskStatus.QUEUED,
                command=shlex.join(command),
                working_directory=str(working_directory),
                created_at=now,
                prompt_file=None if prompt_file is None else str(prompt_file),
                last_heartbeat=now,
                run_id=self.run_id,
                attempt=attempt,
                branch=branch,
                base_sha=base_sha,
                worktree=str(worktree),
                agent_command=list(command),
                sandbox=sandbox,
                priority=priority,
            )
            self._journal("register", task_id=task_id, attempt=attempt, changes=entry.model_dump(mode="json"))
            self._store(entry)
            self._write(status_changed=True)

    def transition(
        self, task_id: str, status: TaskStatus | str, *, reason: str | None = None, reopen: bool = False,
        **fields: Any,
    ) -> bool:
        """Move a task to `status`, applying `fields` too. Returns False (and journals a
        `transition_refused` record) when the lifecycle does not allow it; never raises for that.

        A retry is `transition(id, QUEUED, attempt=n+1, reason=...)` from running: the failed
        attempt lives in the journal, the entry starts over. `reason` becomes the error_message of
        a failed/timeout/cancelled task unless `error_message` is given.

        `reopen` (resume only): a task cancelled by an interrupt goes back to queued; a task
        cancelled for any other cause stays cancelled.
        """
        target = TaskStatus(status)
        _check_fields(fields)
        with self._locked():
            entry = self._require(task_id)
            attempt = int(fields.get("attempt", entry.attempt))
            allowed = transition_allowed(entry.status, target, attempt - entry.attempt, reopen=reopen)
            if reopen and entry.cancelled_by != "interrupt":
                allowed = False
            if not allowed:
                self._journal(
                    "transition_refused",
                    task_id=task_id,
                    attempt=entry.attempt,
                    requested_attempt=attempt,
                    why="terminal" if entry.status.terminal else "not allowed",
                    reason=reason,
                    **{"from": entry.status.value, "to": target.value},
                )
                return False
            now = utcnow()
            stamp = iso(now)
            # A retry wait describes only the queued spell it was set with: any later move ends it.
            changes: dict[str, Any] = {"status": target, "last_heartbeat": stamp, "retry_wait": None}
            if target is TaskStatus.RUNNING:
                changes["started_at"] = stamp
            elif target is TaskStatus.QUEUED:
                changes.update(
                    started_at=None, completed_at=None, duration_seconds=None, pid=None,
                    pid_create_time=None, exit_code=None, resource_usage=None, phase=Phase.QUEUED,
                    cancelled_by=None,
                )
            else:
                changes["completed_at"] = stamp
                changes["duration_seconds"] = seconds_since(entry.started_at, now)
                if target is TaskStatus.COMPLETED:
                    changes["phase"] = Phase.DONE
                elif reason is not None:
                    changes["error_message"] = reason
            changes.update(fields)
            if target in (TaskStatus.QUEUED, TaskStatus.COMPLETED):
                changes["error_message"] = None
            new = self._apply(entry, changes)
            self._journal(
                "transition",
                task_id=task_id,
                attempt=new.attempt,
                previous_attempt=entry.attempt,
                reason=reason if reason is not None else fields.get("error_message"),
                changes=_diff(entry, new),
                **{"from": entry.status.value, "to": target.value},
                **({"reopened": True} if reopen else {}),
            )
            self._store(new)
            self._write(status_changed=True)
        return True

    def update(self, task_id: str, **fields: Any) -> None:
        """Set non-status fields (pid, phase, session_id, cost_usd, tokens, turns, ...).

        Unknown names raise ValueError. A pid given without its create_time gets it from psutil
        now, while the pid is certainly still ours.
        """
        _check_fields(fields)
        with self._mutex:
            if self._deferrable():
                self._defer(self._require(task_id), fields)
                return
        with self._locked():
            entry = self._require(task_id)
            self._update_locked(entry, fields)
            self._write(status_changed=False, heartbeats=not HEARTBEAT_FIELDS.isdisjoint(fields))

    def heartbeat(
        self, task_id: str, *, last_event_at: str | None = None, last_event: str | None = None, **fields: Any
    ) -> bool:
        """Record that a task is alive (last_heartbeat = now), with its latest event if given.
        Ignored (returns False) for unknown and finished tasks, so a late heartbeat changes nothing.

        Unlike `update`, None values in `fields` mean "not known yet" and leave the field alone,
        so a heartbeat sent before the session id or cost is known does not erase them.
        """
        _check_fields(fields)
        fields = {k: v for k, v in fields.items() if v is not None}
        with self._mutex:
            deferred = self._deferrable()
            with contextlib.nullcontext() if deferred else self._locked():
                entry = self._entries.get(task_id)
                if entry is None or entry.status.terminal:
                    return False
                now = iso()
                changes = dict(fields, last_heartbeat=now)
                if last_event is not None:
                    changes["last_event"] = last_event
                    changes["last_event_at"] = last_event_at or now
                elif last_event_at is not None:
                    changes["last_event_at"] = last_event_at
                if deferred:
                    self._defer(entry, changes)
                else:
                    self._update_locked(entry, changes)
                    self._write(status_changed=False)
        return True

    def sample_resources(self) -> dict[str, ResourceUsage | None]:
        """Sample cpu/memory/threads of each running task's process tree into resource_usage.

        Returns the samples by task id; None means the pid is gone or is no longer the process we
        started. The status is not changed here: deciding that a task died is the caller's job.
        """
        with self._locked():
            targets: dict[str, tuple[int, float | None]] = {
                e.task_id: (e.pid, e.pid_create_time)
                for e in self._entries.values()
                if e.status is TaskStatus.RUNNING and e.pid is not None
            }
        if not targets:
            return {}
        samples = self.sampler.sample(targets)  # outside the lock: psutil is slow-ish
        with self._locked():
            for task_id, usage in samples.items():
                entry = self._entries.get(task_id)
                if usage is None or entry is None or entry.status is not TaskStatus.RUNNING:
                    continue
                if (entry.pid, entry.pid_create_time) == targets[task_id]:
                    self._store(entry.model_copy(update={"resource_usage": usage}))
            self._write(status_changed=False)
        return samples

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the lock and write each file once at the end instead of after every change:
        registering 1000 tasks one by one would rewrite the whole registry 1000 times."""
        with self._locked():
            if self._batch is not None:  # nested: the outer batch writes
                yield
                return
            self._batch = []
            try:
                yield
            finally:
                changes, self._batch = self._batch, None
                if changes:
                    self._write(status_changed=any(changes))

    def finalize(self) -> None:
        """Write the final status (`finished: true`), `<run_id>_final.json` and the stats."""
        with self._locked():
            self._finished = True
            self._write(status_changed=True)
            write_bytes_atomic(self.final_path, self._registry_bytes(iso()), fsync=self.fsync)
            counts = {s.value: 0 for s in TaskStatus}
            for entry in self._entries.values():
                counts[entry.status.value] += 1
            self._journal("registry_finalized", status_breakdown=counts)

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, ProcessInfo]:
        """Copies of every entry, including changes other processes made."""
        with self._locked():
            return {tid: entry.model_copy(deep=True) for tid, entry in self._entries.items()}

    def get(self, task_id: str) -> ProcessInfo | None:
        with self._locked():
            entry = self._entries.get(task_id)
            return None if entry is None else entry.model_copy(deep=True)

    def close(self) -> None:
        self.flush()
        with self._mutex:
            self._closed = True
            if self._flush_timer is not None:
                self._flush_timer.cancel()
            if self._pinned is not None:
                os.close(self._pinned)
                self._pinned = None

    def flush(self) -> None:
        """Write changes held back by coalescing now."""
        with self._locked():
            if self._pending:
                self._write(status_changed=False)

    # -- internals -------------------------------------------------------------------------------

    def _deferrable(self) -> bool:
        return (self.coalesce > 0 and self._batch is None and not self._closed
                and time.monotonic() - self._last_write < self.coalesce)

    def _defer(self, entry: ProcessInfo, fields: Mapping[str, Any]) -> None:
        """Apply a non-status change in memory now and schedule the file write (caller holds
        the mutex, not the file lock: nothing here touches the disk but the journal)."""
        before = entry
        self._update_locked(entry, fields)
        changed = _diff(before, self._entries[entry.task_id])
        if changed:
            self._pending.setdefault(entry.task_id, {}).update(changed)
        if self._flush_timer is None:
            delay = max(0.0, self._last_write + self.coalesce - time.monotonic())
            self._flush_timer = threading.Timer(delay, self._timed_flush)
            self._flush_timer.daemon = True
            self._flush_timer.start()

    def _timed_flush(self) -> None:
        with self._mutex:
            self._flush_timer = None
            if self._closed:
                return
        self.flush()

    def _reapply_pending(self) -> None:
        """Another process rewrote the file: our changes not yet written go on top of its state."""
        for task_id, changes in self._pending.items():
            entry = self._entries.get(task_id)
            if entry is not None and not entry.status.terminal:
                self._store(self._apply(entry, changes))

    @contextmanager
    def _locked(self, *, refresh: bool = True) -> Iterator[None]:
        with self._mutex:
            if self._held:  # re-entered inside batch(): flock on a second descriptor would deadlock
                yield
                return
            with file_lock(self._lock_path):
                self._held = True
                try:
                    if refresh:
                        self._refresh()
                    yield
                finally:
                    self._held = False

    def _refresh(self) -> None:
        """Adopt another process's write; costs one stat when nobody else wrote."""
        sig = _signature(self.registry_path)
        if sig == self._sig or sig is None:
            return  # unchanged, or deleted: our next write recreates it from memory
        self._sig = sig
        try:
            data = read_json(self.registry_path)
        except CorruptStateFile as exc:
            # Memory holds the last good state (at worst one other process's write behind);
            # the next write replaces the file.
            log.warning("%s", exc)
            self._sig = None
            self._journal("registry_corrupt", moved_to=str(exc.moved_to), error=exc.reason)
            return
        if not isinstance(data, dict) or data.get("run_id") != self.run_id:
            log.warning("%s was overwritten by another run; keeping run %s", self.registry_path, self.run_id)
            return
        self._adopt(data)
        self._reapply_pending()

    def _adopt(self, data: Mapping[str, Any]) -> None:
        processes = data.get("processes")
        if not isinstance(processes, dict):
            raise StateError(f"{self.registry_path}: 'processes' is not an object")
        self._entries = {tid: ProcessInfo.model_validate(raw) for tid, raw in processes.items()}
        self._encoded.clear()
        self._hb_encoded.clear()

    def _open_existing(self) -> None:
        try:
            data = read_json(self.registry_path)
        except CorruptStateFile as exc:
            self._rebuild(f"corrupt, moved to {exc.moved_to}")
            return
        if data is None:
            self._rebuild("missing")
        elif not isinstance(data, dict) or data.get("run_id") != self.run_id:
            self._rebuild(f"holds run {data.get('run_id') if isinstance(data, dict) else None!r}")
        else:
            self._adopt(data)
            self._sig = _signature(self.registry_path)

    def _rebuild(self, why: str) -> None:
        if self.journal is None:
            raise StateError(
                f"{self.registry_path} is {why} and there is no journal to rebuild run {self.run_id} from"
            )
        self._entries = replay(read_journal(self.journal.path), self.run_id)
        self._encoded.clear()
        self._hb_encoded.clear()
        self._journal("registry_rebuilt", why=why, tasks=len(self._entries))
        log.warning(
            "%s %s; rebuilt %d task(s) from %s", self.registry_path, why, len(self._entries), self.journal.path
        )
        self._write(status_changed=True)

    def _require(self, task_id: str) -> ProcessInfo:
        try:
            return self._entries[task_id]
        except KeyError:
            raise StateError(f"unknown task {task_id!r} in run {self.run_id}") from None

    def _apply(self, entry: ProcessInfo, changes: Mapping[str, Any]) -> ProcessInfo:
        data = entry.model_dump()
        data.update(changes)
        if "agent_command" in changes:
            data["command"] = shlex.join(changes["agent_command"])
        return ProcessInfo.model_validate(data)

    def _update_locked(self, entry: ProcessInfo, fields: Mapping[str, Any]) -> None:
        changes = dict(fields)
        for pid_key, time_key in (("pid", "pid_create_time"), ("wm_pid", "wm_create_time")):
            if changes.get(pid_key) is not None and changes.get(time_key) is None:
                changes[time_key] = create_time_of(changes[pid_key])
        new = self._apply(entry, changes)
        durable = {k: v for k, v in _diff(entry, new).items() if k not in _VOLATILE}
        if durable:
            self._journal("update", task_id=entry.task_id, changes=durable)
        self._store(new)

    def _store(self, entry: ProcessInfo) -> None:
        self._entries[entry.task_id] = entry
        self._encoded.pop(entry.task_id, None)
        self._hb_encoded.pop(entry.task_id, None)

    def _journal(self, event: str, **fields: Any) -> None:
        if self.journal is not None:
            self.journal.append(event, **fields)

    def _registry_bytes(self, timestamp: str) -> bytes:
        parts = []
        for task_id, entry in self._entries.items():
            encoded = self._encoded.get(task_id)
            if encoded is None:
                encoded = self._encoded[task_id] = f"{json.dumps(task_id)}:{entry.model_dump_json()}"
            parts.append(encoded)
        return f'{self._head(timestamp)},"processes":{{{",".join(parts)}}}}}'.encode()

    def _write(self, *, status_changed: bool, heartbeats: bool = True) -> None:
        """Rewrite the registry, and the heartbeats unless nothing they show changed; the status
        file on status changes; the stats on status changes or when `stats_interval` has passed.
        Caller holds the lock, so every write here is time other writers wait: only status
        changes pay for a durable rename (a directory fsync)."""
        if self._batch is not None:
            self._batch.append(status_changed)
            return
        now = utcnow()
        stamp = iso(now)
        self._pending.clear()  # the file is about to hold everything in memory
        self._last_write = time.monotonic()
        durable = self.fsync and status_changed
        write_bytes_atomic(self.registry_path, self._registry_bytes(stamp), fsync=self.fsync, durable_rename=durable)
        self._pin()
        if heartbeats or status_changed:
            write_bytes_atomic(self.heartbeats_path, self._heartbeats_bytes(stamp), fsync=self.fsync,
                               durable_rename=durable)
        if status_changed:
            status = run_status(self.run_id, self._entries.values(), now, self._finished)
            self._write_json(self.status_path, status)
        if status_changed or time.monotonic() - self._stats_at >= self.stats_interval:
            self._write_json(self.stats_path, registry_stats(self.run_id, self._entries.values(), stamp))
            self._stats_at = time.monotonic()

    def _write_json(self, path: Path, data: Any) -> None:
        write_bytes_atomic(path, dumps_compact(data).encode(), fsync=self.fsync)

    def _pin(self) -> None:
        fd = os.open(self.registry_path, os.O_RDONLY)
        if self._pinned is not None:
            os.close(self._pinned)
        self._pinned = fd
        st = os.fstat(fd)
        self._sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _heartbeats_bytes(self, stamp: str) -> bytes:
        parts = []
        for task_id, entry in self._entries.items():
            if entry.status.terminal:
                continue
            encoded = self._hb_encoded.get(task_id)
            if encoded is None:
                encoded = self._hb_encoded[task_id] = dumps_compact(heartbeat_entry(entry))
            parts.append(encoded)
        return f'{self._head(stamp)},"active_processes":[{",".join(parts)}]}}'.encode()

    def _head(self, stamp: str) -> str:
        """The common keys of a file, as an unclosed JSON object to append the bulk to."""
        head = dumps_compact({"schema_version": SCHEMA_VERSION, "run_id": self.run_id, "timestamp": stamp})
        return head[:-1]


def _check_fields(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable registry fields: {sorted(unknown)}")


def _diff(before: ProcessInfo, after: ProcessInfo) -> dict[str, Any]:
    old = before.model_dump(mode="json")
    return {k: v for k, v in after.model_dump(mode="json").items() if old.get(k) != v}
