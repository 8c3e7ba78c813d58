"""Claude Code permission policy for unattended runs, and the up-front check for the command lines
the CLI would refuse at launch.

Facts from Claude Code 2.1.329 (`claude --help` and runs as root):

- `--permission-mode` accepts acceptEdits, auto, bypassPermissions, manual, dontAsk, plan (and the
  older name `default`); anything else exits 1 with "argument 'X' is invalid".
- As root, `--dangerously-skip-permissions`, `--allow-dangerously-skip-permissions` and
  `--permission-mode bypassPermissions` all exit 1 before any event: "cannot be used with
  root/sudo privileges". Only `IS_SANDBOX=1` (exactly "1") or a truthy `CLAUDE_CODE_BUBBLEWRAP`
  (1/true/yes/on) in the agent's environment lift that.
- `--restricted` refuses bypassPermissions in any form ("not supported in restricted mode").
- In print mode nothing can answer a permission prompt: acceptEdits lets Write/Edit act in the
  working directory, but every Bash command is denied unless an `--allowedTools` rule matches each
  part of it (`git add -A && git commit ...` needs both a `git add` and a `git commit` rule).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from orchestrator.errors import InputError

PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "manual", "plan")
DEFAULT_PERMISSION_MODE = "acceptEdits"

# What an unattended task needs to inspect and commit its own work on its own branch, and nothing
# that leaves the worktree or rewrites history: no push/fetch (network, other people's refs), no
# checkout/switch/reset/rebase (the task branch must stay where the orchestrator put it), no
# worktree/branch verbs (the orchestrator owns those). Project commands such as a test runner are
# the user's call: add them with --allowed-tools (e.g. 'Bash(pytest:*)'). The `:*` prefix form is
# the one every 2.x CLI understands (newer ones also take `Bash(git add *)`).
DEFAULT_ALLOWED_TOOLS = (
    "Bash(git status:*)",
    "Bash(git diff:*)",
    "Bash(git log:*)",
    "Bash(git show:*)",
    "Bash(git add:*)",
    "Bash(git rm:*)",
    "Bash(git mv:*)",
    "Bash(git commit:*)",
)

SAFE_ALTERNATIVE = (
    "use --permission-mode acceptEdits plus --allowed-tools for the commands the task needs "
    "(e.g. --allowed-tools 'Bash(git commit:*)' --allowed-tools 'Bash(pytest:*)')"
)
_SKIP_FLAGS = ("--dangerously-skip-permissions", "--allow-dangerously-skip-permissions")
_TRUTHY = ("1", "true", "yes", "on")


def permission_mode_of(agent_command: Sequence[str]) -> str | None:
    """The last `--permission-mode` value on the command line (the CLI keeps the last one)."""
    mode: str | None = None
    for index, arg in enumerate(agent_command):
        if arg == "--permission-mode":
            mode = agent_command[index + 1] if index + 1 < len(agent_command) else ""
        elif arg.startswith("--permission-mode="):
            mode = arg.partition("=")[2]
    return mode


def bypass_requested(agent_command: Sequence[str]) -> str | None:
    """The flag that asks for bypassPermissions, as the user would recognise it, else None."""
    for arg in agent_command:
        if arg in _SKIP_FLAGS:
            return arg
    if permission_mode_of(agent_command) == "bypassPermissions":
        return "--permission-mode bypassPermissions"
    return None


def sandbox_declared(env: Mapping[str, str]) -> bool:
    """True when the CLI's own root guard is lifted by the agent's environment."""
    return env.get("IS_SANDBOX") == "1" or env.get("CLAUDE_CODE_BUBBLEWRAP", "").strip().lower() in _TRUTHY


def check_permission_policy(
    agent_command: Sequence[str], *, euid: int | None = None, env: Mapping[str, str] | None = None
) -> None:
    """Raise InputError (one line) for a Claude Code command line the CLI would refuse at launch.

    `euid` defaults to this process's effective uid and `env` to os.environ; pass the environment
    the agent will actually get, since IS_SANDBOX there decides the root rule. Only Claude Code's
    command lines come here (`ClaudeAgent.check_command`).
    """
    mode = permission_mode_of(agent_command)
    if mode == "":
        raise InputError(f"--permission-mode needs a value: one of {', '.join(PERMISSION_MODES)}")
    if mode is not None and mode not in PERMISSION_MODES:
        raise InputError(
            f"invalid permission mode {mode!r} for claude: use one of {', '.join(PERMISSION_MODES)} "
            f"(unattended runs: --permission-mode {DEFAULT_PERMISSION_MODE})"
        )
    flag = bypass_requested(agent_command)
    if flag is None:
        return
    if "--restricted" in agent_command:
        raise InputError(f"claude refuses {flag} together with --restricted: {SAFE_ALTERNATIVE}")
    uid = os.geteuid() if euid is None else euid
    if uid == 0 and not sandbox_declared(os.environ if env is None else env):
        raise InputError(
            f"claude refuses {flag} when run as root: {SAFE_ALTERNATIVE}; or run as a non-root user, "
            "or set IS_SANDBOX=1 if this is a disposable sandbox"
        )
