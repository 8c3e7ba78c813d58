"""The project's own Claude Code settings (`.claude/settings.json`) in every task's worktree.

Facts checked with Claude Code 2.1.329 in print mode against the scripted API server:

- In a folder not trusted, `.claude/settings.json` permissions are ignored ("Ignoring 1
  permissions.allow entry ... this workspace has not been trusted"): a project allowing
  `Bash(python3:*)` gets "This command requires approval".
- For a linked worktree the CLI looks trust up under the main checkout's path
  (`projects[<main checkout>].hasTrustDialogAccepted` in `~/.claude.json`): once the user trusted
  the main checkout, every worktree of it gets the project's settings with nothing more to do.
- Settings given with `--settings` apply in any folder, trusted or not.

So trust is never written by this tool: a trusted main checkout already covers its worktrees, and
a user who trusts the project without having told Claude Code says so with `--trust-project`,
which passes the worktree's settings file on as flag settings.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.agents.claude_config import read_object, user_config_file

PROJECT_SETTINGS = Path(".claude") / "settings.json"


def main_checkout_trusted(project_root: Path, env: Mapping[str, str]) -> bool:
    """True when the user accepted Claude Code's trust dialog for the main checkout."""
    entry = read_object(user_config_file(env), "projects", str(project_root))
    return entry.get("hasTrustDialogAccepted") is True


def untrusted_note(project_root: Path, env: Mapping[str, str], trust_flag: bool) -> str | None:
    """What to say once when the project has Claude Code settings that no agent would get."""
    if trust_flag or not (project_root / PROJECT_SETTINGS).is_file() or main_checkout_trusted(project_root, env):
        return None
    return (f"{PROJECT_SETTINGS} is ignored by Claude Code in every worktree: {project_root} is not trusted "
            "(run `claude` there once and accept the trust dialog, or pass --trust-project)")


def project_settings(worktree: Path) -> dict[str, Any]:
    """The worktree's `.claude/settings.json` (the project's committed file), {} when absent or
    not a JSON object (the CLI reports its own file errors)."""
    return read_object(worktree / PROJECT_SETTINGS)


def merge_settings(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` laid on `base`: tables merge, lists join (an allow list keeps both sides' rules),
    other values from `over`."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            out[key] = merge_settings(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = [*old, *(v for v in value if v not in old)]
        else:
            out[key] = value
    return out
