"""The bubblewrap boundary around a non-Claude agent: it may run anything and commit in its own
worktree, and every write outside (main checkout, another task's worktree, HOME) is refused."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from orchestrator.agents.sandbox import BUBBLEWRAP, missing_tools

from cli_in_process import run_with_environment
from conftest import git

NO_BWRAP = missing_tools(BUBBLEWRAP, os.environ)
needs_bwrap = pytest.mark.skipif(bool(NO_BWRAP), reason=f"bubblewrap unavailable ({', '.join(NO_BWRAP)}): "
                                 "apt-get install bubblewrap socat")

# Each agent runs Python and commits in its worktree, then tries the three writes it must not
# make; what each write said is committed too, so the test reads it from the branch. It waits for
# the other task's worktree to exist, so that write targets a real directory.
AGENT = r"""#!/bin/sh
task="$1"; main="$2"; other="$2/.worktrees/a"; [ "$task" = a ] && other="$2/.worktrees/b"
python3 -c 'import sys; print("built by", sys.argv[1])' "$task" > built.txt
git add built.txt && git commit -q -m "$task: built with python"
until [ -e "$other/.git" ]; do sleep 0.05; done
for target in "$main/leak-$task.txt" "$other/leak-$task.txt" "$HOME/leak-$task.txt"; do
  if (echo leak > "$target") 2>>blocked.txt; then echo "WROTE $target" >> blocked.txt; fi
done
git update-ref refs/heads/main HEAD 2>> blocked.txt || true
git add blocked.txt && git commit -q -m "$task: what was blocked"
"""


def write_prompt(repo: Path, task_id: str) -> None:
    path = repo / "prompts" / f"{task_id}.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"---\nid: {task_id}\nfiles: [{task_id}.txt]\n---\n# Task {task_id}\n")


def run(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_with_environment(repo, args, env or dict(os.environ))


@needs_bwrap
def test_agent_writes_and_commits_in_its_worktree_and_nowhere_else(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    for tid in ("a", "b"):
        write_prompt(repo, tid)
    git(repo, "add", "prompts")
    git(repo, "commit", "-q", "-m", "prompts")
    main_sha = git(repo, "rev-parse", "main")
    script = tmp_path / "agent.sh"
    script.write_text(AGENT)
    script.chmod(0o755)
    home = Path(os.environ["HOME"])
    template = f"{script} {{task_id}} {repo}"
    proc = run(repo, "run", "a", "b", "--agent-cmd", template, "--max-parallel", "2", "--keep-worktrees",
               "--launch-stagger", "0", "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    tasks = {t["task_id"]: t for t in result["tasks"]}
    for tid in ("a", "b"):
        branch = tasks[tid]["branch"]
        assert git(repo, "show", f"{branch}:built.txt") == f"built by {tid}"
        assert git(repo, "log", "--format=%s", branch).splitlines()[:2] == [f"{tid}: what was blocked",
                                                                              f"{tid}: built with python"]
        blocked = git(repo, "show", f"{branch}:blocked.txt")
        assert "WROTE" not in blocked
        assert blocked.count("Read-only file system") == 4, blocked  # the main branch's ref too
    assert [*repo.rglob("leak-*"), *home.glob("leak-*")] == []
    assert git(repo, "rev-parse", "main") == main_sha
    assert git(repo, "status", "--porcelain") == ""
    registry = json.loads((repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())
    assert {registry["processes"][t]["sandbox"] for t in ("a", "b")} == {BUBBLEWRAP}
    report = (repo / ".gadugi" / "runs" / result["run_id"] / "report.md").read_text()
    assert report.count("- Sandbox: bubblewrap:") == 2


def _path_without_bwrap(tmp_path: Path) -> str:
    """A PATH with git and a shell but no bwrap."""
    bindir = tmp_path / "nobwrap-bin"
    bindir.mkdir()
    for tool in ("git", "sh"):
        found = shutil.which(tool)
        assert found is not None
        (bindir / tool).symlink_to(found)
    return str(bindir)


def test_sandbox_on_without_bubblewrap_is_one_line_and_creates_nothing(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a")
    env = dict(os.environ, PATH=_path_without_bwrap(tmp_path))
    proc = run(repo, "run", "a", "--agent-cmd", "sh -c true", "--sandbox", "on", env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: --sandbox on: bwrap not available; install them (apt-get install bubblewrap socat) "
        "or use --sandbox auto|off"
    ]
    assert not (repo / ".gadugi").exists() and not (repo / ".worktrees").exists()
    assert git(repo, "branch", "--list", "gadugi/*") == ""


def test_auto_without_bubblewrap_says_once_which_policy_applies(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    for tid in ("a", "b"):
        write_prompt(repo, tid)
    env = dict(os.environ, PATH=_path_without_bwrap(tmp_path))
    proc = run(repo, "plan", "a", "b", "--agent-cmd", "sh -c true", env=env)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "no sandbox" in line]
    assert notes == ["warning: no sandbox (bwrap not available): agents run with the permission policy only, "
                     "which keeps them from running project commands; for the sandbox: apt-get install bubblewrap socat"]
    assert proc.stdout.count("sandbox:  no sandbox: permission mode and allowed tools only") == 2


@needs_bwrap
def test_plan_shows_the_policy_each_task_gets(make_repo) -> None:
    repo = make_repo()
    write_prompt(repo, "a")
    shown = run(repo, "plan", "a", "--agent-cmd", "sh -c true")
    assert "sandbox:  bubblewrap: any command, writes only in the worktree" in shown.stdout
    off = run(repo, "plan", "a", "--agent-cmd", "sh -c true", "--sandbox", "off", "--json")
    assert json.loads(off.stdout)["tasks"][0]["sandbox"] == "none"
