from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from orchestrator.errors import StateError
from orchestrator.models import Phase, TaskStatus, Tokens
from orchestrator.proctree import is_alive
from orchestrator.state import registry as registry_module
from orchestrator.state.journal import Journal, read_journal
from orchestrator.state.registry import ProcessRegistry
from orchestrator.state.registry_models import (
    FinalFile,
    HeartbeatsFile,
    ProcessRegistryFile,
    RegistryStatsFile,
    RunStatusFile,
)
from pydantic import BaseModel

from conftest import wait_until

RUN = "run-20250101-000000"
Q, R, C, F, T, X = (
    TaskStatus.QUEUED,
    TaskStatus.RUNNING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.TIMEOUT,
    TaskStatus.CANCELLED,
)
TERMINAL = (C, F, T, X)

GADUGI_PROCESS_KEYS = {
    "task_id", "task_name", "status", "command", "working_directory", "created_at", "prompt_file", "pid",
    "started_at", "completed_at", "last_heartbeat", "exit_code", "error_message", "resource_usage",
}
OUR_PROCESS_KEYS = {
    "run_id", "attempt", "branch", "base_sha", "worktree", "session_id", "phase", "cost_usd", "tokens",
    "pid_create_time", "wm_pid", "wm_create_time", "agent_command", "last_event_at", "last_event", "turns",
    "priority", "duration_seconds",
}


def open_registry(mon: Path, *, journal: Journal | None = None, **kw: Any) -> ProcessRegistry:
    return ProcessRegistry(mon, RUN, journal=journal, fsync=False, **kw)


def add(reg: ProcessRegistry, task_id: str, **kw: Any) -> None:
    reg.register(
        task_id,
        task_name=f"Task {task_id}",
        command=kw.pop("command", ["claude", "-p", "do it", "--output-format", "stream-json"]),
        working_directory="/tmp/wt",
        prompt_file=f"prompts/{task_id}.md",
        branch=f"orchestrator/{task_id}",
        base_sha="abc123",
        worktree=f"/tmp/wt/{task_id}",
        priority=5,
        **kw,
    )


def load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture
def mon(tmp_path: Path) -> Path:
    return tmp_path / "monitoring"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "runs" / RUN / "events.jsonl", RUN) as j:
        yield j


@pytest.fixture
def reg(mon: Path, journal: Journal) -> Iterator[ProcessRegistry]:
    registry = open_registry(mon, journal=journal)
    yield registry
    registry.close()


def put_in(reg: ProcessRegistry, task_id: str, status: TaskStatus) -> None:
    add(reg, task_id)
    if status is Q:
        return
    if status in (R, C, F, T):
        assert reg.transition(task_id, R)
    if status is not R:
        assert reg.transition(task_id, status, reason="because")


# -- files and keys ------------------------------------------------------------------------------


def test_all_files_and_keys(reg: ProcessRegistry, mon: Path) -> None:
    add(reg, "a")
    add(reg, "b")
    reg.transition("a", R)
    reg.update("a", pid=4242, phase=Phase.AGENT, tokens={"input": 3, "output": 4}, cost_usd=0.25)
    reg.heartbeat("a", last_event="tool_use: Edit")
    reg.finalize()

    registry = load(mon / "process_registry.json")
    assert set(registry) >= {"schema_version", "run_id", "timestamp", "processes"}
    assert isinstance(registry["processes"], dict) and set(registry["processes"]) == {"a", "b"}
    entry = registry["processes"]["a"]
    assert set(entry) >= GADUGI_PROCESS_KEYS | OUR_PROCESS_KEYS
    assert entry["status"] == "running" and entry["command"].startswith("claude -p 'do it'")
    assert entry["agent_command"][2] == "do it"
    assert entry["tokens"] == {"input": 3, "output": 4, "cache_creation": 0, "cache_read": 0}
    assert entry["last_event"] == "tool_use: Edit"

    heartbeats = load(mon / "heartbeats.json")
    assert set(heartbeats) >= {"schema_version", "run_id", "timestamp", "active_processes"}
    assert set(heartbeats["active_processes"][0]) >= {
        "task_id", "task_name", "status", "pid", "last_heartbeat", "last_event_at", "last_event", "phase",
        "attempt", "resource_usage",
    }
    stats = load(mon / "registry_stats.json")
    assert set(stats) >= {
        "schema_version", "run_id", "timestamp", "total_processes", "queued_count", "running_count",
        "completed_count", "failed_count", "timeout_count", "cancelled_count", "average_execution_time",
        "total_cpu_usage", "total_memory_usage", "total_cost_usd",
    }
    assert stats["total_cost_usd"] == 0.25 and stats["average_execution_time"] is None
    assert stats["total_memory_usage"] is None
    status = load(mon / f"{RUN}_status.json")
    assert status["orchestration_id"] == status["run_id"] == RUN and status["finished"] is True
    assert set(status["active_processes"][0]) >= {"task_id", "task_name", "status", "runtime_seconds", "phase", "attempt"}
    final = load(mon / f"{RUN}_final.json")
    assert final["processes"] == registry["processes"]

    models: list[tuple[str, type[BaseModel]]] = [
        ("process_registry.json", ProcessRegistryFile),
        ("heartbeats.json", HeartbeatsFile),
        ("registry_stats.json", RegistryStatsFile),
        (f"{RUN}_status.json", RunStatusFile),
        (f"{RUN}_final.json", FinalFile),
    ]
    for name, model in models:
        data = load(mon / name)
        assert data["schema_version"] == 1
        model.model_validate(data)


def test_status_breakdown_always_has_six_keys(reg: ProcessRegistry, mon: Path) -> None:
    path = mon / f"{RUN}_status.json"
    assert load(path)["status_breakdown"] == {s.value: 0 for s in TaskStatus}
    put_in(reg, "a", C)
    assert load(path)["status_breakdown"] == {
        "queued": 0, "running": 0, "completed": 1, "failed": 0, "timeout": 0, "cancelled": 0,
    }


def _timestamps(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _timestamps(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _timestamps(item, key)
    elif isinstance(value, str) and (key in {"timestamp", "ts"} or key.endswith(("_at", "_heartbeat"))):
        yield value


def test_timestamps_are_iso_with_timezone(reg: ProcessRegistry, mon: Path, journal: Journal) -> None:
    put_in(reg, "a", C)
    put_in(reg, "b", R)
    reg.heartbeat("b", last_event="assistant")
    reg.finalize()
    seen = 0
    for path in [*mon.glob("*.json"), journal.path]:
        docs = read_journal(path) if path.suffix == ".jsonl" else [load(path)]
        for doc in docs:
            for stamp in _timestamps(doc):
                assert datetime.fromisoformat(stamp).tzinfo is not None, (path.name, stamp)
                seen += 1
    assert seen > 20


# -- lifecycle -------------------------------------------------------------------------------------

ALLOWED = {(Q, R), (Q, X), (Q, F), (R, C), (R, F), (R, T), (R, X)}


@pytest.mark.parametrize("start", list(TaskStatus))
@pytest.mark.parametrize("target", list(TaskStatus))
def test_transition_table(reg: ProcessRegistry, journal: Journal, start: TaskStatus, target: TaskStatus) -> None:
    put_in(reg, "t", start)
    before = reg.get("t")
    assert reg.transition("t", target) is ((start, target) in ALLOWED)
    after = reg.get("t")
    assert before is not None and after is not None
    if (start, target) in ALLOWED:
        assert after.status is target
    else:
        assert after == before, "a refused transition changes nothing"
        refused = [r for r in read_journal(journal.path) if r["event"] == "transition_refused"]
        assert refused[-1]["from"] == start.value and refused[-1]["to"] == target.value
        assert refused[-1]["why"] == ("terminal" if start.terminal else "not allowed")


def test_requeue_only_as_a_retry(reg: ProcessRegistry, journal: Journal) -> None:
    put_in(reg, "q", Q)
    assert not reg.transition("q", Q, attempt=2), "queued→queued is not a retry"
    put_in(reg, "r", R)
    assert not reg.transition("r", Q), "re-queue without a new attempt"
    assert not reg.transition("r", C, attempt=2), "attempt changes only by re-queueing"
    reg.update("r", pid=999_999, exit_code=1, phase=Phase.AGENT)
    assert reg.transition("r", Q, attempt=2, reason="agent crashed")
    entry = reg.get("r")
    assert entry is not None
    assert (entry.status, entry.attempt, entry.phase) == (Q, 2, Phase.QUEUED)
    assert entry.started_at is entry.error_message is entry.pid is entry.exit_code is None
    record = [r for r in read_journal(journal.path) if r["event"] == "transition"][-1]
    assert record["from"] == "running" and record["to"] == "queued"
    assert (record["previous_attempt"], record["attempt"], record["reason"]) == (1, 2, "agent crashed")
    assert not reg.transition("r", R, attempt=1), "attempts never go down"
    assert reg.transition("r", R)
    assert reg.transition("r", C)
    assert reg.get("r").attempt == 2  # type: ignore[union-attr]


class SteppedClock:
    """The registry's clock, moved by the test: durations without waiting for them."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SteppedClock:
    stepped = SteppedClock()
    monkeypatch.setattr(registry_module, "utcnow", stepped)
    return stepped


def test_timestamps_durations_and_errors(reg: ProcessRegistry, clock: SteppedClock) -> None:
    add(reg, "a")
    entry = reg.get("a")
    assert entry is not None and entry.started_at is None and entry.last_heartbeat == entry.created_at
    reg.transition("a", R)
    clock.advance(0.02)
    reg.update("a", error_message="transient")
    reg.transition("a", C, exit_code=0)
    done = reg.get("a")
    assert done is not None and done.started_at and done.completed_at
    assert done.duration_seconds is not None and done.duration_seconds >= 0.02
    assert done.error_message is None and done.phase is Phase.DONE and done.exit_code == 0

    add(reg, "b")
    reg.transition("b", F, reason="setup failed: worktree exists")
    failed = reg.get("b")
    assert failed is not None and failed.error_message == "setup failed: worktree exists"
    assert failed.duration_seconds == 0.0 and failed.started_at is None
    add(reg, "c")
    reg.transition("c", R)
    reg.transition("c", T, reason="timed out", error_message="timed out after 30m")
    assert reg.get("c").error_message == "timed out after 30m"  # type: ignore[union-attr]


def test_terminal_is_immutable_even_for_late_heartbeats(reg: ProcessRegistry, mon: Path) -> None:
    put_in(reg, "a", C)
    before = load(mon / "process_registry.json")["processes"]["a"]
    assert reg.heartbeat("a", last_event="late", phase=Phase.AGENT) is False
    for status in TaskStatus:
        assert reg.transition("a", status, attempt=5) is False
    assert load(mon / "process_registry.json")["processes"]["a"] == before
    assert reg.get("a").status is C  # type: ignore[union-attr]


def test_status_file_rewritten_on_every_change(reg: ProcessRegistry, mon: Path) -> None:
    path = mon / f"{RUN}_status.json"
    seen = [load(path)]
    add(reg, "a")
    seen.append(load(path))
    for status in (R, C):
        reg.transition("a", status)
        seen.append(load(path))
    assert [s["total_processes"] for s in seen] == [0, 1, 1, 1]
    assert [[a["status"] for a in s["active_processes"]] for s in seen] == [[], ["queued"], ["running"], []]
    assert [s["status_breakdown"]["completed"] for s in seen] == [0, 0, 0, 1]
    assert not any(s["finished"] for s in seen)
    reg.finalize()
    assert load(path)["finished"] is True


def test_runtime_seconds_since_start(reg: ProcessRegistry, mon: Path, clock: SteppedClock) -> None:
    add(reg, "a")
    add(reg, "b")
    reg.transition("a", R)
    clock.advance(0.05)
    reg.transition("b", X)
    active = {a["task_id"]: a for a in load(mon / f"{RUN}_status.json")["active_processes"]}
    assert set(active) == {"a"} and active["a"]["runtime_seconds"] >= 0.05


def test_update_validates_field_names_and_values(reg: ProcessRegistry) -> None:
    add(reg, "a")
    for bad in ({"stauts": "running"}, {"status": "running"}, {"started_at": "now"}, {"command": "x"}):
        with pytest.raises(ValueError):
            reg.update("a", **bad)
    with pytest.raises(ValueError):
        reg.update("a", turns="many")
    with pytest.raises(ValueError):
        reg.transition("a", R, typo=1)
    reg.update("a", tokens={"input": 5}, agent_command=["codex", "exec", "a b"], session_id="s1")
    entry = reg.get("a")
    assert entry is not None and entry.tokens == Tokens(input=5) and entry.command == "codex exec 'a b'"
    with pytest.raises(StateError):
        reg.update("nope", turns=1)
    with pytest.raises(StateError):
        add(reg, "a")


def test_update_captures_pid_create_time(reg: ProcessRegistry) -> None:
    add(reg, "a")
    reg.update("a", pid=psutil.Process().pid, wm_pid=psutil.Process().pid)
    entry = reg.get("a")
    assert entry is not None and entry.pid_create_time == psutil.Process().create_time()
    assert entry.wm_create_time == entry.pid_create_time


def test_heartbeat_keeps_known_values(reg: ProcessRegistry, mon: Path) -> None:
    put_in(reg, "a", R)
    reg.update("a", session_id="sess", cost_usd=0.5)
    assert reg.heartbeat("a", last_event="tool_use: Bash", session_id=None, cost_usd=None, tokens=None, turns=3)
    entry = reg.get("a")
    assert entry is not None and (entry.session_id, entry.cost_usd, entry.turns) == ("sess", 0.5, 3)
    assert entry.last_event == "tool_use: Bash" and entry.last_event_at
    beat = load(mon / "heartbeats.json")["active_processes"][0]
    assert beat["last_event"] == "tool_use: Bash" and beat["last_heartbeat"] == entry.last_heartbeat
    assert reg.heartbeat("unknown") is False


def test_stats(reg: ProcessRegistry, mon: Path) -> None:
    put_in(reg, "a", C)
    put_in(reg, "b", T)
    put_in(reg, "c", X)
    put_in(reg, "d", R)
    stats = load(mon / "registry_stats.json")
    assert (stats["completed_count"], stats["timeout_count"], stats["cancelled_count"], stats["running_count"]) == (
        1, 1, 1, 1,
    )
    assert stats["total_processes"] == 4 and isinstance(stats["average_execution_time"], float)


def test_journal_records_every_register_and_transition(reg: ProcessRegistry, journal: Journal) -> None:
    put_in(reg, "a", C)
    reg.transition("a", F)
    events = [(r["event"], r.get("from"), r.get("to")) for r in read_journal(journal.path)]
    assert events == [
        ("register", None, None),
        ("transition", "queued", "running"),
        ("transition", "running", "completed"),
        ("transition_refused", "completed", "failed"),
    ]


# -- persistence, corruption, concurrency ----------------------------------------------------------


def test_load_reopens_existing_registry(reg: ProcessRegistry, mon: Path) -> None:
    put_in(reg, "a", R)
    again = ProcessRegistry.load(mon, RUN, fsync=False)
    assert again.snapshot() == reg.snapshot()
    again.transition("a", C)
    assert reg.get("a").status is C, "the first instance sees the second one's write"  # type: ignore[union-attr]
    with pytest.raises(StateError):
        ProcessRegistry.load(mon, "other-run")  # not this run's file, and no journal to rebuild from
    again.close()


def test_corrupt_registry_is_kept_and_rebuilt_from_journal(reg: ProcessRegistry, mon: Path, journal: Journal) -> None:
    put_in(reg, "a", C)
    put_in(reg, "b", R)
    reg.update("b", pid=12345, pid_create_time=1.5, session_id="s-b", cost_usd=1.25, tokens={"output": 9}, turns=4)
    reg.heartbeat("b", last_event="tool_use: Edit")
    add(reg, "c")
    reg.transition("c", X, reason="dependency a failed")
    put_in(reg, "d", R)
    reg.transition("d", Q, attempt=2, reason="crashed")
    before = reg.snapshot()
    path = mon / "process_registry.json"
    path.write_text(path.read_text()[:200])  # truncated mid-write by something else

    rebuilt = ProcessRegistry.load(mon, RUN, journal=journal, fsync=False)
    (kept,) = mon.glob("process_registry.json.corrupt-*")
    assert len(kept.read_text()) == 200
    after = rebuilt.snapshot()
    volatile = {"last_heartbeat", "last_event", "last_event_at", "resource_usage"}
    assert after.keys() == before.keys()
    for task_id in before:
        assert after[task_id].model_dump(exclude=volatile) == before[task_id].model_dump(exclude=volatile)
    assert load(path)["processes"]["b"]["cost_usd"] == 1.25, "the rebuilt registry is written back"
    assert read_journal(journal.path)[-1]["event"] == "registry_rebuilt"
    assert rebuilt.transition("a", F) is False, "terminal states survive the rebuild"

    path.write_text("{")
    with pytest.raises(StateError):
        ProcessRegistry.load(mon, RUN)  # corrupt and no journal


def test_corruption_while_running_is_repaired_from_memory(reg: ProcessRegistry, mon: Path) -> None:
    put_in(reg, "a", R)
    path = mon / "process_registry.json"
    path.write_text('{"processes": ')
    reg.update("a", turns=7)
    assert load(path)["processes"]["a"]["turns"] == 7
    assert len(list(mon.glob("process_registry.json.corrupt-*"))) == 1


def test_file_of_another_run_is_not_adopted(reg: ProcessRegistry, mon: Path) -> None:
    put_in(reg, "a", R)
    other = ProcessRegistry(mon.parent / "other", "another-run", fsync=False)
    add(other, "zzz")
    shutil.copy(mon.parent / "other" / "process_registry.json", mon / "process_registry.json")
    reg.update("a", turns=1)
    assert set(load(mon / "process_registry.json")["processes"]) == {"a"}


def _read_loop(paths: list[str], stop: Any, out: Any) -> None:
    reads = errors = 0
    while not stop.is_set():
        for path in paths:
            try:
                with open(path) as fh:
                    json.load(fh)
                reads += 1
            except ValueError:
                errors += 1
    out.put((reads, errors))


def test_readers_never_see_invalid_json(reg: ProcessRegistry, mon: Path) -> None:
    for n in range(20):
        add(reg, f"t{n}")
    ctx = multiprocessing.get_context("fork")
    stop, out = ctx.Event(), ctx.Queue()
    names = ["process_registry.json", "heartbeats.json", "registry_stats.json", f"{RUN}_status.json"]
    reader = ctx.Process(target=_read_loop, args=([str(mon / n) for n in names], stop, out))
    reader.start()
    try:
        for n in range(500):
            if n % 50 == 0:
                reg.transition(f"t{n // 50}", R)
            reg.update(f"t{n % 20}", turns=n, last_event=f"event {n}")
    finally:
        stop.set()
        reads, errors = out.get(timeout=10)
        reader.join(timeout=10)
    assert errors == 0 and reads > 0


def _writer(mon: str, task_id: str, journal_path: str) -> None:
    with Journal(Path(journal_path), RUN) as journal:
        reg = ProcessRegistry.load(Path(mon), RUN, journal=journal, fsync=False)
        reg.transition(task_id, R)
        for n in range(1, 51):
            reg.update(task_id, turns=n, cost_usd=n / 100)
        reg.transition(task_id, C)
        reg.close()


def test_concurrent_writer_processes_lose_no_update(reg: ProcessRegistry, mon: Path, journal: Journal) -> None:
    tasks = [f"w{n}" for n in range(8)]
    for task_id in tasks:
        add(reg, task_id)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(mon), t, str(journal.path))) for t in tasks]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    processes = load(mon / "process_registry.json")["processes"]
    assert {t: (p["status"], p["turns"], p["cost_usd"]) for t, p in processes.items()} == {
        t: ("completed", 50, 0.5) for t in tasks
    }
    assert load(mon / f"{RUN}_status.json")["status_breakdown"]["completed"] == 8
    assert reg.snapshot()["w3"].turns == 50, "the parent adopts the children's writes"
    seqs = [r["seq"] for r in read_journal(journal.path)]
    assert seqs == sorted(set(seqs))


# -- processes -------------------------------------------------------------------------------------


def test_is_alive_with_a_real_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        created = psutil.Process(child.pid).create_time()
        assert is_alive(child.pid, created)
        assert not is_alive(child.pid, created + 1.0), "same pid, different process"
        child.kill()
        wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, "the killed child a zombie")
        assert not is_alive(child.pid, created), "a zombie is dead"
    finally:
        child.kill()
        child.wait()
    assert not is_alive(child.pid, created)


TREE = """
import subprocess, sys, time
kid = subprocess.Popen(
    [sys.executable, "-c", "import time; x = bytearray(20_000_000); print('ready', flush=True); time.sleep(30)"],
    stdout=subprocess.PIPE,
)
kid.stdout.readline()  # the 20 MB are allocated before anyone samples
print(kid.pid, flush=True)
time.sleep(30)
"""


def test_sample_resources_of_a_real_process_tree(reg: ProcessRegistry, mon: Path) -> None:
    put_in(reg, "a", R)
    put_in(reg, "idle", Q)
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        kid = int(parent.stdout.readline())
        reg.update("a", pid=parent.pid)
        first = reg.sample_resources()
        cached = dict(reg.sampler._procs)
        second = reg.sample_resources()
        assert set(first) == {"a"}
        usage = second["a"]
        assert usage is not None and usage.process_count == 2
        assert usage.memory_mb > 20 and usage.num_threads >= 2
        assert usage.create_time == psutil.Process(parent.pid).create_time()
        assert any(key[0] == kid for key in cached)
        assert all(reg.sampler._procs[key] is proc for key, proc in cached.items()), "psutil objects are reused"
        entry = load(mon / "process_registry.json")["processes"]["a"]
        assert entry["resource_usage"]["process_count"] == 2
        assert load(mon / "heartbeats.json")["active_processes"][0]["resource_usage"]["memory_mb"] > 20

        reg.update("a", pid_create_time=1.0)  # as if the pid had been reused by another process
        assert reg.sample_resources() == {"a": None}
    finally:
        for proc in psutil.Process(parent.pid).children(recursive=True):
            proc.kill()
        parent.kill()
        parent.wait()
    reg.update("a", pid_create_time=usage.create_time)
    assert reg.sample_resources() == {"a": None}
    assert reg.get("a").status is R, "sampling never decides a task is dead"  # type: ignore[union-attr]


# -- property: terminal states never change --------------------------------------------------------

TASKS = st.sampled_from(["a", "b", "c"])


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="registry-sm-"))
        self.reg = ProcessRegistry(self.dir / "mon", RUN, fsync=False)
        self.status: dict[str, TaskStatus] = {}
        self.attempt: dict[str, int] = {}
        self.final: dict[str, TaskStatus] = {}

    @rule(task=TASKS)
    def register(self, task: str) -> None:
        if task in self.status:
            with pytest.raises(StateError):
                add(self.reg, task)
        else:
            add(self.reg, task)
            self.status[task], self.attempt[task] = Q, 1

    @rule(task=TASKS, to=st.sampled_from(list(TaskStatus)), bump=st.integers(-1, 2))
    def transition(self, task: str, to: TaskStatus, bump: int) -> None:
        if task not in self.status:
            return
        current, attempt = self.status[task], self.attempt[task]
        ok = self.reg.transition(task, to, attempt=attempt + bump)
        expected = not current.terminal and (
            (current, to) in ALLOWED and bump == 0 or (current, to, bump > 0) == (R, Q, True)
        )
        assert ok == expected
        if ok:
            self.status[task], self.attempt[task] = to, attempt + bump
            if to.terminal:
                self.final[task] = to

    @rule(task=TASKS, turns=st.integers(0, 5))
    def heartbeat(self, task: str, turns: int) -> None:
        if task in self.status:
            assert self.reg.heartbeat(task, turns=turns, last_event="x") == (not self.status[task].terminal)

    @rule(task=TASKS, turns=st.integers(0, 5))
    def update(self, task: str, turns: int) -> None:
        if task in self.status:
            self.reg.update(task, turns=turns, phase=Phase.VERIFY)

    @rule()
    def reopen(self) -> None:
        self.reg.close()
        self.reg = ProcessRegistry.load(self.dir / "mon", RUN, fsync=False)

    @invariant()
    def terminal_states_never_change(self) -> None:
        on_disk = load(self.dir / "mon" / "process_registry.json")["processes"]
        for task, status in self.status.items():
            assert on_disk[task]["status"] == status.value
            assert on_disk[task]["attempt"] == self.attempt[task]
        for task, status in self.final.items():
            assert self.status[task] is status

    def teardown(self) -> None:
        self.reg.close()
        shutil.rmtree(self.dir, ignore_errors=True)


Lifecycle.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_lifecycle_state_machine = Lifecycle.TestCase


def test_default_durable_mode(mon: Path) -> None:
    reg = ProcessRegistry(mon, RUN)  # fsync on: file, then directory
    put_in(reg, "a", C)
    reg.finalize()
    assert load(mon / f"{RUN}_final.json")["processes"]["a"]["status"] == "completed"
    assert not [p for p in mon.iterdir() if p.name.endswith(".tmp")]
    reg.close()


def test_batch_writes_once(reg: ProcessRegistry, mon: Path) -> None:
    status = mon / f"{RUN}_status.json"
    with reg.batch():
        for n in range(5):
            add(reg, f"t{n}")
        reg.transition("t0", R)
        with reg.batch():
            reg.update("t0", turns=2)
        assert load(status)["total_processes"] == 0, "nothing is written until the batch ends"
        assert reg.get("t0").turns == 2  # type: ignore[union-attr]
    assert load(status)["status_breakdown"] == {
        "queued": 4, "running": 1, "completed": 0, "failed": 0, "timeout": 0, "cancelled": 0,
    }
    assert load(mon / "process_registry.json")["processes"]["t0"]["turns"] == 2


# -- coalescing: what a run uses, so a heartbeat costs the same with 1000 tasks as with 10 --------


def _file_entry(mon: Path, task_id: str) -> dict:  # type: ignore[type-arg]
    return load(mon / "process_registry.json")["processes"][task_id]


def test_coalesced_updates_reach_the_file_soon_and_status_changes_at_once(tmp_path: Path) -> None:
    mon = tmp_path / "mon"
    reg = ProcessRegistry(mon, "run-c", coalesce=0.2)
    put_in(reg, "a", R)
    reg.update("a", turns=1)
    reg.update("a", turns=2)  # inside the window: held in memory only
    assert reg.get("a").turns == 2  # type: ignore[union-attr]
    wait_until(lambda: _file_entry(mon, "a")["turns"] == 2, "the held-back update in the file")
    reg.update("a", turns=3)
    assert reg.transition("a", TaskStatus.COMPLETED)
    entry = _file_entry(mon, "a")
    assert entry["status"] == "completed" and entry["turns"] == 3, "a status change writes everything at once"
    reg.close()


def test_held_back_changes_survive_another_writer(tmp_path: Path) -> None:
    mon = tmp_path / "mon"
    first = ProcessRegistry(mon, "run-c", coalesce=60.0)
    put_in(first, "a", R)
    put_in(first, "b", R)
    first.update("a", turns=7)  # held back: the window is a minute
    other = ProcessRegistry.load(mon, "run-c")
    assert other.transition("b", TaskStatus.FAILED, error_message="boom")
    first.flush()  # reloads the other writer's state, then puts its own change on top
    assert _file_entry(mon, "a")["turns"] == 7
    assert _file_entry(mon, "b")["status"] == "failed"
    first.close()
    other.close()
