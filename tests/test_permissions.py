"""The up-front permission policy check: the command lines Claude Code refuses at launch."""
from __future__ import annotations

import pytest
from orchestrator.agents import agent_of_command
from orchestrator.agents.claude import build_command
from orchestrator.agents.permissions import (
    DEFAULT_ALLOWED_TOOLS,
    DEFAULT_PERMISSION_MODE,
    PERMISSION_MODES,
    bypass_requested,
    check_permission_policy,
    permission_mode_of,
    sandbox_declared,
)
from orchestrator.errors import InputError

ROOT = 0
USER = 1000
NO_ENV: dict[str, str] = {}


def claude(*extra: str, permission_mode: str | None = DEFAULT_PERMISSION_MODE) -> list[str]:
    return build_command(executable="/opt/bin/claude", permission_mode=permission_mode,
                         allowed_tools=DEFAULT_ALLOWED_TOOLS, extra_args=extra)


@pytest.mark.parametrize(
    "command, flag",
    [
        (claude("--dangerously-skip-permissions"), "--dangerously-skip-permissions"),
        (claude("--allow-dangerously-skip-permissions"), "--allow-dangerously-skip-permissions"),
        (claude(permission_mode="bypassPermissions"), "--permission-mode bypassPermissions"),
        (claude("--permission-mode=bypassPermissions"), "--permission-mode bypassPermissions"),
    ],
)
def test_bypass_as_root_is_refused_with_the_alternative(command: list[str], flag: str) -> None:
    with pytest.raises(InputError) as err:
        check_permission_policy(command, euid=ROOT, env=NO_ENV)
    message = str(err.value)
    assert "\n" not in message
    assert flag in message and "root" in message
    assert "--permission-mode acceptEdits" in message and "--allowed-tools" in message and "IS_SANDBOX=1" in message


@pytest.mark.parametrize(
    "env",
    [{"IS_SANDBOX": "1"}, {"CLAUDE_CODE_BUBBLEWRAP": "1"}, {"CLAUDE_CODE_BUBBLEWRAP": "True"},
     {"CLAUDE_CODE_BUBBLEWRAP": "yes"}, {"CLAUDE_CODE_BUBBLEWRAP": "on"}],
)
def test_the_clis_own_sandbox_markers_lift_the_root_rule(env: dict[str, str]) -> None:
    assert sandbox_declared(env)
    check_permission_policy(claude("--dangerously-skip-permissions"), euid=ROOT, env=env)


@pytest.mark.parametrize(
    "env", [{"IS_SANDBOX": "true"}, {"IS_SANDBOX": "0"}, {"CLAUDE_CODE_BUBBLEWRAP": "0"}, {"CLAUDE_CODE_BUBBLEWRAP": ""}]
)
def test_values_the_cli_does_not_accept_as_a_sandbox(env: dict[str, str]) -> None:
    # Measured with Claude Code 2.1.329: IS_SANDBOX must be exactly "1".
    assert not sandbox_declared(env)
    with pytest.raises(InputError):
        check_permission_policy(claude("--dangerously-skip-permissions"), euid=ROOT, env=env)


def test_bypass_as_a_normal_user_is_allowed() -> None:
    check_permission_policy(claude("--dangerously-skip-permissions"), euid=USER, env=NO_ENV)
    check_permission_policy(claude(permission_mode="bypassPermissions"), euid=USER, env=NO_ENV)


def test_the_default_unattended_policy_passes_as_root() -> None:
    command = claude()
    assert command[command.index("--permission-mode") + 1] == "acceptEdits"
    check_permission_policy(command, euid=ROOT, env=NO_ENV)


def test_bypass_with_restricted_is_refused_even_in_a_sandbox() -> None:
    with pytest.raises(InputError, match="--restricted"):
        check_permission_policy(claude("--restricted", "--dangerously-skip-permissions"), euid=USER, env=NO_ENV)


@pytest.mark.parametrize("mode", [m for m in PERMISSION_MODES if m != "bypassPermissions"])
def test_every_other_mode_the_cli_accepts_passes_as_root(mode: str) -> None:
    check_permission_policy(claude(permission_mode=mode), euid=ROOT, env=NO_ENV)


def test_an_unknown_mode_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(InputError) as err:
        check_permission_policy(claude(permission_mode="yolo"), euid=USER, env=NO_ENV)
    message = str(err.value)
    assert "'yolo'" in message and "acceptEdits" in message and "dontAsk" in message


def test_a_mode_flag_without_value_is_refused() -> None:
    with pytest.raises(InputError, match="needs a value"):
        check_permission_policy(["claude", "-p", "--permission-mode"], euid=USER, env=NO_ENV)


def test_the_last_mode_wins_like_the_cli() -> None:
    command = claude("--permission-mode", "plan", permission_mode="bypassPermissions")
    assert permission_mode_of(command) == "plan"
    assert bypass_requested(command) is None
    check_permission_policy(command, euid=ROOT, env=NO_ENV)


@pytest.mark.parametrize("command", [
    ["codex", "exec", "--permission-mode", "bypassPermissions"],
    ["aider", "--dangerously-skip-permissions"],
    ["/opt/tool", "--dangerously-skip-permissions"],
    [],
])
def test_other_agents_are_not_judged_by_claudes_rules(command: list[str]) -> None:
    agent_of_command(command).check_command(command, euid=ROOT, env=NO_ENV)


def test_a_claude_command_line_is_judged_whatever_path_runs_it() -> None:
    # An --agent-cmd that runs claude gets the same launch checks as --agent claude.
    command = ["/usr/local/bin/claude", "-p", "--dangerously-skip-permissions"]
    with pytest.raises(InputError, match="root"):
        agent_of_command(command).check_command(command, euid=ROOT, env=NO_ENV)


def test_env_and_euid_default_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IS_SANDBOX", "1")
    monkeypatch.setattr("os.geteuid", lambda: ROOT)
    check_permission_policy(claude("--dangerously-skip-permissions"))
    monkeypatch.delenv("IS_SANDBOX")
    with pytest.raises(InputError):
        check_permission_policy(claude("--dangerously-skip-permissions"))


def test_default_allowed_tools_cover_committing_but_nothing_that_leaves_the_worktree() -> None:
    rules = " ".join(DEFAULT_ALLOWED_TOOLS)
    for verb in ("git add", "git commit", "git status", "git diff"):
        assert f"Bash({verb}:*)" in DEFAULT_ALLOWED_TOOLS
    for verb in ("push", "checkout", "switch", "reset", "rebase", "worktree", "branch", "fetch"):
        assert f"git {verb}" not in rules
