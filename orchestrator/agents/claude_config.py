"""Claude Code's own state, one directory per task, so parallel agents never write the same file.

Facts checked with Claude Code 2.1.329 in print mode (tests/integration/test_real_claude_config.py):

- `CLAUDE_CONFIG_DIR` moves everything the CLI writes: its `.claude.json` (then inside the
  directory, no longer beside it in HOME), the session transcripts under `projects/`, backups and
  plugin caches. Nothing is written to HOME.
- `--resume <session>` finds a session only in the directory that wrote it.

Sessions sharing one `.claude.json` rewrite it without a lock at start and on every tool call, and
corrupt it (anthropics/claude-code#28829, #29003): spacing launches shields only the start. With a
directory per task nothing is shared, so launches need no spacing at all.

A task's directory holds a copy of the user's `.claude.json` (user-scope MCP servers, the trust
the user gave the main checkout, a stored API key, onboarding flags), made once, and links to the
configuration the CLI only reads (settings, memory, agents, commands, skills, hooks, plugins). A
subscription login is never duplicated: `.credentials.json` holds a single-use refresh token, so
copies would log each other out, and on macOS the keychain entry is named after the directory.
With such a login `auto` keeps the user's directory and spaces launches instead.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError

CONFIG_DIR_ENV = "CLAUDE_CONFIG_DIR"
CONFIG_FILE = ".claude.json"
CREDENTIALS = ".credentials.json"
AUTO, ISOLATED, SHARED = "auto", "isolated", "shared"
# Logins that nothing refreshes, so any number of agents may use copies of them.
TOKEN_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
LOGIN_FIX = "run `claude setup-token` and set CLAUDE_CODE_OAUTH_TOKEN to its token, or set ANTHROPIC_API_KEY"
# What the CLI reads and does not write in normal use; everything else it writes is per task.
_LINKED = ("settings.json", "CLAUDE.md", "agents", "commands", "skills", "output-styles", "hooks",
           "keybindings.json")
# Inside plugins/, the CLI rewrites its built-in plugin store at every start: per task too.
_PLUGINS_WRITTEN = ("store",)
# Cloud providers log in with their own credentials, which nothing here copies or refreshes.
_PROVIDER_VARIABLES = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY")


def user_config_dir(env: Mapping[str, str]) -> Path | None:
    """The directory the user's own `claude` reads: $CLAUDE_CONFIG_DIR, else ~/.claude."""
    if env.get(CONFIG_DIR_ENV):
        return Path(env[CONFIG_DIR_ENV]).expanduser()
    return Path(env["HOME"]) / ".claude" if env.get("HOME") else None


def user_config_file(env: Mapping[str, str]) -> Path | None:
    """The user's `.claude.json`: inside $CLAUDE_CONFIG_DIR when set, else beside ~/.claude."""
    if env.get(CONFIG_DIR_ENV):
        return Path(env[CONFIG_DIR_ENV]).expanduser() / CONFIG_FILE
    return Path(env["HOME"]) / CONFIG_FILE if env.get("HOME") else None


def read_object(path: Path | None, *keys: str) -> dict[str, Any]:
    """The JSON object under `keys` in the file at `path`: {} when the file is missing or unreadable,
    or when a key or an object on the way is absent (the CLI reports its own file errors)."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        return {}
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def refreshing_login(env: Mapping[str, str], platform: str = sys.platform) -> str | None:
    """Where a subscription login with a refresh token lives, or None when the agents log in with
    something that can be shared by copies (an API key or token, a key helper, a cloud provider)."""
    if any(env.get(name) for name in (*TOKEN_VARIABLES, *_PROVIDER_VARIABLES)):
        return None
    config_dir = user_config_dir(env)
    if config_dir is not None and (config_dir / CREDENTIALS).is_file():
        return f"the subscription login in {config_dir / CREDENTIALS}"
    if platform == "darwin":
        stored_key = read_object(user_config_file(env)).get("primaryApiKey")
        helper = config_dir is not None and read_object(config_dir / "settings.json").get("apiKeyHelper")
        if not (stored_key or helper):
            return "a login in the macOS keychain"
    return None


def isolate(mode: str, env: Mapping[str, str]) -> bool:
    """Whether each task's agent gets its own config directory. InputError when `isolated` was
    asked for a login that copies would break."""
    login = refreshing_login(env)
    if mode == ISOLATED and login is not None:
        raise InputError(f"--claude-config isolated: {login} cannot be copied per task (its refresh token is "
                         f"single-use); {LOGIN_FIX}, or use --claude-config shared")
    return mode == ISOLATED or (mode == AUTO and login is None)


def seed(target: Path, env: Mapping[str, str]) -> None:
    """Make `target` a config directory that sees the user's configuration and writes only its
    own state. Kept once made, so a retry or a resumed run finds the task's sessions in it; one
    cut short (no `.claude.json` yet) is completed, each step skipping what is already there."""
    if (target / CONFIG_FILE).is_file():
        return
    target.mkdir(parents=True, exist_ok=True)
    source = user_config_dir(env)
    if source is not None:
        _link_children(source, target, _LINKED)
        plugins = source / "plugins"
        if plugins.is_dir():
            (target / "plugins").mkdir(exist_ok=True)
            names = [p.name for p in plugins.iterdir() if p.name not in _PLUGINS_WRITTEN]
            _link_children(plugins, target / "plugins", names)
    # Written last and by rename: its presence says the directory is complete.
    partial = target / f"{CONFIG_FILE}.partial"
    original = user_config_file(env)
    if original is not None and original.is_file():
        shutil.copyfile(original, partial)
    else:
        partial.write_text("{}\n", encoding="utf-8")
    os.replace(partial, target / CONFIG_FILE)


def _link_children(source: Path, target: Path, names: tuple[str, ...] | list[str]) -> None:
    for name in names:
        if (source / name).exists() and not (target / name).is_symlink() and not (target / name).exists():
            (target / name).symlink_to(source / name)
