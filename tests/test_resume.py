"""A run survives every way it can stop: Ctrl-C, kill -9, a lost agent session; resume finishes it
with the run's own options, each task done once. Real processes; every wait is for an event."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from conftest import git
from test_e2e import intervals, peak_concurrency, run_cli, write_prompt
from test_reliability import FAST, assert_gone, pids_from_log, start_orchestrator, started, tasks_of, wait_for


def run_dir_of(repo: Path) -> Path:
    return next((repo / ".gadugi" / "runs").iterdir())


def successes(log: Path) -> dict[str, int]:
    """Successful agent ends per task, from the fake agent's own log."""
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if rec["event"] == "end" and rec.get("exit_code") == 0:
            counts[rec["task"]] = counts.get(rec["task"], 0) + 1
    return counts


def tree_digest(root: Path) -> str:
    """Names, sizes and contents of every file under `root`: equal digests mean nothing changed."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def journal(repo: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (run_dir_of(repo) / "events.jsonl").read_text().splitlines()]


def kill_leftovers(repo: Path) -> None:
    """Safety net for a failing test: no WorkflowManager may outlive it."""
    for wm in (repo / ".gadugi" / "runs").glob("*/tasks/*/wm.json"):
        pid = json.loads(wm.read_text())["pid"]
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_ctrl_c_then_resume_continues_interrupted_tasks(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "done.md", "id: done", "# D\nfake-claude: commit")
    write_prompt(repo, "h.md", "id: h", f"# H\nfake-claude: hang-once state={tmp_path / 'h.state'}")
    write_prompt(repo, "after.md", "id: after\ndepends_on: [h]", "# A\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "done", "h", "after", "--json", *FAST, log=log)
    try:
        wait_for(lambda: "h" in started(log) and successes(log).get("done") == 1)
        wait_for(lambda: (run_dir_of(repo) / "tasks" / "done" / "result.json").exists())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "orchestrator resume" in err, "the Ctrl-C summary says how to go on"
        first = tasks_of(out)
        assert first["h"]["status"] == "cancelled" and first["after"]["status"] == "cancelled"
        assert first["h"]["error_message"].startswith("interrupted (Ctrl-C or SIGTERM to the orchestrator)")
        registry = json.loads((repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())
        assert registry["processes"]["h"]["cancelled_by"] == "interrupt"

        resumed = run_cli(repo, path_with, "resume", "--json", *FAST, log=log)
        assert resumed.returncode == 0, resumed.stderr
        tasks = tasks_of(resumed.stdout)
        assert {t["status"] for t in tasks.values()} == {"completed"}, tasks
        # Same branch, no `-2`: the interrupted task continued where it was.
        assert tasks["h"]["branch"] == first["h"]["branch"] == "gadugi/h"
        assert successes(log) == {"done": 1, "h": 1, "after": 1}, "nothing that completed ran again"
        result = json.loads(resumed.stdout)
        assert len(result["segments"]) == 2 and result["segments"][1]["resumed"]
        assert result["execution_time_seconds"] == round(sum(s["seconds"] for s in result["segments"]), 3)
        request = json.loads((run_dir_of(repo) / "tasks" / "h" / "request.json").read_text())
        assert "--resume" in request["agent_command"], "the agent's session was resumed"
        git(repo, "merge-base", "--is-ancestor", "gadugi/h", "gadugi/after")
        reopened = [e for e in journal(repo) if e["event"] == "transition" and e.get("reopened")]
        assert {e["task_id"] for e in reopened} == {"h", "after"}
    finally:
        kill_leftovers(repo)
    assert_gone(pids_from_log(log))


def test_resume_keeps_the_runs_options_and_flags_override(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    for tid in ("a", "b", "c"):
        write_prompt(repo, f"{tid}.md", f"id: {tid}", f"# {tid}\nfake-claude: slow seconds=0.2")
    write_prompt(repo, "h.md", "id: h", "# H\nfake-claude: hang")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "h", "a", "b", "c", "--max-parallel", "1", "--retries", "0",
                              *FAST, log=log)
    try:
        wait_for(lambda: "h" in started(log))
        proc.kill()
        proc.communicate()
        # Only the hanging task has started; cancel it so the rest can go, as a user would.
        agent = next(json.loads(line)["pid"] for line in log.read_text().splitlines() if '"start"' in line)
        os.kill(agent, signal.SIGKILL)
        resumed = run_cli(repo, path_with, "resume", "--json", log=log)
        assert resumed.returncode == 1, resumed.stderr  # h was killed: it failed, with no retries left
        result = json.loads(resumed.stdout)
        assert result["max_parallel"] == 1, "the run's own --max-parallel, not the default 4"
        assert "resuming" in resumed.stderr and "max_parallel" not in resumed.stderr
        spans = {t: s for t, s in intervals(log).items() if t in ("a", "b", "c")}
        assert peak_concurrency(spans) == 1
        assert tasks_of(resumed.stdout)["h"]["status"] == "failed"
    finally:
        kill_leftovers(repo)


def test_resume_flag_overrides_are_shown_and_used(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", f"# A\nfake-claude: hang-once state={tmp_path / 'a.state'}")
    write_prompt(repo, "b.md", "id: b", "# B\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "a", "b", "--max-parallel", "1", *FAST, log=log)
    try:
        wait_for(lambda: "a" in started(log))
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        resumed = run_cli(repo, path_with, "resume", "--json", "--max-parallel", "2", *FAST, log=log)
        assert resumed.returncode == 0, resumed.stderr
        assert "changed: " in resumed.stderr and "max_parallel=2" in resumed.stderr
        assert json.loads(resumed.stdout)["max_parallel"] == 2
    finally:
        kill_leftovers(repo)


def test_resume_picks_the_newest_unfinished_run_and_leaves_finished_ones_alone(
        make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", f"# A\nfake-claude: hang-once state={tmp_path / 'a.state'}")
    write_prompt(repo, "b.md", "id: b", "# B\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "a", *FAST, log=log)
    try:
        wait_for(lambda: "a" in started(log))
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        interrupted = sorted((repo / ".gadugi" / "runs").iterdir())[0].name
        later = run_cli(repo, path_with, "run", "b", "--json", *FAST, log=log)
        assert later.returncode == 0, later.stderr
        finished = json.loads(later.stdout)["run_id"]

        before = tree_digest(repo / ".gadugi")
        again = run_cli(repo, path_with, "resume", finished)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip().count("\n") == 0
        assert f"run {finished} finished at" in again.stdout and "nothing to resume" in again.stdout
        assert tree_digest(repo / ".gadugi") == before, "resuming a finished run changes no file"

        resumed = run_cli(repo, path_with, "resume", "--json", *FAST, log=log)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["run_id"] == interrupted, "the newest run with work left"
    finally:
        kill_leftovers(repo)


def test_resume_dry_run_says_what_it_would_do_and_creates_nothing(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    write_prompt(repo, "h.md", "id: h", f"# H\nfake-claude: hang-once state={tmp_path / 'h.state'}")
    write_prompt(repo, "n.md", "id: n\ndepends_on: [h]", "# N\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "a", "h", "n", *FAST, log=log)
    try:
        wait_for(lambda: "h" in started(log) and (run_dir_of(repo) / "tasks" / "a" / "result.json").exists())
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        before = tree_digest(repo / ".gadugi")
        branches = git(repo, "branch", "--list")
        preview = run_cli(repo, path_with, "resume", "--dry-run", *FAST, log=log)
        assert preview.returncode == 0, preview.stderr
        assert "re-queue h as attempt 2 (continue on gadugi/h)" in preview.stdout
        assert "re-queue n as attempt 1 (start afresh)" in preview.stdout
        assert "keep 1 completed task(s)" in preview.stdout
        assert tree_digest(repo / ".gadugi") == before and git(repo, "branch", "--list") == branches
        assert started(log) == {"a", "h"}, "nothing ran"
    finally:
        kill_leftovers(repo)


def test_lost_session_starts_afresh_on_the_same_branch(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "c.md", "id: c",
                 f"# C\nfake-claude: crash-once forget-session=1 state={tmp_path / 'c.state'}")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "c", "--json", "--retries", "1", *FAST, log=log)
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    task = tasks_of(proc.stdout)["c"]
    assert task["status"] == "completed" and task["attempts"] == 2 and task["branch"] == "gadugi/c"
    modes = [json.loads(line).get("mode") for line in log.read_text().splitlines() if '"start"' in line]
    assert modes == ["crash-once", "resume-missing", "crash-once"], modes
    task_dir = run_dir_of(repo) / "tasks" / "c"
    wm_log = (task_dir / "workflow_manager.log").read_text()
    assert "cannot be resumed" in wm_log and "starting the agent afresh" in wm_log
    fresh = (task_dir / "prompt-attempt-2-fresh.md").read_text()
    assert "Attempt 2" in fresh and "The task, exactly as written" in fresh


def test_setup_hook_is_bounded_by_the_task_timeout(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    hook_pid = tmp_path / "hook.pid"
    (repo / ".gadugi").mkdir(exist_ok=True)
    (repo / ".gadugi" / "config.toml").write_text(f"setup = \"echo $$ > {hook_pid}; exec sleep 600\"\n")
    write_prompt(repo, "s.md", "id: s", "# S\nfake-claude: commit")
    log = tmp_path / "agents.log"
    # The subprocess timeout is only a safety net: without the deadline the hook runs 600 s.
    proc = run_cli(repo, path_with, "run", "s", "--json", "--timeout", "1s", *FAST, log=log, timeout=120)
    assert proc.returncode == 1, proc.stderr
    task = tasks_of(proc.stdout)["s"]
    assert task["status"] == "timeout", task
    assert not log.exists(), "the agent never started"
    assert_gone({int(hook_pid.read_text())})


def test_cancel_reaches_a_running_verify(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    verify_pid = tmp_path / "verify.pid"
    write_prompt(repo, "v.md", f"id: v\nverify: 'echo $$ > {verify_pid}; exec sleep 600'", "# V\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "v", "--json", *FAST, log=log)
    try:
        wait_for(lambda: verify_pid.exists() and verify_pid.read_text().strip() != "")
        cancel = run_cli(repo, path_with, "cancel", "v")
        assert cancel.returncode == 0, cancel.stderr
        out, err = proc.communicate(timeout=60)
        assert tasks_of(out)["v"]["status"] == "cancelled", err
        assert_gone({int(verify_pid.read_text())})
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_leftovers(repo)


def test_double_ctrl_c_after_resume_kills_reattached_agents(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "s.md", "id: s", "# S\nfake-claude: ignore-sigterm")
    log = tmp_path / "agents.log"
    first = start_orchestrator(repo, path_with, "s", log=log)
    try:
        wait_for(lambda: "s" in started(log))
        first.kill()
        first.communicate()
        env = dict(os.environ, PATH=path_with, FAKE_CLAUDE_LOG=str(log))
        resumed = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "resume", "--plain", "--interrupt-timeout", "60s",
             "--terminate-timeout", "60s"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        run_log = run_dir_of(repo) / "orchestrator.log"
        wm_log = run_dir_of(repo) / "tasks" / "s" / "workflow_manager.log"
        wait_for(lambda: run_log.exists() and "attached s" in run_log.read_text())
        resumed.send_signal(signal.SIGINT)
        # The first Ctrl-C reached the re-attached WorkflowManager (the agent ignores it).
        wait_for(lambda: "stopping:" in wm_log.read_text())
        resumed.send_signal(signal.SIGINT)
        resumed.communicate(timeout=30)
        assert resumed.returncode == 130
        assert_gone(pids_from_log(log))
        wm = json.loads((run_dir_of(repo) / "tasks" / "s" / "wm.json").read_text())
        assert not psutil.pid_exists(wm["pid"]) or psutil.Process(wm["pid"]).status() == psutil.STATUS_ZOMBIE
    finally:
        kill_leftovers(repo)


def test_a_stop_sent_while_the_workflow_manager_starts_is_not_lost(make_repo, path_with: str, tmp_path: Path) -> None:
    """The run timeout's SIGUSR1 (or a cancel's SIGTERM) right after the spawn, while the
    WorkflowManager is still importing: delivered once its handlers are in, so the task ends
    `timeout` with a result instead of being killed by the signal's default action."""
    from orchestrator.backends.local import LocalBackend
    from orchestrator.models import TaskStatus
    from orchestrator.run.results import load_task_result
    from orchestrator.task.wire import TaskRequest

    repo = make_repo()
    prompt = tmp_path / "prompt.md"
    prompt.write_text("# T\nfake-claude: hang\n")
    request = TaskRequest(
        run_id="r", task_id="t", project_root=repo, task_dir=tmp_path / "run" / "tasks" / "t", prompt_path=prompt,
        branch="gadugi/t", worktree=repo / ".worktrees" / "t", base_sha=git(repo, "rev-parse", "HEAD"),
        agent_command=["claude", "-p", "--output-format", "stream-json", "--verbose"], timeout_seconds=600,
        interrupt_timeout=0.3, terminate_timeout=0.3,
    )
    backend = LocalBackend(dict(os.environ, PATH=path_with))
    try:
        backend.submit(request)
        backend.cancel("t", timeout=True)
        while (event := backend.events.get(timeout=60)).kind != "exit":
            pass
    finally:
        backend.close()  # its launcher, else left running in the suite's worker
    assert event.data["returncode"] == 0, "the WorkflowManager ended on its own terms"
    result = load_task_result(request.result_path, 1)
    assert result is not None and result.status == TaskStatus.TIMEOUT


