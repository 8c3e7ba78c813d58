"""Run options from the command line, `GADUGI_*` variables and the project's config file.

The one table of run options: each is declared here once, and its flag (`--retry-backoff`), its
environment variable (`GADUGI_RETRY_BACKOFF`), its config key (`retry_backoff`), its default, its
help, the click option (cli/options.py), `orchestrator config` and the README's option table (a
test checks it) all come from that declaration.

Precedence, per option: CLI > environment > file > default. The file is `.gadugi/config.toml`
(top-level keys) and/or `[tool.gadugi]` in the project's `pyproject.toml`; when both set a key,
`.gadugi/config.toml` wins. Every resolved value remembers where it came from, so `orchestrator
config` can show it. Values are parsed the same way from every source: a TOML string, an
environment string and a CLI string mean the same thing.

stdlib `tomllib` is enough: pydantic-settings would add a dependency for the env/file layering
we need anyway per key (source tracking, one parser per option shared with the CLI).
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orchestrator.config import values as v
from orchestrator.config.machine import resolve_max_parallel
from orchestrator.errors import InputError, did_you_mean

# Here, not in config.model: this table is read at every CLI start, and the model imports pydantic.
DEFAULT_TASK_TIMEOUT = 2 * 3600.0  # Gadugi's default: two hours per task

CONFIG_FILE = ".gadugi/config.toml"
PYPROJECT = "pyproject.toml"
ENV_PREFIX = "GADUGI_"

# Names this tool uses that are not run options: what it sets for the programs it starts (agents,
# setup hooks, notify commands; a run started from inside one of those sees them), and where the
# launch scripts keep their virtual environment. Never taken for a misspelled setting.
NOT_SETTINGS = frozenset({
    "GADUGI_VENV",
    "GADUGI_RUN_ID", "GADUGI_TASK_ID", "GADUGI_BRANCH", "GADUGI_WORKTREE", "GADUGI_BASE_SHA",
    "GADUGI_ATTEMPT", "GADUGI_PROJECT_ROOT", "GADUGI_EVENT", "GADUGI_STATUS", "GADUGI_ERROR",
    "GADUGI_COST_USD", "GADUGI_DURATION_SECONDS", "GADUGI_ATTENTION", "GADUGI_REASON",
    "GADUGI_AGENT_ARGV", "GADUGI_FRESH_AGENT_ARGV", "GADUGI_FIXUP_ARGV", "GADUGI_ATTEMPT_LOCK_FD",
})

# Keys an earlier release read under another name: refused with the new name, never ignored.
RENAMED = {"backoff_base": "retry_backoff", "backoff_cap": "retry_backoff_cap"}


@dataclass(frozen=True)
class Setting:
    """One run option. Its flag is `--<key with dashes>`, its variable `GADUGI_<KEY>`."""

    key: str
    default: Any
    type: v.ValueType
    help: str
    field: str | None = ""  # OrchestrationConfig field ("" = the key); None = read by the CLI itself
    # "plan": how tasks are planned (run, plan); "agent": also run, plan, resume; "run": run, resume.
    group: Literal["plan", "agent", "run"] = "run"
    metavar: str = ""  # the flag's value placeholder, when the type's is too vague
    default_text: str = ""  # shown instead of the default value when that is computed elsewhere
    aliases: tuple[str, ...] = ()  # other spellings of the flag, kept for old command lines
    shortcuts: tuple[tuple[str, str, str], ...] = ()  # (flag, value, help): `--keep-worktrees` = keep

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper()

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    @property
    def config_field(self) -> str | None:
        return self.key if self.field == "" else self.field

    def shown_default(self) -> str:
        return self.default_text or self.type.show(self.default)


S = Setting
SETTINGS: tuple[Setting, ...] = (
    # What the agent is and how it is driven (also taken by `plan`, whose commands show them).
    S("agent", "claude", v.TEXT, "agent CLI: claude, codex, gemini, aider; front matter `agent` wins", group="agent",
      metavar="NAME"),
    S("agent_cmd", None, v.COMMAND, "any command as the agent, e.g. 'tool --prompt-file {prompt_file}' "
      "(placeholders {prompt_file} {worktree} {task_id} {branch} {run_id}); success by exit code", group="agent"),
    S("agent_args", [], v.LIST, "extra argument for the agent (repeatable)", group="agent", aliases=("--agent-arg",),
      metavar="ARG"),
    S("model", None, v.OPTIONAL_TEXT, "model passed to the agent; front matter `model` wins", group="agent",
      metavar="MODEL"),
    S("max_turns", None, v.OPTIONAL_POSITIVE_COUNT, "turn limit passed to the agent; front matter wins",
      group="agent"),
    S("permission_mode", "acceptEdits", v.OPTIONAL_TEXT,
      "Claude Code permission mode; git status/diff/log/add/commit are always allowed", group="agent", metavar="MODE"),
    S("allowed_tools", [], v.LIST, "more tools the agent may use unasked (repeatable)", group="agent",
      metavar="TOOL"),
    S("sandbox", "auto", v.choice("auto", "on", "off"),
      "confine each agent to its worktree so it may run any command there; auto = when bubblewrap is installed",
      group="agent"),
    S("sandbox_write", [], v.LIST, "extra path the sandboxed agent may write (repeatable)", group="agent",
      metavar="PATH"),
    S("allowed_domains", [], v.LIST, "network domain Claude's sandbox lets commands reach, e.g. pypi.org (repeatable)",
      group="agent", metavar="DOMAIN"),
    S("trust_project", False, v.SWITCH,
      "apply the project's .claude/settings.json in every worktree although Claude Code was never told to trust it",
      group="agent"),
    S("mcp", "inherit", v.TEXT, "MCP servers each Claude agent starts: inherit (the user's), none, or only those in FILE",
      group="agent", metavar="inherit|none|FILE"),
    S("claude_config", "auto", v.choice("auto", "isolated", "shared"),
      "Claude Code's config directory: isolated = one per task seeded from yours, so launches need no spacing; "
      "auto = isolated unless a subscription login would be copied", group="agent"),
    S("context", None, v.PATH, "file included in every task's prompt", group="agent",
      default_text="prompts/_context.md", metavar="FILE"),
    S("max_budget_usd", None, v.MONEY, "per-task budget, passed to the agent where supported", group="agent"),
    S("verify", None, v.COMMAND, "shell command that must pass in the worktree for a task to count as done",
      group="agent"),
    S("fix_rounds", 2, v.COUNT, "when the checks after the agent fail, resume it this many times with the "
      "evidence before the task fails (0 = off); front matter `fix_rounds` wins", group="agent"),
    S("placeholder_check", True, v.SWITCH,
      "fail work that adds placeholders (TODO, raise NotImplementedError, empty files); front matter "
      "`allow_placeholders: true` turns it off for a task", group="agent"),
    S("placeholder_patterns", [], v.LIST, "regex that marks an added line as a placeholder (repeatable; "
      "replaces the built-in ones)", group="agent", default_text="built-in", metavar="REGEX"),
    S("base", None, v.OPTIONAL_TEXT, "commit, branch or tag every task branches from", field="base_ref",
      group="plan", default_text="HEAD", metavar="REF"),
    # How the run is scheduled.
    S("max_parallel", 4, v.PARALLEL, "tasks running at once; `auto`: two per CPU, 1.5 GB of memory each, "
      "at most 16, within the container's cgroup limits"),
    S("timeout", DEFAULT_TASK_TIMEOUT, v.HOURS,
      "per task (`90s`, `30m`, `2h`; a bare number means hours); front matter `timeout` wins",
      field="task_timeout_seconds"),
    S("run_timeout", None, v.SECONDS_OR_OFF, "the whole run: running tasks end `timeout`, the rest `cancelled`",
      field="run_timeout_seconds"),
    S("stall_timeout", 900.0, v.SECONDS_OR_OFF,
      "no agent event, no file change and no CPU in the agent's process tree for this long = stalled",
      field="stall_timeout_seconds"),
    S("retries", 2, v.COUNT, "extra attempts for transient failures (API overloaded or rate limited, crashed, "
      "killed, stalled)"),
    S("retry_backoff", 5.0, v.SECONDS_OR_ZERO,
      "base of the exponential backoff with full jitter; a rate limit waits for its reset", field="backoff_base"),
    S("retry_backoff_cap", 300.0, v.SECONDS_OR_ZERO, "longest wait between attempts", field="backoff_cap"),
    S("breaker_threshold", 3, v.POSITIVE_COUNT,
      "the same permanent failure this many times stops new launches ('not logged in': at once)"),
    S("interrupt_timeout", 5.0, v.SECONDS, "grace after SIGINT before SIGTERM when stopping an agent"),
    S("terminate_timeout", 5.0, v.SECONDS, "grace after SIGTERM before SIGKILL when stopping an agent"),
    S("launch_stagger", 0.5, v.SECONDS_OR_ZERO,
      "jittered pause between launches of Claude agents sharing one config directory (they corrupt it)"),
    S("min_free_memory", 512 * 2**20, v.SIZE,
      "new launches wait while available memory (under the cgroup's limit, as `auto` counts it) is below this"),
    S("min_free_disk", 1024 * 2**20, v.SIZE, "new launches wait while free disk is below this"),
    S("run_budget_usd", None, v.MONEY, "once the run has spent this much, no new task starts"),
    S("backend", "local", v.choice("local", "dask", "dask-local"),
      "where tasks run: local subprocesses, a Dask cluster (--scheduler), or an in-process Dask cluster"),
    S("scheduler", None, v.OPTIONAL_TEXT, "Dask scheduler for --backend dask, e.g. tcp://10.0.0.5:8786", metavar="ADDRESS"),
    # Where things go.
    S("monitoring_dir", None, v.PATH, "where the registry JSON goes", default_text=".gadugi/monitoring", metavar="DIR"),
    S("worktrees_dir", ".worktrees", v.TEXT, "where task worktrees are created (relative to the repository)", metavar="DIR"),
    S("branch_prefix", "gadugi/", v.TEXT, "prefix of task branch names", metavar="PREFIX"),
    S("worktree_pool", None, v.OPTIONAL_COUNT,
      "keep up to N clean finished worktrees and recycle them for later tasks (0 = off)",
      default_text="--max-parallel"),
    S("sparse", False, v.SWITCH,
      "check out only the `files:` scopes a prompt declares (plus top-level files); others get everything"),
    S("worktree_cleanup", "auto", v.choice("auto", "keep", "cleanup"),
      "which worktrees are removed after the run: auto keeps those with work in them or failed",
      shortcuts=(("--keep-worktrees", "keep", "Keep every task's worktree."),
                 ("--cleanup-worktrees", "cleanup", "Remove every clean worktree, failed ones too."))),
    S("fallback", True, v.SWITCH,
      "run one at a time in the main checkout when worktrees cannot be made (--no-fallback: fail)",
      field="fallback_to_sequential"),
    S("setup", None, v.COMMAND, "shell command run in each new worktree (with $PORT, $GADUGI_WORKTREE, ...)"),
    S("teardown", None, v.COMMAND, "shell command run before a worktree is removed"),
    S("port_range", None, v.PORT_RANGE, "range the setup hook's $PORT is allocated from, e.g. 8000-8099"),
    S("worktree_include", ".worktreeinclude", v.INCLUDE,
      "patterns file of git-ignored files (such as .env) copied into each new worktree; false = none"),
    # What the run tells others.
    S("log_format", "text", v.choice("text", "json"),
      "run log: .gadugi/runs/<run-id>/orchestrator.log or orchestrator.jsonl", field=None),
    S("notify_cmd", None, v.COMMAND, "shell command run on task end, on a task needing attention and on run end "
      "(JSON on stdin)", field=None),
    S("notify_url", None, v.OPTIONAL_TEXT, "POST a JSON notification to this URL on the same events", field=None, metavar="URL"),
    S("metrics_file", None, v.PATH, "Prometheus textfile for node_exporter", field=None,
      default_text=".gadugi/monitoring/metrics.prom", metavar="FILE"),
    S("otel", False, v.SWITCH, "export the run as an OpenTelemetry trace over OTLP/HTTP, set up by the standard "
      "OTEL_* variables (on by itself when OTEL_EXPORTER_OTLP_ENDPOINT is set); needs the otel extra"),
)
del S
BY_KEY = {s.key: s for s in SETTINGS}
BY_ENV = {s.env: s for s in SETTINGS}


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
            if setting.config_field is None:
                continue
            value = self.values[setting.key].value
            if setting.key == "max_parallel":
                # Detected once here: the plan shows the same numbers the run is limited by.
                value, out["machine"] = resolve_max_parallel(str(value))
            elif setting.key == "monitoring_dir" and value is not None:
                value = Path(value)
            out[setting.config_field] = value
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
        if key in RENAMED:
            raise InputError(f"{path}: setting {key!r} is now called {RENAMED[key]!r}")
        if key not in BY_KEY:
            hint = did_you_mean(key, list(BY_KEY)) or f" (known: {', '.join(sorted(BY_KEY))})"
            raise InputError(f"{path}: unknown setting {key!r}{hint}")
    return {key: (value, source) for key, value in table.items()}


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse a `GADUGI_*` variable that looks like a setting but is not one: it would be ignored."""
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in BY_ENV or name in NOT_SETTINGS:
            continue
        old = name.removeprefix(ENV_PREFIX).lower()
        if old in RENAMED:
            raise InputError(f"{name} is now called {BY_KEY[RENAMED[old]].env}")
        hint = did_you_mean(name, list(BY_ENV))
        if hint:
            raise InputError(f"{name} is not a setting{hint}")


