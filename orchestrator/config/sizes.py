"""Sizes as people write them: `512M`, `2G`, `1.5GB`; a bare number means bytes."""
from __future__ import annotations

from orchestrator.errors import InputError

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3,
               "t": 1024**4, "tb": 1024**4}
SIZE_SUFFIXES = (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024))  # how sizes are written back


def parse_size(text: str, *, what: str) -> int:
    """Bytes from `512M`, `2G`, `1.5GB`, `0`; a bare number means bytes."""
    value = text.strip().lower()
    number = value.rstrip("bkmgt")
    unit = value[len(number):]
    try:
        amount = float(number)
    except ValueError:
        raise InputError(f"{what}: {text!r} is not a size (use e.g. 512M, 2G)") from None
    if unit not in _SIZE_UNITS or amount < 0:
        raise InputError(f"{what}: {text!r} is not a size (use e.g. 512M, 2G)")
    return int(amount * _SIZE_UNITS[unit])
