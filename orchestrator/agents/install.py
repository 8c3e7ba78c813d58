"""Copy the Claude Code agent files that ship with the package into another repository, so
`/agent:orchestrator-agent` works there; never overwrite a file someone changed unless forced."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path

from orchestrator.gitops import git
from orchestrator.state.atomic import write_text_atomic

AGENT_FILES = ("orchestrator-agent.md", "workflow-manager.md")
TARGET_DIR = Path(".claude") / "agents"


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


def install_agents(repo: Path, *, force: bool = False) -> list[InstallResult]:
    """Copy every agent file into `.claude/agents/` at the root of the repository containing
    `repo`: identical files are left alone, files that differ are replaced only with `force`.
    Returns one result per file, in order; InputError when `repo` is not in a git repository."""
    target = git.toplevel(repo.resolve()) / TARGET_DIR
    results = []
    for name in AGENT_FILES:
        text = packaged_agent(name)
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
