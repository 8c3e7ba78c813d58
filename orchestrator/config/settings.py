"""Run options from the command line, `GADUGI_*` variables and the project's config file.

Precedence, per option: CLI > environment > file > default. The file is `.gadugi/config.toml`
(top-level keys) and/or `[tool.gadugi]` in the project's `pyproject.toml`; when both set a key,
`.gadugi/config.toml` wins. Every resolved value remembers where it came from, so `orchestrator
config` can show it. Values are parsed the same way from every source: a TOML string, an
environment string and a CLI string mean the same thing.

stdlib `tomllib` is enough: pydantic-settings would add a dependency for the env/file layering
we need anyway per key (source tracking, CLI flags that are not 1:1 with keys).
"""
from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config.durations import parse_duration
from orchestrator.config.model import DEFAULT_TASK_TIMEOUT, parse_max_parallel
from orchestrator.config.sizes import parse_size
from orchestrator.errors import InputError

CONFIG_FILE = ".gadugi/config.toml"
PYPROJECT = "pyproject.toml"
ENV_PREFIX = "GADUGI_"

Parser = Callable[[Any, str], Any]


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


def _duration(value: Any, what: str) -> float:
    return parse_duration(value, what=what)


def _seconds(value: Any, what: str) -> float:
    return parse_duration(value, bare_unit="s", what=what)


def _seconds_or_off(value: Any, what: str) -> float | None:
    if isinstance(value, str) and value.strip().lower() in ("off", "none", "0", ""):
        return None
    return _seconds(value, what)


def _seconds_or_zero(value: Any, what: str) -> float:
    if str(value).strip().lower() in ("0", "0s", "0.0"):
        return 0.0
    return _seconds(value, what)


def _non_negative_int(value: Any, what: str) -> int:
    number = _int(value, what)
    if number < 0:
        raise InputError(f"{what}: must be 0 or more (got {number})")
    return number


def _size(value: Any, what: str) -> int:
    """Bytes from `512M`, `1G` or a bare number of bytes (the CLI's --min-free-* syntax)."""
    return parse_size(_text(value, what), what=what)


def _list(value: Any, what: str) -> list[str]:
    """A TOML array, or one comma-separated string (env: `GADUGI_ALLOWED_TOOLS=Read,Edit`)."""
    if isinstance(value, (list, tuple)):
        return [_text(v, what) for v in value]
    return [part.strip() for part in _text(value, what).split(",") if part.strip()]


