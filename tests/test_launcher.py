"""The pre-imported launcher that forks WorkflowManagers: a forked one is indistinguishable from a
spawned one to the rest of the system (own session, attempt lock, exit status), and losing the
launcher loses no task. Real processes; every wait is for an event."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from orchestrator.backends.base import BackendEvent
from orchestrator.backends.launcher import Launcher
from orchestrator.backends.local import LocalBackend
from orchestrator.task import attempt_lock
from orchestrator.task.wire import TaskRequest

from conftest import git, wait_until

# These tests are about a run's own launcher: none borrows the one the suite's worker shares.
pytestmark = pytest.mark.own_launcher

LAUNCHER_MODULE = "orchestrator.task.forkserver"
PACKAGE_PARENT = Path(__file__).resolve().parents[1]


def launchers_of(pid: int, repo: Path) -> list[psutil.Process]:
    """`pid`'s launcher children serving `repo` (the suite's worker may hold others' launchers)."""
    return [child for child in psutil.Process(pid).children()
            if LAUNCHER_MODULE in (line := " ".join(child.cmdline())) and f"--chdir {repo}" in line]


def the_launcher_of(pid: int, repo: Path) -> psutil.Process:
    """`pid`'s one launcher for `repo`, once it is the only one: under load its command line can
    read empty for a moment after the start."""
    wait_until(lambda: len(launchers_of(pid, repo)) == 1, "exactly one launcher for the repository")
    (launcher,) = launchers_of(pid, repo)
    return launcher


def request_for(repo: Path, tmp_path: Path, task_id: str, directive: str) -> TaskRequest:
    prompt = tmp_path / f"{task_id}.md"
    prompt.write_text(f"# {task_id}\nfake-claude: {directive}\n")
    return TaskRequest(
        run_id="r", task_id=task_id, project_root=repo, task_dir=tmp_path / "run" / "tasks" / task_id,
        prompt_path=prompt, branch=f"gadugi/{task_id}", worktree=repo / ".worktrees" / task_id,
        base_sha=git(repo, "rev-parse", "HEAD"),
        agent_command=["claude", "-p", "--output-format", "stream-json", "--verbose"], timeout_seconds=600,
        interrupt_timeout=0.3, terminate_timeout=0.3,
    )


def exit_of(backend: LocalBackend, task_id: str) -> BackendEvent:
    while (event := backend.events.get(timeout=180)).kind != "exit" or event.task_id != task_id:
        pass
    return event


