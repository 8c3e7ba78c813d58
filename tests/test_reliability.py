"""Fault injection with real processes: timeouts, stalls, retries, shutdown, crash + resume, locking."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from conftest import HANG_GUARD, git, wait_until
from test_e2e import intervals, run_cli, write_prompt

FAST = ("--interrupt-timeout", "0.3s", "--terminate-timeout", "0.3s", "--retry-backoff", "0.05s")


def tasks_of(stdout: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {t["task_id"]: t for t in json.loads(stdout)["tasks"]}


def pids_from_log(log: Path) -> set[int]:
    return {json.loads(line)["pid"] for line in log.read_text().splitlines()}


def assert_gone(pids: set[int]) -> None:
    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:  # gone, also when it went between the look-up and the read
            return False

    def alive() -> set[int]:
        return {p for p in pids if running(p)}

    wait_until(lambda: not alive(), f"every process gone (alive: {alive()})")


def test_timeout_escalates_and_nothing_survives(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    grandchild = tmp_path / "grandchild.pid"
    write_prompt(repo, "stubborn.md", "id: stubborn\ntimeout: 1s", "# S\nfake-claude: ignore-sigterm")
    write_prompt(repo, "gc.md", "id: gc\ntimeout: 1s", f"# G\nfake-claude: grandchild grandchild={grandchild}")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "stubborn", "gc", "--json", *FAST, log=log)
    assert proc.returncode == 1, proc.stderr
    tasks = tasks_of(proc.stdout)
    assert tasks["stubborn"]["status"] == "timeout" and tasks["gc"]["status"] == "timeout"
    assert "timeout" in tasks["stubborn"]["error_message"]
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    wm_log = (run_dir / "tasks" / "stubborn" / "workflow_manager.log").read_text()
    # The stop starts with SIGINT. Whether the agent had installed its handlers by then depends on
    # how fast it started, so the rest of the escalation is pinned by test_process.py, where the
    # child says it is ready before it is stopped.
    assert "SIGINT" in wm_log, wm_log
    # Likewise the grandchild exists only if the agent got that far within its second.
    spawned = {int(grandchild.read_text())} if grandchild.exists() else set()
    assert_gone(pids_from_log(log) | spawned)
    registry = json.loads((repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())
    assert registry["processes"]["stubborn"]["status"] == "timeout"


def test_crash_then_retry_continues_the_session(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "c.md", "id: c", f"# C\nfake-claude: crash-once state={tmp_path / 'crash.state'}")
    write_prompt(repo, "o.md", "id: o", f"# O\nfake-claude: overloaded times=2 state={tmp_path / 'o.state'}")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "c", "o", "--json", "--retries", "2", *FAST, log=log)
    assert proc.returncode == 0, proc.stderr
    tasks = tasks_of(proc.stdout)
    assert tasks["c"]["status"] == "completed" and tasks["c"]["attempts"] == 2
    assert tasks["o"]["status"] == "completed" and tasks["o"]["attempts"] == 3
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    report = json.loads((run_dir / "report.json").read_text())
    history = report["task_results"]["o"]["attempts"]
    # An overloaded API (529) is transient; running out of retries is tests/test_engine.py's.
    assert [h["failure"] for h in history] == ["api_error", "api_error"]
    assert all("529" in h["error_message"] for h in history)
    # The retry resumed the same claude session instead of starting over.
    request = json.loads((run_dir / "tasks" / "o" / "request.json").read_text())
    assert "--resume" in request["agent_command"] and request["attempt"] == 3
    assert (run_dir / "tasks" / "o" / "prompt-attempt-3.md").exists()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    requeues = [e for e in events if e.get("event") == "transition" and e.get("to") == "queued"]
    assert len(requeues) == 3  # one for c, two for o
    registry = json.loads((repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())
    assert registry["processes"]["o"]["attempt"] == 3 and registry["processes"]["o"]["status"] == "completed"


def test_permanent_failures_are_not_retried(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "m.md", "id: m", "# M\nfake-claude: wrong-subtype")
    write_prompt(repo, "v.md", "id: v\nverify: 'false'", "# V\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "m", "v", "--json", "--retries", "3", *FAST, log=log)
    assert proc.returncode == 1
    tasks = tasks_of(proc.stdout)
    assert tasks["m"]["attempts"] == 1 and tasks["v"]["attempts"] == 1
    assert len(intervals(log)) == 2


def test_stall_is_killed_but_quiet_busy_agent_is_not(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "stuck.md", "id: stuck", "# S\nfake-claude: hang")
    write_prompt(repo, "busy.md", "id: busy", "# B\nfake-claude: quiet-busy seconds=2.5")
    log = tmp_path / "agents.log"
    notes = tmp_path / "notes.jsonl"
    proc = run_cli(repo, path_with, "run", "stuck", "busy", "--json", "--stall-timeout", "1s", "--retries", "0",
                   "--notify-cmd", f'cat >> "{notes}"; echo >> "{notes}"', *FAST, log=log)
    tasks = tasks_of(proc.stdout)
    assert tasks["busy"]["status"] == "completed", tasks["busy"]
    assert tasks["stuck"]["status"] == "failed" and "stalled" in tasks["stuck"]["error_message"]
    # The stall itself is news (a retry may follow): the user hears of it as it happens.
    sent = [json.loads(line) for line in notes.read_text().splitlines() if line.strip()]
    attention = [(n["task_id"], n["status"]) for n in sent if n["event"] == "task_attention"]
    assert attention == [("stuck", "stalled")], sent
    assert_gone(pids_from_log(log))


def test_run_timeout(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "slow.md", "id: slow", "# S\nfake-claude: hang")
    write_prompt(repo, "next.md", "id: next\ndepends_on: [slow]", "# N\nfake-claude: commit")
    proc = run_cli(repo, path_with, "run", "slow", "next", "--json", "--run-timeout", "1s", *FAST)
    assert proc.returncode == 1
    tasks = tasks_of(proc.stdout)
    assert tasks["slow"]["status"] == "timeout" and tasks["next"]["status"] == "cancelled"
    assert "run timeout" in json.loads(proc.stdout)["abort_reason"]


def test_launches_wait_for_free_disk(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "a", "--json", "--min-free-disk", "1000000T", "--run-timeout", "1s",
                   *FAST, log=log)
    assert proc.returncode == 1
    assert not log.exists(), "nothing may launch while the disk is short"
    assert "--min-free-disk" in proc.stderr
    assert tasks_of(proc.stdout)["a"]["status"] == "cancelled"


def test_flood_of_50_mb(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "f.md", "id: f", "# F\nfake-claude: flood mb=50")
    proc = run_cli(repo, path_with, "run", "f", "--json", *FAST, timeout=120)
    assert proc.returncode == 0, proc.stderr
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    assert (run_dir / "tasks" / "f" / "agent.jsonl").stat().st_size > 50 * 10**6


def start_orchestrator(repo: Path, path_env: str, *args: str, log: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PATH=path_env, FAKE_CLAUDE_LOG=str(log))
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "--launch-stagger", "0", *args],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout: float = HANG_GUARD) -> None:  # type: ignore[no-untyped-def]
    wait_until(predicate, timeout=timeout)


def started(log: Path) -> set[str]:
    if not log.exists():
        return set()
    return {json.loads(line)["task"] for line in log.read_text().splitlines() if '"start"' in line}


def test_sigint_stops_gracefully_and_exits_130(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    for tid in ("h1", "h2", "q"):
        write_prompt(repo, f"{tid}.md", f"id: {tid}", f"# {tid}\nfake-claude: {'hang' if tid != 'q' else 'commit'}")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "h1", "h2", "q", "--max-parallel", "2", "--json", *FAST, log=log)
    wait_for(lambda: started(log) == {"h1", "h2"})
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    tasks = tasks_of(out)
    assert {t["status"] for t in tasks.values()} == {"cancelled"}
    assert "q" not in started(log)
    assert Path(tasks["h1"]["worktree"]).is_dir(), "worktrees of stopped tasks are kept"
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    assert (run_dir / "report.md").exists()
    status = json.loads(next((repo / ".gadugi" / "monitoring").glob("*_status.json")).read_text())
    assert status["finished"] is True and status["status_breakdown"]["cancelled"] == 3
    assert_gone(pids_from_log(log))
    assert not (repo / ".gadugi" / "active_run.json").exists()


def test_second_sigint_kills_at_once(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "s.md", "id: s", "# S\nfake-claude: ignore-sigterm")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "s", "--interrupt-timeout", "30s", "--terminate-timeout", "30s", log=log)
    wait_for(lambda: started(log) == {"s"})
    proc.send_signal(signal.SIGINT)
    # The second Ctrl-C once the first has reached the task (its WorkflowManager is stopping).
    wm_log = next((repo / ".gadugi" / "runs").iterdir()) / "tasks" / "s" / "workflow_manager.log"
    wait_for(lambda: "stopping:" in wm_log.read_text())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    assert_gone(pids_from_log(log))


def test_two_orchestrators_at_once(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    release = tmp_path / "release"
    # The first run's agent works until the test lets it finish: the second run always meets it.
    write_prompt(repo, "h.md", "id: h", f"# H\nfake-claude: slow until={release}")
    log = tmp_path / "agents.log"
    first = start_orchestrator(repo, path_with, "h", log=log)
    wait_for(lambda: "h" in started(log))
    second = run_cli(repo, path_with, "run", "h")
    assert second.returncode == 1, second.stderr
    holder = json.loads((repo / ".gadugi" / "active_run.json").read_text())
    line = second.stderr.strip()
    assert line.count("\n") == 0 and holder["run_id"] in line and str(first.pid) in line
    release.write_text("")
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert len(list((repo / ".gadugi" / "runs").iterdir())) == 1, "the refused run created nothing"


def test_kill_9_then_resume_runs_every_task_exactly_once(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: slow seconds=2")
    write_prompt(repo, "b.md", "id: b", "# B\nfake-claude: slow seconds=0.3")
    write_prompt(repo, "c.md", "id: c\ndepends_on: [a]", "# C\nfake-claude: commit")
    write_prompt(repo, "d.md", "id: d\ndepends_on: [b]", "# D\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "a", "b", "c", "d", "--max-parallel", "2", log=log)
    wait_for(lambda: started(log) >= {"a", "b"})
    proc.kill()  # SIGKILL: no finally, no cleanup
    proc.communicate()
    # Corrupt the registry as a crash mid-write might have: it is rebuilt from the journal.
    (repo / ".gadugi" / "monitoring" / "process_registry.json").write_text('{"processes": {"a": ')
    resumed = run_cli(repo, path_with, "resume", "--json", log=log)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout[-3000:]
    tasks = tasks_of(resumed.stdout)
    assert {t["status"] for t in tasks.values()} == {"completed"}, tasks
    starts = [json.loads(line)["task"] for line in log.read_text().splitlines() if '"start"' in line]
    assert sorted(starts) == ["a", "b", "c", "d"], f"every task ran exactly once: {starts}"
    for before, after in (("a", "c"), ("b", "d")):
        git(repo, "merge-base", "--is-ancestor", tasks[before]["branch"], tasks[after]["branch"])
    assert not (repo / "monitoring").exists(), "nothing is written outside .gadugi/"
    assert list((repo / ".gadugi" / "monitoring").glob("process_registry.json.corrupt-*"))
    assert not (repo / ".gadugi" / "active_run.json").exists()
    assert_gone(pids_from_log(log))


def test_secrets_never_written(make_repo, path_with: str) -> None:
    repo = make_repo()
    secret = "sk-ant-test-0123456789abcdef"
    write_prompt(repo, "l.md", "id: l", "# L\nfake-claude: leak var=MY_SERVICE_TOKEN")
    env_path = path_with
    env = dict(os.environ, PATH=env_path, MY_SERVICE_TOKEN=secret)
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "run", "l", "--launch-stagger", "0",
                           "--agent-arg", f"--append-system-prompt=token {secret}"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    for path in (repo / ".gadugi").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"secret written to {path}"


@pytest.mark.parametrize("name", ["we ird name.md", "ünïcode-tâsk.md", "quo'te\".md", "semi;$(rm -rf ~).md"])
def test_awkward_prompt_names(make_repo, path_with: str, name: str) -> None:
    repo = make_repo()
    (repo / "prompts").mkdir()
    (repo / "prompts" / name).write_text("# Awkward\nfake-claude: commit\n")
    proc = run_cli(repo, path_with, "run", f"prompts/{name}", "--json")
    assert proc.returncode == 0, proc.stderr
    task = tasks_of(proc.stdout)
    (only,) = task.values()
    assert subprocess.run(["git", "check-ref-format", "--branch", only["branch"]], capture_output=True).returncode == 0
    assert len(only["commits"]) == 1
