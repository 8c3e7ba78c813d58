"""A killed orchestrator, seen from another terminal: `status`, `status --watch` and `doctor` say
it is gone and how to continue, instead of showing its tasks running forever.

Real processes throughout: the CLI in a subprocess, the fake `claude` hanging, `kill -9`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import wait_until
from test_e2e import run_cli, write_prompt


def wait_for(predicate: Callable[[], bool]) -> None:
    """Poll a condition that another process makes true."""
    wait_until(predicate)


def agent_started(log: Path, task: str) -> bool:
    if not log.exists():
        return False
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return any(r.get("task") == task and r.get("event") == "start" for r in records)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args]


class Orchestrator:
    """`orchestrator run` on one hanging task, and everything it leaves behind, killed at teardown."""

    def __init__(self, repo: Path, path_env: str, log: Path) -> None:
        self.repo, self.log = repo, log
        write_prompt(repo, "h.md", "id: h", "# H\nfake-claude: hang")
        env = dict(os.environ, PATH=path_env, FAKE_CLAUDE_LOG=str(log))
        self.stderr = log.with_name("orchestrator.stderr")
        with self.stderr.open("w") as err:  # a file, not a pipe: nobody reads it while the run goes on
            self.proc = subprocess.Popen(cli("run", "h", "--launch-stagger", "0"), cwd=repo, env=env,
                                         stdout=subprocess.DEVNULL, stderr=err)

    def wait_until_the_agent_runs(self) -> None:
        def running() -> bool:
            assert self.proc.poll() is None, f"the orchestrator exited: {self.stderr.read_text()}"
            return agent_started(self.log, "h")

        wait_for(running)

    @property
    def run_id(self) -> str:
        (run_dir,) = (self.repo / ".gadugi" / "runs").iterdir()
        return run_dir.name

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no finally, no run_finished, the lock dropped by the kernel
        self.proc.wait()

    def cleanup(self) -> None:
        """SIGKILL the orchestrator and the process groups of every WorkflowManager and agent it
        started (they outlive it by design), and wait until they are gone."""
        with suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        procs: list[psutil.Process] = []
        for wm_file in (self.repo / ".gadugi" / "runs").glob("*/tasks/*/wm.json"):
            with suppress(psutil.Error, OSError, ValueError, KeyError):
                wm = psutil.Process(int(json.loads(wm_file.read_text())["pid"]))
                procs += [wm, *wm.children(recursive=True)]
        if self.log.exists():
            for line in self.log.read_text().splitlines():
                with suppress(psutil.Error, ValueError, KeyError):
                    procs.append(psutil.Process(int(json.loads(line)["pid"])))
        for proc in procs:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
        _, alive = psutil.wait_procs(procs, timeout=10)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"processes survived the cleanup: {alive}"


@pytest.fixture
def orchestrator(make_repo: Callable[..., Path], path_with: str, tmp_path: Path) -> Iterator[Orchestrator]:
    orch = Orchestrator(make_repo(), path_with, tmp_path / "agents.log")
    try:
        orch.wait_until_the_agent_runs()
        yield orch
    finally:
        orch.cleanup()


def status(orch: Orchestrator, path_env: str, *args: str) -> subprocess.CompletedProcess[str]:
    # The timeout only keeps a regression (a watch that never ends) from hanging the suite.
    return run_cli(orch.repo, path_env, "status", *args, timeout=60)


def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_a_live_run_is_not_reported_as_orphaned(orchestrator: Orchestrator, path_with: str) -> None:
    data = as_json(status(orchestrator, path_with, "--json"))
    assert data["run_id"] == orchestrator.run_id
    assert data["orchestrator_alive"] is True and data["orphaned"] is False
    assert data["orchestrator_gone_since"] is None and data["resume_command"] is None
    (row,) = data["rows"]
    assert row["status"] == "running" and row["orchestrator_gone"] is False
    table = status(orchestrator, path_with)
    assert table.returncode == 0, table.stderr
    assert "running" in table.stdout and "gone" not in table.stdout and "orphaned" not in table.stdout
    doctor = run_cli(orchestrator.repo, path_with, "doctor")
    assert "orphaned run" not in doctor.stdout, doctor.stdout


def test_killed_orchestrator_is_reported_with_the_resume_command(orchestrator: Orchestrator, path_with: str) -> None:
    run_id = orchestrator.run_id
    orchestrator.kill()
    resume = f"orchestrator resume {run_id}"
    journal = orchestrator.repo / ".gadugi" / "runs" / run_id / "events.jsonl"
    last_record = datetime.fromisoformat(json.loads(journal.read_text().splitlines()[-1])["ts"])

    table = status(orchestrator, path_with)
    assert table.returncode == 0, table.stderr
    (notice,) = [line for line in table.stdout.splitlines() if "orchestrator gone" in line and "since" in line]
    assert run_id in notice and notice.endswith(resume) and " ago" in notice
    (row,) = [line for line in table.stdout.splitlines() if line.lstrip().startswith("h ")]
    assert "orphaned" in row and "running" not in row

    first = as_json(status(orchestrator, path_with, "--json"))
    second = as_json(status(orchestrator, path_with, "--json"))
    assert first["orchestrator_alive"] is False and first["orphaned"] is True and first["finished"] is False
    assert first["resume_command"] == resume
    assert datetime.fromisoformat(first["orchestrator_gone_since"]) >= last_record
    (row_json,) = first["rows"]
    assert row_json["status"] == "running" and row_json["orchestrator_gone"] is True
    # The clock of a task nobody watches stops where the orchestrator was last seen.
    assert row_json["elapsed_seconds"] == second["rows"][0]["elapsed_seconds"]
    assert first["progress"]["eta_seconds"] is None

    watch = status(orchestrator, path_with, "--watch")
    assert watch.returncode == 1, watch.stdout + watch.stderr
    assert resume in watch.stdout
    watch_json = status(orchestrator, path_with, "--watch", "--json")
    assert watch_json.returncode == 1 and resume in watch_json.stderr
    assert json.loads(watch_json.stdout.splitlines()[-1])["orphaned"] is True

    doctor = run_cli(orchestrator.repo, path_with, "doctor")
    assert doctor.returncode == 1
    (found,) = [line for line in doctor.stdout.splitlines() if line.startswith("found: orphaned run:")]
    assert run_id in found and found.endswith(resume)


def test_watch_ends_when_the_orchestrator_dies_mid_watch(orchestrator: Orchestrator, path_with: str) -> None:
    watcher = subprocess.Popen(cli("status", "--watch", "--json"), cwd=orchestrator.repo,
                               env=dict(os.environ, PATH=path_with), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())  # the watch has started and sees a live run
        assert first["orchestrator_alive"] is True and first["orphaned"] is False
        orchestrator.kill()
        out, err = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    assert watcher.returncode == 1, err
    assert f"orchestrator resume {orchestrator.run_id}" in err
    last = json.loads(out.splitlines()[-1])
    assert last["orphaned"] is True and last["orchestrator_alive"] is False