def resolve_settings(
    project_root: Path, cli_values: Mapping[str, Any], environ: Mapping[str, str]
) -> ResolvedSettings:
    """Every run option with its value and source.

    `cli_values` holds only options given explicitly on the command line, by click parameter name,
    which is the setting's key (names that are not run options, like `dry_run`, are ignored).
    """
    check_environment(environ)
    files = load_file_values(project_root)
    resolved: dict[str, Resolved] = {}
    for setting in SETTINGS:
        if setting.key in cli_values:
            raw, source, what = cli_values[setting.key], "cli", setting.flag
        elif setting.env in environ:
            raw, source, what = environ[setting.env], f"env:{setting.env}", setting.env
        elif setting.key in files:
            raw, source = files[setting.key]
            what = f"{source.removeprefix('file:')}: {setting.key}"
        else:
            resolved[setting.key] = Resolved(setting.key, setting.default, "default")
            continue
        resolved[setting.key] = Resolved(setting.key, setting.type.parse(raw, what), source)
    return ResolvedSettings(resolved)


def cli_overrides(project_root: Path, cli_values: Mapping[str, Any]) -> dict[str, Any]:
    """OrchestrationConfig keyword arguments for only the options given on the command line:
    what `resume` lays over the options the run was started with."""
    resolved = resolve_settings(project_root, cli_values, {})
    kwargs = resolved.config_kwargs()
    overrides = {
        s.config_field: kwargs[s.config_field]
        for s in SETTINGS
        if s.config_field is not None and resolved.values[s.key].source == "cli"
    }
    if "max_parallel" in overrides:  # what was detected goes with the number, or is cleared by it
        overrides["machine"] = kwargs["machine"]
    return overrides


def describe(settings: ResolvedSettings) -> Sequence[tuple[str, str, str]]:
    """(key, value, source) rows for printing, each value as it would be typed (`2h`, `512M`)."""
    rows = []
    for setting in SETTINGS:
        r = settings.values[setting.key]
        if r.value is None or r.value == []:
            shown = f"({setting.default_text})" if setting.default_text and r.value is None else "(unset)"
        else:
            shown = setting.type.show(r.value)
        rows.append((setting.key, shown, r.source))
    return rows
