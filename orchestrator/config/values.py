"""The kinds of value a run option takes: how each is read (from a flag, a `GADUGI_*` variable or a
TOML value, all the same way) and how it is written back (`2h`, `512M`) for `orchestrator config`,
`--help` and the README, so what is shown can be typed in again."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.config.durations import parse_duration
from orchestrator.config.sizes import SIZE_SUFFIXES, parse_size
from orchestrator.errors import InputError

Parser = Callable[[Any, str], Any]


@dataclass(frozen=True)
class ValueType:
    """`parse(raw, what)` raises InputError naming `what` (the flag, variable or file key)."""

    parse: Parser
    show: Callable[[Any], str]
    metavar: str
    shape: str = "value"  # "value", "switch" (--x/--no-x) or "list" (repeatable flag)
    choices: tuple[str, ...] = field(default=())


def _text(value: Any, what: str) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{what}: expected a string, got {value!r}")


def _opt_text(value: Any, what: str) -> str | None:
    text = _text(value, what)
    return text if text.strip() else None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"{what}: expected a whole number, got {value!r}")
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError(f"{what}: expected a whole number, got {value!r}") from None


def _positive_int(value: Any, what: str) -> int:
    number = _int(value, what)
    if number < 1:
        raise InputError(f"{what}: must be at least 1 (got {number})")
    return number


def _opt_positive_int(value: Any, what: str) -> int | None:
    return None if value is None or value == "" else _positive_int(value, what)


def _non_negative_int(value: Any, what: str) -> int:
    number = _int(value, what)
    if number < 0:
        raise InputError(f"{what}: must be 0 or more (got {number})")
    return number


def _opt_non_negative_int(value: Any, what: str) -> int | None:
    return None if value is None or value == "" else _non_negative_int(value, what)


def _parallel(value: Any, what: str) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return _positive_int(value, what)


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InputError(f"{what}: expected true or false, got {value!r}")


def _hours(value: Any, what: str) -> float:
    return parse_duration(value, what=what)


def _seconds(value: Any, what: str) -> float:
    return parse_duration(value, bare_unit="s", what=what)


def _seconds_or_off(value: Any, what: str) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none", "0", "")):
        return None
    return _seconds(value, what)


def _seconds_or_zero(value: Any, what: str) -> float:
    if str(value).strip().lower() in ("0", "0s", "0.0"):
        return 0.0
    return _seconds(value, what)


def _size(value: Any, what: str) -> int:
    return parse_size(_text(value, what), what=what)


def _list(value: Any, what: str) -> list[str]:
    """A TOML array or repeated flag, or one comma-separated string (`GADUGI_ALLOWED_TOOLS=Read,Edit`)."""
    if isinstance(value, (list, tuple)):
        return [_text(v, what) for v in value]
    return [part.strip() for part in _text(value, what).split(",") if part.strip()]


def _money(value: Any, what: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        amount = float(str(value).strip().lstrip("$"))
    except ValueError:
        raise InputError(f"{what}: {value!r} is not an amount in USD") from None
    if amount <= 0:
        raise InputError(f"{what}: {value!r} must be more than 0")
    return amount


def _port_range(value: Any, what: str) -> tuple[int, int] | None:
    """`"8000-8099"` or `[8000, 8099]`; empty means no ports are handed out."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = (_int(v, what) for v in value)
    else:
        text = _text(value, what).strip()
        if not text:
            return None
        low_text, sep, high_text = text.partition("-")
        if not sep:
            raise InputError(f"{what}: expected a range like 8000-8099, got {value!r}")
        low, high = _int(low_text, what), _int(high_text, what)
    if not 1 <= low <= high <= 65535:
        raise InputError(f"{what}: {low}-{high} is not a port range within 1-65535")
    return (low, high)


def _include(value: Any, what: str) -> str | None:
    """Patterns file for worktree copies; `false` or "" turns copying off."""
    if value is False:
        return None
    return _opt_text(value, what)


def show_seconds(seconds: float) -> str:
    """`2h`, `15m`, `1h30m`, `5s`, `0.5s`: the shortest exact spelling `parse_duration` reads back."""
    if seconds == 0:
        return "0"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def show_size(size: int) -> str:
    """`512M`, `1G`: the largest unit that divides the size exactly; bytes otherwise."""
    for suffix, unit in SIZE_SUFFIXES:
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, tuple):
        return f"{value[0]}-{value[1]}"
    return str(value)


def _show_money(value: Any) -> str:
    return "" if value is None else f"{value:g}"


def _show_optional(show: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda value: "" if value is None else show(value)


def choice(*choices: str) -> ValueType:
    def parse(value: Any, what: str) -> str:
        text = _text(value, what).strip()
        if text not in choices:
            raise InputError(f"{what}: expected one of {', '.join(choices)}, got {value!r}")
        return text

    return ValueType(parse, _show, "|".join(choices), choices=choices)


TEXT = ValueType(_text, _show, "TEXT")
OPTIONAL_TEXT = ValueType(_opt_text, _show, "TEXT")
COMMAND = ValueType(_opt_text, _show, "CMD")
PATH = ValueType(_opt_text, _show, "PATH")
PARALLEL = ValueType(_parallel, _show, "N|auto")
SWITCH = ValueType(_bool, _show, "", shape="switch")
LIST = ValueType(_list, _show, "TEXT", shape="list")
COUNT = ValueType(_non_negative_int, _show, "N")
POSITIVE_COUNT = ValueType(_positive_int, _show, "N")
OPTIONAL_POSITIVE_COUNT = ValueType(_opt_positive_int, _show, "N")
OPTIONAL_COUNT = ValueType(_opt_non_negative_int, _show, "N")
HOURS = ValueType(_hours, show_seconds, "DURATION")  # a bare number means hours (Gadugi's --timeout)
SECONDS = ValueType(_seconds, show_seconds, "DURATION")
SECONDS_OR_ZERO = ValueType(_seconds_or_zero, show_seconds, "DURATION|0")
SECONDS_OR_OFF = ValueType(_seconds_or_off, _show_optional(show_seconds), "DURATION|off")
SIZE = ValueType(_size, show_size, "SIZE")
MONEY = ValueType(_money, _show_money, "USD")
PORT_RANGE = ValueType(_port_range, _show, "LOW-HIGH")
INCLUDE = ValueType(_include, _show, "FILE")
