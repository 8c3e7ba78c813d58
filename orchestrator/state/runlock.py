"""One orchestrator per repository: an flock held for the whole run, plus who holds it.

The kernel drops an flock when its holder dies, so a lock left by a killed run is taken over
without guessing from pids; the JSON beside it only names the holder for the error message.
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import psutil

from orchestrator.errors import StateError
from orchestrator.models import iso
from orchestrator.state.atomic import read_json, write_json_atomic
from orchestrator.state.locks import is_held

LOCK_NAME = "orchestrator.lock"
HOLDER_NAME = "active_run.json"


class RunLock:
    def __init__(self, gadugi_dir: Path) -> None:
        self.path = gadugi_dir / LOCK_NAME
        self.holder_path = gadugi_dir / HOLDER_NAME
        self._fd: int | None = None

    def acquire(self, run_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock_past_probes(fd)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder()
            who = f"run {holder.get('run_id')} (pid {holder.get('pid')})" if holder else "another run"
            raise StateError(f"{who} is active in this repository; wait for it or stop it first") from None
        self._fd = fd
        write_json_atomic(self.holder_path, {
            "run_id": run_id, "pid": os.getpid(), "create_time": psutil.Process().create_time(), "since": iso(),
        })

    def holder(self) -> dict[str, object]:
        try:
            data = read_json(self.holder_path)
        except StateError:
            return {}
        return data if isinstance(data, dict) else {}

    def held_by_other(self) -> bool:
        """True while some live process holds the lock (used by doctor and clean)."""
        return self._fd is None and is_held(self.path)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.holder_path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


PROBE_RETRIES = 20  # a `status`/`doctor` probe holds the lock for microseconds; a run waits it out


def _flock_past_probes(fd: int) -> None:
    """Take the run lock, not mistaking another command's momentary probe for an active run."""
    for _ in range(PROBE_RETRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.005)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