def test_a_forked_workflow_manager_is_a_task_like_any_other(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    go = tmp_path / "go"
    request = request_for(repo, tmp_path, "t", f"slow until={go}")
    backend = LocalBackend(dict(os.environ, PATH=path_with), project_root=repo)
    try:
        launcher = the_launcher_of(os.getpid(), repo)
        wait_until(lambda: Path(launcher.cwd()) == repo, "the launcher among the project's processes")
        pid, create_time = backend.submit(request)
        assert pid is not None and create_time
        wm = psutil.Process(pid)
        assert wm.ppid() == launcher.pid, "forked by the launcher, not spawned by us"
        assert os.getsid(pid) == pid, "in a session of its own, so it outlives the orchestrator"
        assert attempt_lock.is_held(attempt_lock.lock_path(request.task_dir, 1))
        go.touch()
        event = exit_of(backend, "t")
        assert event.data["returncode"] == 0
        assert not attempt_lock.is_held(attempt_lock.lock_path(request.task_dir, 1))
        assert request.result_path.exists()
    finally:
        backend.close()
    assert not launchers_of(os.getpid(), repo), "closing the backend ends the launcher"


def test_exit_statuses_are_reported_as_a_spawn_would_give_them(tmp_path: Path) -> None:
    launcher = Launcher.start(sys.executable, os.environ)
    assert launcher is not None
    stderr = (tmp_path / "stderr.log").open("wb")
    lock_fd = attempt_lock.take(tmp_path / "wm-1.lock")
    read_fd, write_fd = os.pipe()
    try:
        spawn = {"env": os.environ, "cwd": PACKAGE_PARENT, "stdout_fd": write_fd, "stderr_fd": stderr.fileno(),
                 "lock_fd": lock_fd}
        missing = launcher.spawn(["--request", str(tmp_path / "no-such-request.json")], **spawn)
        bad_usage = launcher.spawn(["--no-such-flag"], **spawn)
        assert missing is not None and bad_usage is not None
        assert launcher.wait_exit(missing) == 1, "an exception ends it with 1, as an interpreter would"
        assert launcher.wait_exit(bad_usage) == 2, "sys.exit(2) of argparse keeps its code"
    finally:
        for fd in (read_fd, write_fd, lock_fd):
            os.close(fd)
        stderr.close()
        launcher.close()
    log = (tmp_path / "stderr.log").read_text()
    assert "FileNotFoundError" in log and "usage:" in log, "its stderr is the task's stderr log"


def test_losing_the_launcher_loses_no_task(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    go = tmp_path / "go"
    backend = LocalBackend(dict(os.environ, PATH=path_with), project_root=repo)
    try:
        running = request_for(repo, tmp_path, "running", f"slow until={go}")
        pid, _ = backend.submit(running)
        assert pid is not None
        launcher = the_launcher_of(os.getpid(), repo)
        launcher.kill()
        launcher.wait()
        go.touch()
        event = exit_of(backend, "running")
        assert event.data["returncode"] is None, "no status without the launcher, but the end is seen"
        assert running.result_path.exists(), "the task ran to its end"
        later = request_for(repo, tmp_path, "later", "commit")
        later_pid, _ = backend.submit(later)
        assert later_pid is not None and psutil.Process(later_pid).ppid() == os.getpid(), "spawned the plain way"
        assert exit_of(backend, "later").data["returncode"] == 0
    finally:
        backend.close()


def test_the_launcher_ends_with_its_orchestrator(tmp_path: Path) -> None:
    """kill -9 of the orchestrator closes the launcher's socket: it exits instead of lingering."""
    owner = subprocess.Popen(
        [sys.executable, "-c", "import os, sys\n"
         "from orchestrator.backends.launcher import Launcher\n"
         "launcher = Launcher.start(sys.executable, os.environ)\n"
         "print(launcher.pid, flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert owner.stdout is not None
        launcher = psutil.Process(int(owner.stdout.readline()))
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        wait_until(lambda: not launcher.is_running() or launcher.status() == psutil.STATUS_ZOMBIE,
                   "the launcher exited")
    finally:
        owner.kill()
        owner.wait()


def test_the_cli_run_starts_one_launcher_and_every_task_forks_from_it(
    make_repo, path_with: str, tmp_path: Path
) -> None:
    """`orchestrator run` starts the launcher itself (before its imports and the plan); the
    coordinator uses that one rather than starting a second, and it ends with the run."""
    repo = make_repo()
    go = tmp_path / "go"
    (repo / "prompts").mkdir()
    for tid in ("a", "b"):
        (repo / "prompts" / f"{tid}.md").write_text(f"---\nid: {tid}\n---\n# {tid}\nfake-claude: slow until={go}\n")
    cli = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "a", "b", "--json"], cwd=repo,
                           env=dict(os.environ, PATH=path_with), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        registry = repo / ".gadugi" / "monitoring" / "process_registry.json"

        def wm_pids() -> list[int]:
            try:
                processes = json.loads(registry.read_text())["processes"]
            except (OSError, ValueError, KeyError):
                return []
            return [p["wm_pid"] for p in processes.values() if p.get("wm_pid")]

        wait_until(lambda: len(wm_pids()) == 2, "both WorkflowManagers started")
        launcher = the_launcher_of(cli.pid, repo)
        assert [c.pid for c in psutil.Process(cli.pid).children() if c.pid != launcher.pid
                and LAUNCHER_MODULE in " ".join(c.cmdline())] == [], "a second launcher"
        assert {psutil.Process(pid).ppid() for pid in wm_pids()} == {launcher.pid}
        go.touch()
        out, err = cli.communicate(timeout=180)
        assert cli.returncode == 0, err
        assert json.loads(out)["successful_tasks"] == 2
        wait_until(lambda: not launcher.is_running() or launcher.status() == psutil.STATUS_ZOMBIE,
                   "the launcher ended with the run")
    finally:
        if cli.poll() is None:
            go.touch()
            cli.kill()
            cli.communicate()
