"""Hold new launches while the machine is short of memory or disk (GNU parallel's --memfree)."""
from __future__ import annotations

import shutil
from pathlib import Path

import psutil


def shortage(*, min_free_memory: int, min_free_disk: int, disk_path: Path) -> str | None:
    """Why a launch should wait now, or None when there is room."""
    if min_free_memory > 0:
        available = psutil.virtual_memory().available
        if available < min_free_memory:
            return f"available memory {available / 2**20:.0f} MiB is under --min-free-memory {min_free_memory / 2**20:.0f} MiB"
    if min_free_disk > 0:
        free = shutil.disk_usage(disk_path).free
        if free < min_free_disk:
            return f"free disk {free / 2**20:.0f} MiB is under --min-free-disk {min_free_disk / 2**20:.0f} MiB"
    return None