def test_a_run_killed_after_its_last_task_is_finished_by_resume(make_repo, path_with: str, tmp_path: Path) -> None:
    """Killed between the last task's end and the end of the run (clean-up, merge check,
    report): every task is done, yet the run is not; resume writes what is missing."""
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    log = tmp_path / "agents.log"
    done = run_cli(repo, path_with, "run", "a", "--json", *FAST, log=log)
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_of(repo)
    # The journal as a kill -9 right after the task's completion would leave it.
    lines = (run_dir / "events.jsonl").read_text().splitlines(keepends=True)
    last_completion = max(i for i, line in enumerate(lines)
                          if json.loads(line)["event"] == "transition" and json.loads(line)["to"] == "completed")
    (run_dir / "events.jsonl").write_text("".join(lines[:last_completion + 1]))
    for name in ("report.md", "report.json"):
        (run_dir / name).unlink()
    resumed = run_cli(repo, path_with, "resume", "--json", *FAST, log=log)
    assert resumed.returncode == 0, resumed.stderr
    assert tasks_of(resumed.stdout)["a"]["status"] == "completed"
    assert (run_dir / "report.md").exists() and successes(log) == {"a": 1}
    assert journal(repo)[-1]["event"] == "run_finished"
    again = run_cli(repo, path_with, "resume")
    assert again.returncode == 0 and "nothing to resume" in again.stdout


def test_ctrl_c_during_verify_resumes_the_checks_not_the_agent(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    marker, pid_file = tmp_path / "verified-once", tmp_path / "verify.pid"
    # Hangs the first time (until the Ctrl-C stops it), passes when run again.
    verify = f"test -e {marker} || {{ touch {marker}; echo $$ > {pid_file}; exec sleep 600; }}"
    write_prompt(repo, "v.md", f"id: v\nverify: '{verify}'", "# V\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "v", "--json", *FAST, log=log)
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert tasks_of(out)["v"]["status"] == "cancelled"
        assert_gone({int(pid_file.read_text())})
        resumed = run_cli(repo, path_with, "resume", "--json", *FAST, log=log)
        assert resumed.returncode == 0, resumed.stderr
        assert tasks_of(resumed.stdout)["v"]["status"] == "completed"
        assert successes(log) == {"v": 1}, "the agent that had finished did not run again"
        wm_log = (run_dir_of(repo) / "tasks" / "v" / "workflow_manager.log").read_text()
        assert "the agent finished in an earlier attempt" in wm_log
    finally:
        kill_leftovers(repo)


def test_an_agent_stopped_after_it_declared_success_is_not_run_again(make_repo, path_with: str, tmp_path: Path) -> None:
    """Ctrl-C reaches an agent that has already sent its success result but not exited yet: the
    exit code is the stop's doing, the work is done; resume runs the checks, not the agent."""
    repo = make_repo()
    write_prompt(repo, "l.md", "id: l", "# L\nfake-claude: commit linger=1")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "l", "--json", *FAST, log=log)
    try:
        wait_for(lambda: log.exists() and '"declared"' in log.read_text())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        first = tasks_of(out)["l"]
        assert first["status"] == "cancelled"
        resumed = run_cli(repo, path_with, "resume", "--json", *FAST, log=log)
        assert resumed.returncode == 0, resumed.stderr
        assert tasks_of(resumed.stdout)["l"]["status"] == "completed"
        starts = [json.loads(line) for line in log.read_text().splitlines() if '"start"' in line]
        assert len(starts) == 1, "the agent that had declared success ran once"
        assert git(repo, "log", "-1", "--format=%s", "gadugi/l") == "l: fake change"
    finally:
        kill_leftovers(repo)
