"""What a recorded process tree is using: cpu, memory and threads, sampled per run.

The process identity (pid plus create time) and the tree walk come from `proctree`.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping

import psutil

from orchestrator.models import ResourceUsage, iso
from orchestrator.proctree import is_alive, tree_processes

_MB = 1024 * 1024


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
        members = tree_processes(pid)
        try:
            root = self._process(pid, create_time, seen)
            status = root.status()
        except psutil.Error:
            return None
        tree = [root]
        for child in members[1:]:
            try:
                tree.append(self._process(child.pid, child.create_time(), seen, child))
            except psutil.Error:
                continue
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
