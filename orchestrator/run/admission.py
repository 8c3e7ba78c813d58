"""Hold new launches while the machine is short of memory or disk (GNU parallel's --memfree).

Memory is counted as `--max-parallel auto` counts it (config/machine.py): inside a container, what
its cgroup limit leaves, not the host's free memory."""
from __future__ import annotations

import shutil
from pathlib import Path

from orchestrator.config.machine import memory_available


def shortage(*, min_free_memory: int, min_free_disk: int, disk_path: Path) -> str | None:
    """Why a launch should wait now, or None when there is room."""
    if min_free_memory > 0:
        available = memory_available()
        if available < min_free_memory:
            return f"available memory {available / 2**20:.0f} MiB is under --min-free-memory {min_free_memory / 2**20:.0f} MiB"
    if min_free_disk > 0:
        free = shutil.disk_usage(disk_path).free
        if free < min_free_disk:
            return f"free disk {free / 2**20:.0f} MiB is under --min-free-disk {min_free_disk / 2**20:.0f} MiB"
    return None
