"""Copy the Claude Code agent files that ship with the package into another repository, so
`/agent:orchestrator-agent` works there; never overwrite a file someone changed unless forced."""
from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path

from orchestrator.gitops import git
from orchestrator.state.atomic import write_text_atomic

AGENT_FILES = ("orchestrator-agent.md", "workflow-manager.md")
TARGET_DIR = Path(".claude") / "agents"
PACKAGED_LAUNCHER = "./run_orchestrator.sh"  # what the shipped files run: right only in this project
LAUNCH_SCRIPT = Path(__file__).resolve().parents[2] / "run_orchestrator.sh"  # present in a checkout


class InstallAction(str, Enum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    REPLACED = "replaced"
    REFUSED = "refused"


@dataclass(frozen=True)
class InstallResult:
    path: Path
    action: InstallAction

    @property
    def line(self) -> str:
        """One line for the user."""
        if self.action is InstallAction.REFUSED:
            return f"refused  {self.path}: it differs from the packaged version (use --force to replace it)"
        return f"{self.action.value:<9}{self.path}"


def packaged_agent(name: str) -> str:
    """The text of an agent file as shipped inside the package."""
    return resources.files("orchestrator").joinpath("data", "agents", name).read_text(encoding="utf-8")


def launcher() -> str:
    """The command that runs this very orchestrator from any repository: `orchestrator` when the
    one on PATH is this installation, else this checkout's run_orchestrator.sh, else this
    interpreter with `-m orchestrator`."""
    on_path = shutil.which("orchestrator")
    if on_path and Path(on_path).resolve().parent == Path(sys.executable).parent.resolve():
        return "orchestrator"
    if LAUNCH_SCRIPT.is_file():
        return shlex.quote(str(LAUNCH_SCRIPT))
    return f"{shlex.quote(sys.executable)} -m orchestrator"


def installed_agent(name: str, command: str) -> str:
    """An agent file as installed elsewhere: it runs `command` instead of ./run_orchestrator.sh,
    which exists only in this project."""
    return packaged_agent(name).replace(PACKAGED_LAUNCHER, command)


def install_agents(repo: Path, *, force: bool = False, command: str | None = None) -> list[InstallResult]:
    """Copy every agent file into `.claude/agents/` at the root of the repository containing
    `repo`, running `command` (default: `launcher()`): identical files are left alone, files
    that differ are replaced only with `force`. Returns one result per file, in order;
    InputError when `repo` is not in a git repository."""
    target = git.toplevel(repo.resolve()) / TARGET_DIR
    command = command or launcher()
    results = []
    for name in AGENT_FILES:
        text = installed_agent(name, command)
        path = target / name
        if not path.exists():
            action = InstallAction.CREATED
        elif path.read_text(encoding="utf-8", errors="replace") == text:
            results.append(InstallResult(path, InstallAction.UNCHANGED))
            continue
        elif force:
            action = InstallAction.REPLACED
        else:
            results.append(InstallResult(path, InstallAction.REFUSED))
            continue
        target.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
        results.append(InstallResult(path, action))
    return results
