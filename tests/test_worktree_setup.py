"""`.worktreeinclude` copies, setup/teardown hooks and $PORT allocation, on real worktrees."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from orchestrator.worktrees.provision import (
    PORTS_FILE,
    WorktreeSetupError,
    allocate_port,
    copy_included,
    prepare_worktree,
    release_port,
    teardown_worktree,
)

from conftest import git


@pytest.fixture
def project(make_repo, tmp_path: Path) -> tuple[Path, Path, str]:
    repo = make_repo({
        ".gitignore": ".env\n*.local.json\nbuild/\nsecret.pem\nlink-env\n.worktrees/\n",
        "config.json": "{}\n",
        "src/settings.local.json.example": "{}\n",
    })
    (repo / ".env").write_text("KEY=1\n")
    (repo / "nested").mkdir()
    (repo / "nested/app.local.json").write_text('{"x": 1}\n')
    (repo / "build").mkdir()
    (repo / "build/out.bin").write_text("binary\n")
    (repo / "secret.pem").write_text("pem\n")
    (repo / "untracked.local.txt").write_text("not ignored\n")
    outside = tmp_path / "outside-secret"
    outside.write_text("outside\n")
    (repo / "link-env").symlink_to(outside)
    (repo / ".worktreeinclude").write_text(".env\n**/*.local.json\nconfig.json\nlink-env\nuntracked.local.txt\nbuild/\n")
    base = git(repo, "rev-parse", "HEAD")
    worktree = repo / ".worktrees" / "t1"
    git(repo, "worktree", "add", "-q", "-b", "gadugi/t1", str(worktree), base)
    return repo, worktree, base


def test_copies_only_ignored_matches_never_symlinks_or_tracked(project: tuple[Path, Path, str]) -> None:
    repo, worktree, _ = project
    # Another task's worktree holding a matching ignored file is not part of the checkout.
    other = repo / ".worktrees" / "t2"
    git(repo, "worktree", "add", "-q", "--detach", str(other), "HEAD")
    (other / ".env").write_text("OTHER\n")
    (worktree / "nested").mkdir()
    (worktree / "nested/app.local.json").write_text("mine\n")
    result = copy_included(repo, worktree)
    assert result.copied == [".env", "build/out.bin"]
    assert (worktree / ".env").read_text() == "KEY=1\n"
    assert (worktree / "build/out.bin").read_text() == "binary\n"
    assert (worktree / "nested/app.local.json").read_text() == "mine\n"  # never overwritten
    assert result.skipped == {"link-env": "symlink (not followed)",
                              "nested/app.local.json": "exists in the worktree (never overwritten)"}
    assert not (worktree / "link-env").exists() and not (worktree / "secret.pem").exists()
    assert not (worktree / "untracked.local.txt").exists()  # matches, but git does not ignore it
    assert (worktree / "config.json").read_text() == "{}\n"  # tracked: the checkout's own copy


def test_symlinked_directory_in_worktree_is_not_written_through(project: tuple[Path, Path, str], tmp_path: Path) -> None:
    repo, worktree, _ = project
    target = tmp_path / "elsewhere"
    target.mkdir()
    (worktree / "build").symlink_to(target)
    result = copy_included(repo, worktree)
    assert result.skipped["build/out.bin"] == "a parent directory in the worktree is a symlink"
    assert list(target.iterdir()) == []


def test_no_include_file_copies_nothing(make_repo) -> None:
    repo = make_repo({".gitignore": ".env\n"})
    (repo / ".env").write_text("x\n")
    wt = repo.parent / "wt"
    git(repo, "worktree", "add", "-q", "--detach", str(wt), "HEAD")
    assert copy_included(repo, wt).copied == []


def test_setup_gets_env_and_port_output_in_log(project: tuple[Path, Path, str], tmp_path: Path) -> None:
    repo, worktree, base = project
    log = tmp_path / "task.log"
    setup = ('echo "wt=$GADUGI_WORKTREE br=$GADUGI_BRANCH base=$GADUGI_BASE_SHA id=$GADUGI_TASK_ID '
             'root=$GADUGI_PROJECT_ROOT port=$PORT"; pwd')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        low = busy.getsockname()[1]
        result = prepare_worktree(repo, worktree, task_id="t1", branch="gadugi/t1", base_sha=base, setup=setup,
                                  port_range=(low, low + 20), log_path=log, env=dict(os.environ))
    assert result.port is not None and low < result.port <= low + 20  # the busy port was skipped
    expected = f"wt={worktree} br=gadugi/t1 base={base} id=t1 root={repo} port={result.port}"
    assert result.setup is not None and result.setup.exit_code == 0
    assert result.setup.output_tail == f"{expected}\n{worktree}\n"
    assert expected in log.read_text() and "--- setup exited 0" in log.read_text()
    assert result.copied == [".env", "build/out.bin", "nested/app.local.json"]
    held = json.loads((repo / PORTS_FILE).read_text())["ports"]
    assert held[str(result.port)]["task_id"] == "t1"


def test_failing_setup_raises_with_output_tail(project: tuple[Path, Path, str], tmp_path: Path) -> None:
    repo, worktree, base = project
    with pytest.raises(WorktreeSetupError) as info:
        prepare_worktree(repo, worktree, task_id="t1", branch="b", base_sha=base,
                         setup="echo installing; echo 'npm ERR! missing' >&2; exit 3", port_range=None,
                         log_path=tmp_path / "log")
    assert info.value.exit_code == 3
    assert info.value.output_tail == "installing\nnpm ERR! missing\n"
    assert str(info.value) == "setup command `echo installing; echo 'npm ERR! missing' >&2; exit 3` exited 3: npm ERR! missing"


def test_ports_held_by_running_tasks_are_not_reused(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        low = probe.getsockname()[1]
    first = allocate_port(repo, (low, low + 30), task_id="a", worktree=tmp_path / "a")
    second = allocate_port(repo, (low, low + 30), task_id="b", worktree=tmp_path / "b")
    assert first != second
    # An entry left by a dead process is reclaimed.
    data = json.loads((repo / PORTS_FILE).read_text())
    data["ports"][str(first)]["pid_create_time"] = 1.0
    (repo / PORTS_FILE).write_text(json.dumps(data))
    assert allocate_port(repo, (first, first), task_id="c", worktree=tmp_path / "c") == first
    release_port(repo, "b")
    assert str(second) not in json.loads((repo / PORTS_FILE).read_text())["ports"]
    with pytest.raises(Exception, match="no free port"):
        allocate_port(repo, (first, first), task_id="d", worktree=tmp_path / "d")


def test_teardown_runs_with_port_and_failure_does_not_raise(project: tuple[Path, Path, str], tmp_path: Path) -> None:
    repo, worktree, base = project
    log = tmp_path / "log"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        low = probe.getsockname()[1]
    result = prepare_worktree(repo, worktree, task_id="t1", branch="gadugi/t1", base_sha=base, setup=None,
                              port_range=(low, low + 20), log_path=log, include_file=None)
    assert result.copied == [] and result.port is not None
    hook = teardown_worktree(repo, worktree, task_id="t1", branch="gadugi/t1", base_sha=base,
                             teardown='echo "stopping $PORT"; exit 5', log_path=log)
    assert hook is not None and hook.exit_code == 5 and hook.output_tail == f"stopping {result.port}\n"
    assert json.loads((repo / PORTS_FILE).read_text())["ports"] == {}
    assert "--- teardown exited 5" in log.read_text()


def test_setup_timeout_kills_the_group(project: tuple[Path, Path, str], tmp_path: Path) -> None:
    repo, worktree, base = project
    with pytest.raises(WorktreeSetupError, match="timed out") as info:
        prepare_worktree(repo, worktree, task_id="t1", branch="b", base_sha=base, setup="echo start; sleep 30",
                         port_range=None, log_path=tmp_path / "log", timeout=0.5, include_file=None)
    assert info.value.exit_code is None and info.value.output_tail == "start\n"
