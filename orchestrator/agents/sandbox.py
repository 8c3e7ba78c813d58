"""The boundary an agent runs inside: which one a task gets, and the command line that enforces it.

Two kinds, one promise: the agent may run any command in its worktree (tests, builds, installs
into the worktree), and the operating system keeps every write inside that worktree plus what
committing on its own branch touches. Claude Code gets it through its own sandbox settings (its
Bash tool then runs commands unasked); every other agent runs inside bubblewrap built here.

Facts checked with Claude Code 2.1.329 against the scripted API server, as root, in a fresh HOME:

- With `--settings '{"sandbox": {"enabled": true, "autoAllowBashIfSandboxed": true}}'` a print-mode
  agent under acceptEdits runs `python3 -c ... > out.txt && git add ... && git commit ...`
  unasked; without it the same command "requires approval". Settings given by flag apply in a
  folder the CLI was never told to trust.
- Writes outside the working directory fail with "Read-only file system" (main checkout, another
  worktree, $HOME). For a linked worktree the CLI itself leaves the repository's git directory
  writable, except its hooks and the other worktrees' admin directories, so committing works
  inside the sandbox, but so does `git update-ref refs/heads/main`; we deny the parts of it that
  reach beyond the task (`_git_denied`).
- `filesystem.denyWrite` takes effect inside that allowance; `allowUnsandboxedCommands: false`
  stops the CLI from retrying a refused command outside the sandbox.
- Inside its sandbox the CLI masks absent dotfiles of the working directory (`.bashrc`, `.mcp.json`,
  `.claude/settings.json`, ... : `_CLAUDE_MASKED`) with character devices, and `git add -A` then
  fails ("can only add regular files"). The agent's git is told to ignore them (`sandbox_env`);
  nothing of them is left on disk after the agent exits but an empty `.claude/`.
- Concurrent sessions share `$TMPDIR/claude-<uid>/`, and one session's sandbox setup fails now and
  then on another's temporary settings file vanishing under it ("bwrap: Can't get type of source
  /tmp/claude-0/claude-settings-....json"). Each agent gets its own short TMPDIR (the CLI honours
  it; a long one would break its proxy's socket paths), removed when the agent ends.
- Concurrent sessions in worktrees of one repository still race inside the CLI, on the shared git
  directory: for a protected path there that does not exist (`.git/config.lock`), each command's
  sandbox binds /dev/null over it, so bubblewrap creates the mount point in the real directory,
  and it is removed again afterwards; a session that listed it in between fails to start its
  command ("bwrap: Can't get type of source .../.git/config.lock"). Nothing of the command ran,
  and the model sees the error and can run it again. We cannot create the path beforehand: git
  takes an existing `config.lock` for another writer's lock. Seen once in ~30 runs of the
  two-agent sandbox test, whose agents run their commands at the same moment by design.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.agents.claude_project import merge_settings, project_settings
from orchestrator.cmd import CommandError, run_cmd, which
from orchestrator.errors import InputError
from orchestrator.gitops import git

SANDBOX_MODES = ("auto", "on", "off")
BUBBLEWRAP = "bubblewrap"  # our own boundary, for any agent
CLAUDE_SANDBOX = "claude-sandbox"  # Claude Code's sandbox settings (bubblewrap + socat underneath)
NO_SANDBOX = "none"
INSTALL_HINT = "apt-get install bubblewrap socat"
PRIVATE_TMP = "/tmp"

# Parts of the shared git directory an agent must never write: git runs hooks and reads config
# outside any sandbox (the orchestrator commits leftovers in the worktree), and HEAD and index are
# the main checkout's.
_GIT_DENIED = ("config", "hooks", "info", "HEAD", "index")
_CLAUDE_MASKED = (
    ".bash_profile", ".bashrc", ".gitconfig", ".gitmodules", ".idea", ".mcp.json", ".profile", ".ripgreprc",
    ".vscode", ".zprofile", ".zshrc", ".claude/settings.json", ".claude/settings.local.json", ".claude/hooks",
    ".claude/workflows", ".claude/routines", ".claude/loop.md", ".claude/commands", ".claude/skills",
    ".claude/agents", ".claude/output-styles", ".claude/launch.json", ".claude/scheduled_tasks.json",
    ".claude/.cc-writes",
)
EXCLUDE_FILE = "gadugi-sandbox-exclude"  # in the worktree's own admin dir


def _tools_for(policy: str) -> tuple[str, ...]:
    # Claude Code's own sandbox also needs socat to proxy the network; ours leaves it as it is.
    return ("bwrap", "socat") if policy == CLAUDE_SANDBOX else ("bwrap",)


def missing_tools(policy: str, env: Mapping[str, str]) -> list[str]:
    """What the platform lacks for `policy`: programs not on PATH, or a bwrap that cannot start
    (no user namespaces in this container, for instance)."""
    path = env.get("PATH", "")
    missing = [tool for tool in _tools_for(policy) if which(tool, path=path) is None]
    if missing:
        return missing
    bwrap = which("bwrap", path=path) or "bwrap"
    try:
        run_cmd([bwrap, *_BASE_ARGS, "--", "true"], env=env, timeout=30)
    except CommandError as exc:
        return [f"a working bwrap ({exc})"]
    return []


def choose_policy(mode: str, agent: str, env: Mapping[str, str]) -> tuple[str, str | None]:
    """The policy for tasks run by `agent` ("generic" for --agent-cmd), and a note to say once
    when `auto` found no sandbox. `on` without one is an InputError, before anything is created."""
    if mode not in SANDBOX_MODES:
        raise InputError(f"--sandbox: {mode!r} is not one of {', '.join(SANDBOX_MODES)}")
    if mode == "off":
        return NO_SANDBOX, None
    wanted = CLAUDE_SANDBOX if agent == "claude" else BUBBLEWRAP
    missing = missing_tools(wanted, env)
    if not missing:
        return wanted, None
    if mode == "on":
        raise InputError(f"--sandbox on: {' and '.join(missing)} not available; install them ({INSTALL_HINT}) "
                         "or use --sandbox auto|off")
    return NO_SANDBOX, (
        f"no sandbox ({' and '.join(missing)} not available): agents run with the permission policy "
        f"only, which keeps them from running project commands; for the sandbox: {INSTALL_HINT}"
    )


def describe_policy(policy: str) -> str:
    """One line for the plan and the report."""
    if policy == CLAUDE_SANDBOX:
        return "Claude Code sandbox: any command, writes only in the worktree and its branch's git data"
    if policy == BUBBLEWRAP:
        return "bubblewrap: any command, writes only in the worktree and its branch's git data, private /tmp"
    return "no sandbox: permission mode and allowed tools only"


def writable_paths(worktree: Path, branch: str, extra: Sequence[str], home: str | None,
                   home_state: Sequence[str]) -> list[Path]:
    """What the agent may write besides nothing: its worktree, the git data committing on its own
    branch touches (its worktree's admin dir, the object store, the directory of its branch's ref
    and reflog), its CLI's state under HOME and the user's extra paths. Only existing paths."""
    common = git.git_common_dir(worktree)
    ref_dir = str(Path(branch).parent) if "/" in branch else ""
    paths = [worktree, git.git_dir(worktree), common / "objects",
             common / "refs" / "heads" / ref_dir, common / "logs" / "refs" / "heads" / ref_dir]
    if home:
        paths += [Path(home) / name for name in home_state]
    paths += [Path(p).expanduser() for p in extra]
    seen: list[Path] = []
    for path in paths:
        resolved = path.resolve()
        if resolved.exists() and resolved not in seen:
            seen.append(resolved)
    return seen


# The whole filesystem read-only, fresh /dev and /proc (a pid namespace, so unprivileged bwrap
# may mount it), a private /tmp. No --new-session and no --die-with-parent: the agent stays in
# the process group the orchestrator stops, and outlives a dying task process as before.
_BASE_ARGS = ("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
              "--tmpfs", PRIVATE_TMP)


def _under_tmp(path: Path) -> bool:
    return path.is_relative_to(PRIVATE_TMP) and path != Path(PRIVATE_TMP)


def bwrap_command(argv: Sequence[str], *, bwrap: str, cwd: Path, writable: Sequence[Path],
                  visible: Sequence[Path]) -> list[str]:
    """argv run inside bubblewrap: `writable` bound read-write, everything else read-only.
    `visible` are paths the private /tmp would hide (a repository or HOME under /tmp): bound back
    read-only, so the agent sees them but cannot change them."""
    args = [bwrap, *_BASE_ARGS]
    candidates = [*visible, *(Path(a) for a in argv if os.path.isabs(a))]
    shown = sorted({p.resolve() for p in candidates if p.exists() and _under_tmp(p.resolve())}, key=lambda p: len(p.parts))
    for path in shown:
        args += ["--ro-bind", str(path), str(path)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    return [*args, "--chdir", str(cwd), "--", *argv]


def _git_denied(common: Path, branch: str) -> list[Path]:
    """The parts of the shared git directory the CLI would leave writable that the task must not
    write: the fixed ones above, and every other branch's ref outside its branch's own directory
    (the main checkout's branch among them), tags, remotes and packed refs. Existing paths only."""
    own = branch.split("/", 1)[0]
    heads = common / "refs" / "heads"
    others = [p for p in heads.iterdir() if p.name not in (own, f"{own}.lock")] if heads.is_dir() else []
    fixed = [common / name for name in (*_GIT_DENIED, "packed-refs", "refs/tags", "refs/remotes")]
    return [p for p in [*fixed, *sorted(others)] if p.exists()]


def claude_sandbox_settings(worktree: Path, branch: str, extra: Sequence[str],
                            allowed_domains: Sequence[str]) -> dict[str, Any]:
    """Claude Code settings turning on its sandbox for this worktree: unasked commands, never
    unconfined, the shared git parts outside the task's reach denied."""
    common = git.git_common_dir(worktree)
    sandbox: dict[str, object] = {
        "enabled": True,
        "autoAllowBashIfSandboxed": True,
        "failIfUnavailable": True,
        "allowUnsandboxedCommands": False,
        "filesystem": {
            "allowWrite": [str(Path(p).expanduser()) for p in extra],
            "denyWrite": [str(p) for p in _git_denied(common, branch)],
        },
    }
    if allowed_domains:
        sandbox["network"] = {"allowedDomains": list(allowed_domains)}
    return {"sandbox": sandbox}


def sandbox_env(worktree: Path, env: Mapping[str, str], temp_dir: Path) -> dict[str, str]:
    """Variables for an agent in Claude Code's sandbox: its own TMPDIR, and git told to ignore the
    masked dotfiles through one more `GIT_CONFIG_*` entry (the user's own entries stay), so
    `git add -A` works."""
    exclude = git.git_dir(worktree) / EXCLUDE_FILE
    exclude.write_text("".join(f"/{name}\n" for name in _CLAUDE_MASKED), encoding="utf-8")
    index = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    return {"TMPDIR": str(temp_dir), "GIT_CONFIG_COUNT": str(index + 1),
            f"GIT_CONFIG_KEY_{index}": "core.excludesFile", f"GIT_CONFIG_VALUE_{index}": str(exclude)}


@dataclass(frozen=True)
class Confined:
    """How to start the agent inside its boundary: the argv, variables to add to its env, and a
    private temp dir to remove once it has ended."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    temp_dir: Path | None = None

    def cleanup(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def confine(argv: Sequence[str], policy: str, *, agent: str, worktree: Path, branch: str, project_root: Path,
            env: Mapping[str, str], extra_writable: Sequence[str] = (), allowed_domains: Sequence[str] = (),
            home_state: Sequence[str] = (), trust_project: bool = False) -> Confined:
    """The agent's command under `policy`, for a worktree that exists (its git paths are read
    now). Claude Code gets its sandbox, and with `trust_project` the project's own settings, as
    one `--settings` value."""
    if agent == "claude":
        settings = project_settings(worktree) if trust_project else {}
        extra_env: dict[str, str] = {}
        temp_dir = None
        if policy == CLAUDE_SANDBOX:
            settings = merge_settings(settings, claude_sandbox_settings(worktree, branch, extra_writable,
                                                                        allowed_domains))
            temp_dir = Path(tempfile.mkdtemp(prefix="gadugi-"))
            extra_env = sandbox_env(worktree, env, temp_dir)
        return Confined([*argv, "--settings", json.dumps(settings)] if settings else list(argv), extra_env, temp_dir)
    if policy == BUBBLEWRAP:
        home = env.get("HOME")
        bwrap = which("bwrap", path=env.get("PATH", "")) or "bwrap"
        visible = [project_root, *([Path(home)] if home else [])]
        return Confined(bwrap_command(argv, bwrap=bwrap, cwd=worktree, visible=visible,
                                      writable=writable_paths(worktree, branch, extra_writable, home, home_state)))
    return Confined(list(argv))
