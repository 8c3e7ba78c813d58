"""Is a recorded process still the one we started? And what is its process tree using?

A pid alone is not an identity: pids are reused, so every check compares the create time recorded
at start as well.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping

import psutil

from orchestrator.models import ResourceUsage, iso

_MB = 1024 * 1024


def is_alive(pid: int, create_time: float) -> bool:
    """True when `pid` exists, is not a zombie, and is the process started at `create_time`
    (within 10 ms), so a recycled pid is never mistaken for our process."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - create_time) < 0.01
    except psutil.Error:
        return False


class TreeSampler:
    """cpu/memory/threads of process trees (a pid and all its descendants) via psutil.

    The psutil.Process objects are kept between calls, keyed by (pid, create_time): cpu_percent
    measures since the previous call on the same object, and the key never matches a reused pid.
    """

    def __init__(self) -> None:
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._lock = threading.Lock()

    def sample(self, targets: Mapping[str, tuple[int, float | None]]) -> dict[str, ResourceUsage | None]:
        """One sample per key of `targets` ((pid, create_time) each); None when that process is
        gone or the pid now belongs to another process."""
        with self._lock:
            seen: set[tuple[int, float]] = set()
            samples = {key: self._tree(pid, ctime, seen) for key, (pid, ctime) in targets.items()}
            self._procs = {key: proc for key, proc in self._procs.items() if key in seen}
        return samples

    def _tree(
        self, pid: int, create_time: float | None, seen: set[tuple[int, float]]
    ) -> ResourceUsage | None:
        if create_time is None or not is_alive(pid, create_time):
            return None
        try:
            root = self._process(pid, create_time, seen)
            status = root.status()
            tree = [root]
            for child in root.children(recursive=True):
                try:
                    tree.append(self._process(child.pid, child.create_time(), seen, child))
                except psutil.Error:
                    continue
        except psutil.Error:
            return None
        usage = ResourceUsage(status=status, create_time=create_time, sampled_at=iso())
        for proc in tree:
            try:
                with proc.oneshot():
                    usage.cpu_percent += proc.cpu_percent(None)
                    usage.memory_mb += proc.memory_info().rss / _MB
                    usage.memory_percent += proc.memory_percent()
                    usage.num_threads += proc.num_threads()
                usage.process_count += 1
            except psutil.Error:
                continue  # exited between listing and sampling
        usage.cpu_percent = round(usage.cpu_percent, 2)
        usage.memory_mb = round(usage.memory_mb, 2)
        usage.memory_percent = round(usage.memory_percent, 3)
        return usage

    def _process(
        self, pid: int, create_time: float, seen: set[tuple[int, float]], fresh: psutil.Process | None = None
    ) -> psutil.Process:
        key = (pid, create_time)
        seen.add(key)
        proc = self._procs.get(key)
        if proc is None:
            proc = self._procs[key] = fresh or psutil.Process(pid)
        return proc


def create_time_of(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None