def _choice(*choices: str) -> Parser:
    def parse(value: Any, what: str) -> str:
        text = _text(value, what).strip()
        if text not in choices:
            raise InputError(f"{what}: expected one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


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


@dataclass(frozen=True)
class Setting:
    """One run option: its key in files, its default, how to read it, and its OrchestrationConfig field."""

    key: str
    default: Any
    parse: Parser
    field: str
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper()


def _opt_non_negative_int(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    return _non_negative_int(value, what)


def _opt_money(value: Any, what: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        amount = float(str(value).strip().lstrip("$"))
    except ValueError:
        raise InputError(f"{what}: {value!r} is not an amount in USD") from None
    if amount <= 0:
        raise InputError(f"{what}: {value!r} must be more than 0")
    return amount


SETTINGS: tuple[Setting, ...] = (
    Setting("max_parallel", 4, _parallel, "max_parallel", "tasks running at once, or 'auto'"),
    Setting("timeout", DEFAULT_TASK_TIMEOUT, _duration, "task_timeout_seconds",
            "per-task timeout (90s, 30m, 2h; bare number = hours)"),
    Setting("base", None, _opt_text, "base_ref", "ref to branch from (HEAD when unset)"),
    Setting("monitoring_dir", None, _opt_text, "monitoring_dir", "registry JSON directory"),
    Setting("fallback", True, _bool, "fallback_to_sequential", "run one at a time when worktrees fail"),
    Setting("worktree_cleanup", "auto", _choice("auto", "keep", "cleanup"), "worktree_cleanup",
            "which worktrees are removed after the run"),
    Setting("worktrees_dir", ".worktrees", _text, "worktrees_dir", "where task worktrees are created"),
    Setting("branch_prefix", "gadugi/", _text, "branch_prefix", "prefix of task branch names"),
    Setting("agent", "claude", _text, "agent", "agent CLI"),
    Setting("agent_cmd", None, _opt_text, "agent_cmd", "command template replacing the agent"),
    Setting("agent_args", [], _list, "agent_args", "extra agent arguments"),
    Setting("model", None, _opt_text, "model", "model passed to the agent"),
    Setting("max_turns", None, _positive_int, "max_turns", "turn limit passed to the agent"),
    Setting("permission_mode", "acceptEdits", _opt_text, "permission_mode", "Claude Code permission mode"),
    Setting("allowed_tools", [], _list, "allowed_tools", "tools the agent may use without asking"),
    Setting("verify", None, _opt_text, "verify", "command that must pass in the worktree"),
    Setting("interrupt_timeout", 5.0, _seconds, "interrupt_timeout", "wait after SIGINT before SIGTERM"),
    Setting("terminate_timeout", 5.0, _seconds, "terminate_timeout", "wait after SIGTERM before SIGKILL"),
    Setting("retries", 2, _non_negative_int, "retries", "retries per task for retryable failures"),
    Setting("run_timeout", None, _seconds_or_off, "run_timeout_seconds", "whole-run timeout (bare number = seconds)"),
    Setting("stall_timeout", 900.0, _seconds_or_off, "stall_timeout_seconds", "no agent event for this long = stalled; off"),
    Setting("launch_stagger", 0.5, _seconds_or_zero, "launch_stagger", "pause between launches"),
    Setting("min_free_memory", 512 * 2**20, _size, "min_free_memory", "launches wait below this much free memory"),
    Setting("min_free_disk", 1024 * 2**20, _size, "min_free_disk", "launches wait below this much free disk"),
    Setting("backoff_base", 5.0, _seconds_or_zero, "backoff_base", "first retry delay"),
    Setting("backoff_cap", 300.0, _seconds_or_zero, "backoff_cap", "longest retry delay"),
    Setting("breaker_threshold", 3, _positive_int, "breaker_threshold", "same permanent failure this often stops launches"),
    Setting("max_budget_usd", None, _opt_money, "max_budget_usd", "per-task budget in USD (passed to the agent)"),
    Setting("run_budget_usd", None, _opt_money, "run_budget_usd", "no task starts once the run spent this (USD)"),
    Setting("backend", "local", _choice("local", "dask", "dask-local"), "backend", "where tasks run"),
    Setting("scheduler", None, _opt_text, "scheduler", "Dask scheduler address for backend dask"),
    Setting("worktree_pool", None, _opt_non_negative_int, "worktree_pool",
            "finished clean worktrees kept for reuse (default max_parallel; 0 = off)"),
    Setting("context", None, _opt_text, "context", "file included in every task's prompt (default prompts/_context.md)"),
    Setting("setup", None, _opt_text, "setup", "shell command run in each new worktree"),
    Setting("teardown", None, _opt_text, "teardown", "shell command run before a worktree is removed"),
    Setting("port_range", None, _port_range, "port_range", "range $PORT is allocated from, e.g. 8000-8099"),
    Setting("worktree_include", ".worktreeinclude", _include, "worktree_include",
            "patterns file of git-ignored files copied into worktrees"),
)
BY_KEY = {s.key: s for s in SETTINGS}

# CLI parameter names (click's) that differ from the file key, with how to turn them into it.
CLI_ALIASES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "base_ref": ("base", lambda v: v),
    "no_fallback": ("fallback", lambda v: not v),
    "retry_backoff": ("backoff_base", lambda v: v),
}


@dataclass(frozen=True)
class Resolved:
    key: str
    value: Any
    source: str  # "cli", "env:GADUGI_X", "file:.gadugi/config.toml", "file:pyproject.toml", "default"


@dataclass(frozen=True)
class ResolvedSettings:
    values: dict[str, Resolved]

    def __getitem__(self, key: str) -> Any:
        return self.values[key].value

    def config_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for OrchestrationConfig, by its field names (`auto` resolved)."""
        out: dict[str, Any] = {}
        for setting in SETTINGS:
            value = self.values[setting.key].value
            if setting.key == "max_parallel":
                value = parse_max_parallel(str(value))
            elif setting.key == "monitoring_dir" and value is not None:
                value = Path(value)
            out[setting.field] = value
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            key: {"value": list(r.value) if isinstance(r.value, tuple) else r.value, "source": r.source}
            for key, r in self.values.items()
        }


def load_file_values(project_root: Path) -> dict[str, tuple[Any, str]]:
    """Raw values from `[tool.gadugi]` in pyproject.toml, then `.gadugi/config.toml` over them."""
    found: dict[str, tuple[Any, str]] = {}
    pyproject = project_root / PYPROJECT
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("gadugi", {})
        if not isinstance(table, dict):
            raise InputError(f"{pyproject}: [tool.gadugi] must be a table")
        found.update(_checked(table, pyproject, f"file:{PYPROJECT}"))
    config = project_root / CONFIG_FILE
    if config.is_file():
        found.update(_checked(_read_toml(config), config, f"file:{CONFIG_FILE}"))
    return found


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None


def _checked(table: Mapping[str, Any], path: Path, source: str) -> dict[str, tuple[Any, str]]:
    for key in table:
        if key not in BY_KEY:
            raise InputError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(BY_KEY))})")
    return {key: (value, source) for key, value in table.items()}


def resolve_settings(
    project_root: Path, cli_values: Mapping[str, Any], environ: Mapping[str, str]
) -> ResolvedSettings:
    """Every run option with its value and source.

    `cli_values` holds only options given explicitly on the command line, by click parameter name
    (`base_ref` and `no_fallback` are mapped to `base` and `fallback`; names that are not run
    options, like `dry_run`, are ignored). Sequences from `multiple=True` options count as given
    only when non-empty.
    """
    cli: dict[str, Any] = {}
    for name, value in cli_values.items():
        key, convert = CLI_ALIASES.get(name, (name, lambda v: v))
        if key in BY_KEY:
            cli[key] = convert(list(value) if isinstance(value, tuple) else value)
    files = load_file_values(project_root)
    resolved: dict[str, Resolved] = {}
    for setting in SETTINGS:
        if setting.key in cli:
            raw, source, what = cli[setting.key], "cli", f"--{setting.key.replace('_', '-')}"
        elif setting.env in environ:
            raw, source, what = environ[setting.env], f"env:{setting.env}", setting.env
        elif setting.key in files:
            raw, source = files[setting.key]
            what = f"{source.removeprefix('file:')}: {setting.key}"
        else:
            resolved[setting.key] = Resolved(setting.key, setting.default, "default")
            continue
        value = raw if source == "cli" and _already_typed(setting, raw) else setting.parse(raw, what)
        resolved[setting.key] = Resolved(setting.key, value, source)
    return ResolvedSettings(resolved)


def cli_overrides(project_root: Path, cli_values: Mapping[str, Any]) -> dict[str, Any]:
    """OrchestrationConfig keyword arguments for only the options given on the command line:
    what `resume` lays over the options the run was started with."""
    resolved = resolve_settings(project_root, cli_values, {})
    kwargs = resolved.config_kwargs()
    return {s.field: kwargs[s.field] for s in SETTINGS if resolved.values[s.key].source == "cli"}


def _already_typed(setting: Setting, raw: Any) -> bool:
    # click already converted these (IntRange, flags, multiple); the rest are parsed like env strings.
    return isinstance(raw, (bool, list)) or (isinstance(raw, int) and setting.key in ("max_turns", "retries"))


def describe(settings: ResolvedSettings) -> Sequence[tuple[str, str, str]]:
    """(key, value, source) rows for printing."""
    rows = []
    for setting in SETTINGS:
        r = settings.values[setting.key]
        value = r.value
        if isinstance(value, list):
            shown = ",".join(value) if value else "(none)"
        elif isinstance(value, tuple):
            shown = f"{value[0]}-{value[1]}"
        elif value is None:
            shown = "(unset)"
        else:
            shown = str(value)
        rows.append((setting.key, shown, r.source))
    return rows
