"""Hold new launches while the machine is short of memory or disk (GNU parallel's --memfree)."""
from __future__ import annotations

import shutil
from pathlib import Path

import psutil

from orchestrator.errors import InputError

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3,
          "t": 1024**4, "tb": 1024**4}


def parse_size(text: str, *, what: str) -> int:
    """Bytes from `512M`, `2G`, `1.5GB`, `0`; a bare number means bytes."""
    value = text.strip().lower()
    number = value.rstrip("bkmgt")
    unit = value[len(number):]
    try:
        amount = float(number)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a size (use e.g. 512M, 2G)") from None
    if unit not in _UNITS or amount < 0:
        raise InputError(f"{what}: {text!r} is not a size (use e.g. 512M, 2G)")
    return int(amount * _UNITS[unit])


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
