"""`orchestrator status`: rows from the registry files another process wrote, for the latest run,
an older finished run and an unfinished one rebuilt from its journal; and whether the run's
orchestrator is still there (tests/test_dead_run.py kills a real one)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import psutil
import pytest
from click.testing import CliRunner
from orchestrator.cli.commands import doctor as doctor_cmd
from orchestrator.cli.commands import status as status_cmd
from orchestrator.errors import InputError, StateError
from orchestrator.models import TaskStatus
from orchestrator.observe.status import TaskRow, estimate_eta, load_run, run_liveness
from orchestrator.state.journal import Journal, read_journal
from orchestrator.state.registry import ProcessRegistry
from orchestrator.state.registry_models import RetryWait, replay
from orchestrator.state.runlock import RunLock

from test_dead_run import wait_for
from test_e2e import run_cli, write_prompt


def registry_with(monitoring: Path, run_id: str, tasks: dict[str, str], runs: Path | None = None) -> ProcessRegistry:
    """A real registry whose tasks end in the given statuses (queued ones never start)."""
    journal = None
    if runs is not None:
        journal = Journal(runs / run_id / "events.jsonl", run_id=run_id)
        journal.path.parent.mkdir(parents=True, exist_ok=True)
        journal.append("run_started", max_parallel=2)
    reg = ProcessRegistry(monitoring, run_id, journal=journal, fsync=False)
    for tid in tasks:
        reg.register(tid, task_name=tid.upper(), command=["claude", "-p"], working_directory="/w",
                     prompt_file=None, branch=f"gadugi/{tid}", base_sha="0" * 40, worktree="/w", priority=5)
    for tid, final in tasks.items():
        if final == "queued":
            continue
        reg.transition(tid, TaskStatus.RUNNING, phase="agent")
        reg.heartbeat(tid, last_event="tool_use: Edit", turns=3, cost_usd=0.25)
        if final != "running":
            reg.transition(tid, final, error_message="boom" if final == "failed" else None)
    return reg


def test_latest_run_rows_and_progress(tmp_path: Path) -> None:
    mon = tmp_path / "monitoring"
    registry_with(mon, "run-1", {"a": "completed", "b": "running", "c": "queued", "d": "failed"}, runs=tmp_path / "runs")
    view = load_run(mon, "run-1", runs_dir=tmp_path / "runs")
    assert view.run_id == "run-1" and view.finished is False and view.slots == 2
    assert [r.task_id for r in view.rows] == ["b", "c", "a", "d"]  # running, queued, then the rest in order
    rows = {r.task_id: r for r in view.rows}
    assert rows["b"].last_event == "tool_use: Edit" and rows["b"].turns == 3 and rows["b"].cost_usd == 0.25
    assert rows["d"].error_message == "boom" and rows["c"].elapsed_seconds is None
    p = view.progress
    assert (p.total, p.done, p.running, p.queued, p.failed) == (4, 2, 1, 1, 1)
    assert set(p.counts) == {s.value for s in TaskStatus}
    assert p.cost_usd == pytest.approx(0.75)
    assert json.loads(json.dumps(view.to_json()))["rows"][0]["status"] == "running"


def test_finished_run_and_older_runs(tmp_path: Path) -> None:
    mon, runs = tmp_path / "monitoring", tmp_path / "runs"
    old = registry_with(mon, "run-old", {"a": "completed"}, runs=runs)
    old.finalize()
    assert load_run(mon, "run-old").finished is True
    registry_with(mon, "run-unfinished", {"x": "running"}, runs=runs)  # never finalized
    registry_with(mon, "run-new", {"n": "completed"}, runs=runs)
    assert load_run(mon, "run-new").source.endswith("process_registry.json")
    older = load_run(mon, "run-old", runs_dir=runs)
    assert older.finished and [r.task_id for r in older.rows] == ["a"] and older.source.endswith("run-old_final.json")
    rebuilt = load_run(mon, "run-unfinished", runs_dir=runs)
    assert rebuilt.source.endswith("events.jsonl") and rebuilt.rows[0].status is TaskStatus.RUNNING


def test_no_run_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no run found"):
        load_run(tmp_path / "missing", "run-1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no run 'run-1'"):
        load_run(tmp_path / "empty", "run-1")
    registry_with(tmp_path / "m", "run-1", {"a": "queued"})
    with pytest.raises(InputError, match="no run 'nope'"):
        load_run(tmp_path / "m", "nope")


def _row(status: TaskStatus, elapsed: float | None) -> TaskRow:
    return TaskRow("t", status, "agent", 1, elapsed, None, 0, None)


def test_eta_estimate() -> None:
    done = [_row(TaskStatus.COMPLETED, 60.0), _row(TaskStatus.FAILED, 120.0)]  # mean 90 s
    assert estimate_eta(done + [_row(TaskStatus.QUEUED, None)], slots=4) == 90.0
    assert estimate_eta(done, slots=2) == 0.0
    assert estimate_eta([_row(TaskStatus.RUNNING, 10.0)], slots=2) is None  # nothing finished yet
    # 4 queued x 90 s over 2 slots = 180 s; a running task 30 s in has 60 s left: (360 + 60) / 2.
    work = done + [_row(TaskStatus.QUEUED, None)] * 4 + [_row(TaskStatus.RUNNING, 30.0)]
    assert estimate_eta(work, slots=2) == 210.0
    # A task running longer than the mean could end any time: no number rather than "~0s".
    assert estimate_eta(done + [_row(TaskStatus.RUNNING, 95.0)], slots=2) is None
    # A cancelled task that never ran says nothing about task durations.
    assert estimate_eta([_row(TaskStatus.CANCELLED, 0.0), _row(TaskStatus.QUEUED, None)], slots=1) is None


def cli() -> click.Group:
    group = click.Group()
    group.add_command(status_cmd.command)
    group.add_command(doctor_cmd.command)
    return group


def test_status_command(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    mon = repo / ".gadugi" / "monitoring"
    registry_with(mon, "run-1", {"alpha": "completed", "beta": "running"}, runs=repo / ".gadugi" / "runs")
    sub = repo / "sub"
    sub.mkdir()
    runner = CliRunner()
    out = runner.invoke(cli(), ["status", "--project-root", str(sub)])
    assert out.exit_code == 0, out.output
    assert "alpha" in out.output and "beta" in out.output and "1/2 finished (1 completed)" in out.output
    data = json.loads(runner.invoke(cli(), ["status", "--json", "--project-root", str(repo)]).output)
    assert data["run_id"] == "run-1" and {r["task_id"] for r in data["rows"]} == {"alpha", "beta"}
    unknown = runner.invoke(cli(), ["status", "run-2", "--project-root", str(repo)])
    assert unknown.exit_code == 1 and "no run 'run-2'" in unknown.output and "did you mean run-1?" in unknown.output
    custom = runner.invoke(cli(), ["status", "--project-root", str(repo), "--monitoring-dir", str(tmp_path / "none")])
    assert custom.exit_code == 1 and custom.output.strip().count("\n") == 0 and "no run found" in custom.output


def test_status_watch_until_finished(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo()
    reg = registry_with(repo / ".gadugi" / "monitoring", "run-1", {"a": "running", "b": "queued"})
    (repo / ".gadugi" / "runs" / "run-1").mkdir(parents=True)  # no journal: no orchestrator to miss
    steps = iter([lambda: reg.transition("a", TaskStatus.COMPLETED),
                  lambda: reg.transition("b", TaskStatus.CANCELLED, reason="stop"),
                  reg.finalize])
    monkeypatch.setattr(status_cmd, "_sleep", lambda seconds: next(steps)())
    out = CliRunner().invoke(cli(), ["status", "--watch", "--project-root", str(repo)])
    assert out.exit_code == 0, out.output
    assert "0/2 finished" in out.output and "finished" in out.output and "cancelled" in out.output
    lines = CliRunner().invoke(cli(), ["status", "--watch", "--json", "--project-root", str(repo)]).output
    assert json.loads(lines.splitlines()[-1])["finished"] is True


def test_status_outside_a_repo(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli(), ["status", "--project-root", str(tmp_path)])
    assert out.exit_code == 1 and "not a git repository" in out.output


# -- is the run's orchestrator still there? --------------------------------------------------------


def gadugi_run(root: Path, tasks: dict[str, str], run_id: str = "run-1") -> tuple[Path, Path, Path]:
    """A run whose journal is unfinished (a `run_started`, no `run_finished`): (gadugi, monitoring, runs)."""
    gadugi = root / ".gadugi"
    registry_with(gadugi / "monitoring", run_id, tasks, runs=gadugi / "runs")
    return gadugi, gadugi / "monitoring", gadugi / "runs"


def test_unfinished_run_without_its_orchestrator_is_orphaned(tmp_path: Path) -> None:
    _, mon, runs = gadugi_run(tmp_path, {"a": "completed", "b": "running", "c": "queued"})
    journal_last = read_journal(runs / "run-1" / "events.jsonl")[-1]["ts"]
    registry_stamp = json.loads((mon / "process_registry.json").read_text())["timestamp"]
    view = load_run(mon, "run-1", runs_dir=runs)
    assert view.orphaned is True and view.orchestrator_alive is False and view.finished is False
    assert view.resume_command == "orchestrator resume run-1"
    # The latest sign of life: the journal's last record, or a later registry write.
    assert view.orchestrator_gone_since == max(journal_last, registry_stamp, key=datetime.fromisoformat)
    rows = {r.task_id: r for r in view.rows}
    assert rows["b"].status is TaskStatus.RUNNING and rows["b"].orchestrator_gone is True
    assert not rows["a"].orchestrator_gone and not rows["c"].orchestrator_gone
    assert view.progress.eta_seconds is None
    # A running task's clock stops where the orchestrator was last seen, however late we look.
    gone = datetime.fromisoformat(view.orchestrator_gone_since or "")
    later = load_run(mon, "run-1", runs_dir=runs, now=gone + timedelta(hours=5))
    assert later.rows[0].elapsed_seconds == view.rows[0].elapsed_seconds
    assert view.rows[0].elapsed_seconds == pytest.approx(
        (gone - datetime.fromisoformat(rows["b"].started_at or "")).total_seconds())
    notice = view.notice(now=gone + timedelta(minutes=7, seconds=5))
    assert notice is not None and notice.count("\n") == 0
    assert "orchestrator gone since" in notice and "(7 min ago)" in notice
    assert notice.endswith("orchestrator resume run-1")
    data = json.loads(json.dumps(view.to_json()))
    assert data["orchestrator_alive"] is False and data["orphaned"] is True
    assert data["orchestrator_gone_since"] == view.orchestrator_gone_since
    assert data["resume_command"] == "orchestrator resume run-1"
    assert data["rows"][0]["status"] == "running" and data["rows"][0]["orchestrator_gone"] is True


def test_orphaned_run_with_a_damaged_registry_is_read_from_its_journal(tmp_path: Path) -> None:
    _, mon, runs = gadugi_run(tmp_path, {"b": "running"})
    (mon / "process_registry.json").write_text('{"processes": {"b": ')  # a crash mid-write
    view = load_run(mon, "run-1", runs_dir=runs)
    assert view.run_id == "run-1" and view.source.endswith("events.jsonl")
    assert view.orphaned is True and view.rows[0].orchestrator_gone is True
    with pytest.raises(StateError, match="cannot read"):
        load_run(mon, "run-1")  # without the journal there is nothing to fall back to: say why


def test_run_lock_held_for_the_run_means_alive(tmp_path: Path) -> None:
    gadugi, mon, runs = gadugi_run(tmp_path, {"b": "running"})
    lock = RunLock(gadugi)
    lock.acquire("run-1")  # this process plays the orchestrator: a real flock, a live pid
    try:
        view = load_run(mon, "run-1", runs_dir=runs)
        assert view.orchestrator_alive is True and view.orphaned is False and view.notice() is None
        assert view.orchestrator_gone_since is None and view.resume_command is None
        assert view.rows[0].orchestrator_gone is False
        later = load_run(mon, "run-1", runs_dir=runs, now=datetime.fromisoformat(view.rows[0].started_at or "")
                         + timedelta(hours=1))
        assert later.rows[0].elapsed_seconds == pytest.approx(3600.0)  # a watched task's clock runs
    finally:
        lock.release()
    assert load_run(mon, "run-1", runs_dir=runs).orphaned is True


def test_run_lock_held_for_another_run_drives_nothing_here(tmp_path: Path) -> None:
    gadugi, mon, runs = gadugi_run(tmp_path, {"b": "running"})
    lock = RunLock(gadugi)
    lock.acquire("run-2")
    try:
        assert load_run(mon, "run-1", runs_dir=runs).orphaned is True
    finally:
        lock.release()


def test_lock_whose_recorded_holder_is_dead_drives_nothing(tmp_path: Path) -> None:
    gadugi, mon, runs = gadugi_run(tmp_path, {"b": "running"})
    lock = RunLock(gadugi)
    lock.acquire("run-1")
    try:
        # As if a child of a dead orchestrator kept the lock's descriptor: the holder named is gone.
        holder = json.loads(lock.holder_path.read_text())
        lock.holder_path.write_text(json.dumps({**holder, "create_time": holder["create_time"] - 1000}))
        assert load_run(mon, "run-1", runs_dir=runs).orphaned is True
    finally:
        lock.release()


def test_the_start_record_names_the_orchestrator(tmp_path: Path) -> None:
    gadugi, _, runs = gadugi_run(tmp_path, {"b": "running"})
    journal = Journal(runs / "run-1" / "events.jsonl", run_id="run-1")
    me = psutil.Process()
    journal.append("run_resumed", pid=me.pid, create_time=me.create_time())
    assert run_liveness(gadugi, "run-1").alive is True  # the live process that resumed it, no lock
    # The same pid with another create time is a reused pid, not the orchestrator.
    journal.append("run_resumed", pid=me.pid, create_time=me.create_time() - 1000)
    assert run_liveness(gadugi, "run-1").orphaned is True
    journal.append("run_resumed", pid=os.getpid())  # a pid alone proves nothing either way
    assert run_liveness(gadugi, "run-1").orphaned is True


def test_finished_and_resumed_runs(tmp_path: Path) -> None:
    gadugi, mon, runs = gadugi_run(tmp_path, {"b": "completed"})
    journal = Journal(runs / "run-1" / "events.jsonl", run_id="run-1")
    journal.append("run_finished", successful=1, failed=0)
    ended = run_liveness(gadugi, "run-1")
    assert ended.unfinished is False and ended.alive is None and not ended.orphaned
    view = load_run(mon, "run-1", runs_dir=runs)
    assert view.orphaned is False and view.orchestrator_alive is None and view.notice() is None
    journal.append("run_resumed", pid=123)  # resumed after it finished, then killed
    assert run_liveness(gadugi, "run-1").orphaned is True
    journal.append("run_finished", successful=1, failed=0)
    assert run_liveness(gadugi, "run-1").orphaned is False


def test_watch_ends_when_the_orchestrator_dies(make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo()
    gadugi, _, _ = gadugi_run(repo, {"a": "running"})
    for args in (["status", "--watch"], ["status", "--watch", "--json"]):
        lock = RunLock(gadugi)
        lock.acquire("run-1")
        refreshes: list[float] = []

        def orchestrator_dies(seconds: float, lock: RunLock = lock, refreshes: list[float] = refreshes) -> None:
            refreshes.append(seconds)
            # A watch still going after its orchestrator died would loop here forever: stop it.
            assert len(refreshes) == 1, "the watch kept going after the orchestrator died"
            lock.release()  # the kernel does this when the orchestrator is killed

        monkeypatch.setattr(status_cmd, "_sleep", orchestrator_dies)
        out = CliRunner().invoke(cli(), [*args, "--project-root", str(repo)])
        assert out.exit_code == 1, out.output
        assert refreshes == [status_cmd.WATCH_INTERVAL], "one refresh while alive, then the watch ends"
        notice = [line for line in out.output.splitlines() if "orchestrator gone since" in line]
        assert len(notice) == 1 and notice[0].endswith("orchestrator resume run-1")
        if "--json" in args:
            assert "orchestrator gone" in out.stderr
            first, last = (json.loads(line) for line in out.stdout.splitlines())
            assert first["orchestrator_alive"] is True and last["orchestrator_alive"] is False


def test_status_and_doctor_report_an_orphaned_run(make_repo: Callable[..., Path]) -> None:
    repo = make_repo()
    gadugi_run(repo, {"a": "running", "b": "queued"})
    runner = CliRunner()
    shown = runner.invoke(cli(), ["status", "--project-root", str(repo)])
    assert shown.exit_code == 0, shown.output
    assert "orphaned" in shown.output and "orchestrator resume run-1" in shown.output
    doctor = runner.invoke(cli(), ["doctor", "--project-root", str(repo)])
    assert doctor.exit_code == 1
    (found,) = [line for line in doctor.output.splitlines() if line.startswith("found: orphaned run:")]
    assert "run-1" in found and found.endswith("orchestrator resume run-1")
    lock = RunLock(repo / ".gadugi")
    lock.acquire("run-1")
    try:
        assert "orphaned run" not in runner.invoke(cli(), ["doctor", "--project-root", str(repo)]).output
    finally:
        lock.release()


# -- a task waiting to retry, and names kept whole -------------------------------------------------


def test_a_retry_wait_is_read_back_from_the_registry(tmp_path: Path) -> None:
    mon, runs = tmp_path / "monitoring", tmp_path / "runs"
    reg = registry_with(mon, "run-1", {"o": "running"}, runs=runs)
    wait = RetryWait.starting_in(30, retry=2, retries=3, failure="api_error")
    reg.transition("o", TaskStatus.QUEUED, attempt=2, reason="attempt 1 failed", retry_wait=wait)
    now = datetime.fromisoformat(wait.retry_at) - timedelta(seconds=4)
    (row,) = load_run(mon, "run-1", now=now).rows
    assert row.retry_note == "retry 2/3 in 4s (the model API failed or was overloaded)"
    # The journal says the run started and never ended, and nobody drives it: only resume retries.
    (orphaned,) = load_run(mon, "run-1", runs_dir=runs, now=now).rows
    assert orphaned.retry_note == "retry 2/3 on resume (the model API failed or was overloaded)"
    assert replay(read_journal(runs / "run-1" / "events.jsonl"), "run-1")["o"].retry_wait == wait
    late = load_run(mon, "run-1", now=now + timedelta(seconds=10)).rows[0]
    assert late.retry_note == "retry 2/3 due (the model API failed or was overloaded)"
    reg.transition("o", TaskStatus.RUNNING)
    entry = json.loads((mon / "process_registry.json").read_text())["processes"]["o"]
    assert entry["retry_wait"] is None and load_run(mon, "run-1").rows[0].retry_note is None


def piped_status(repo: Path, path_env: str, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """`orchestrator status` with stdout a pipe, as a script or `| less` sees it."""
    env = dict(os.environ, PATH=path_env, COLUMNS=str(columns))
    return subprocess.run([sys.executable, "-m", "orchestrator", "status", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)


def test_piped_status_keeps_long_ids_whole_at_80_columns(make_repo: Callable[..., Path], path_with: str) -> None:
    repo = make_repo()
    ids = ("parser-frontmatter-validation-errors", "parser-frontmatter-validation-warnings")
    write_prompt(repo, "ok.md", f"id: {ids[0]}", "# OK\nfake-claude: commit")
    write_prompt(repo, "bad.md", f"id: {ids[1]}", "# Bad\nfake-claude: wrong-subtype")
    run = run_cli(repo, path_with, "run", "prompts/ok.md", "prompts/bad.md", "--retries", "0", "--json")
    assert run.returncode == 1, run.stderr
    out = piped_status(repo, path_with)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, out.stdout
    for task_id in ids:
        assert any(task_id in line for line in lines), out.stdout
    assert "2/2 finished (1 completed, 1 failed)" in out.stdout


def test_status_shows_a_task_waiting_to_retry(make_repo: Callable[..., Path], path_with: str,
                                              tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "o.md", "id: o", f"# O\nfake-claude: overloaded times=9 state={tmp_path / 'o.state'}")
    env = dict(os.environ, PATH=path_with)
    # An hour of backoff (jittered): the task sits waiting for its retry while status reads it.
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "o", "--launch-stagger", "0",
                             "--retries", "3", "--retry-backoff", "3600s", "--retry-backoff-cap", "3600s"],
                            cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = repo / ".gadugi" / "monitoring" / "process_registry.json"

    def waiting() -> dict | None:  # type: ignore[type-arg]
        assert proc.poll() is None, "the orchestrator exited"
        try:
            wait = json.loads(registry.read_text())["processes"]["o"].get("retry_wait")
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            return None
        # Full jitter may pick a short wait, over before status reads it; the next one will do.
        if wait and datetime.fromisoformat(wait["retry_at"]) - datetime.now(UTC) > timedelta(minutes=1):
            return wait  # type: ignore[no-any-return]
        return None

    try:
        wait_for(lambda: waiting() is not None)
        wait = waiting()
        assert wait is not None and wait["failure"] == "api_error" and wait["retries"] == 3
        data = json.loads(piped_status(repo, path_with, "--json").stdout)
        note = data["rows"][0]["retry_note"]
        assert note.startswith(f"retry {wait['retry']}/3 in ")
        assert note.endswith(" (the model API failed or was overloaded)")
        text = piped_status(repo, path_with).stdout
        line = next(line for line in text.splitlines() if line.startswith(" o "))
        assert "waiting" in line and f"retry {wait['retry']}/3 in" in line, text
    finally:
        proc.send_signal(signal.SIGINT)  # nothing runs: the interrupt ends the run at once
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_STATUS_JSON_LOADS = """
import sys
from click.testing import CliRunner
from orchestrator.cli.main import main
result = CliRunner().invoke(main, ["status", "--json", "--project-root", sys.argv[1]])
assert result.exit_code == 0, result.output
assert json.loads(result.output)["run_id"] == "run-1"
print(" ".join(m for m in sys.modules if m.split(".")[0] == "rich" or m in {heavy!r}))
"""


def test_status_json_loads_no_table_and_no_agent(make_repo) -> None:
    """An editor polls `status --json`: it reads the registry (pydantic models) and draws nothing."""
    repo = make_repo()
    registry_with(repo / ".gadugi" / "monitoring", "run-1", {"alpha": "completed"}, runs=repo / ".gadugi" / "runs")
    heavy = ("orchestrator.observe.live", "orchestrator.agents.claude", "orchestrator.agents.pricing",
             "orchestrator.run.coordinator", "prometheus_client", "yaml")
    script = "import json\n" + _STATUS_JSON_LOADS.format(heavy=heavy)
    proc = subprocess.run([sys.executable, "-c", script, str(repo)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []
