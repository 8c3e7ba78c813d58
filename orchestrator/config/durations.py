"""Durations as people write them: `90s`, `30m`, `2h`, `1h30m`; a bare number means hours (Gadugi)."""
from __future__ import annotations

import re

from orchestrator.errors import InputError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str | float | int, *, bare_unit: str = "h", what: str = "duration") -> float:
    """Seconds from a duration; raises InputError naming `what` when it is not one."""
    if isinstance(text, bool):
        raise InputError(f"{what}: {text!r} is not a duration (use e.g. 90s, 30m, 2h)")
    if isinstance(text, (int, float)):
        seconds = float(text) * _UNITS[bare_unit]
    else:
        value = text.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", value):
            seconds = float(value) * _UNITS[bare_unit]
        else:
            parts = _PART.findall(value)
            if not value or "".join(n + u for n, u in parts) != value:
                raise InputError(f"{what}: {text!r} is not a duration (use e.g. 90s, 30m, 2h)")
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise InputError(f"{what}: {text!r} must be longer than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form: 850ms, 42s, 3m05s, 1h02m."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
