"""Crash torture: whole runs of 6-12 fake-agent tasks stopped at seeded points, resumed, checked.

A kill point is an event, not a delay: the harness polls the run journal (`events.jsonl`) and the
tasks' `result.json` files every 1.5 ms and signals the orchestrator right after the chosen record
appears. Signals: SIGKILL (no cleanup at all), SIGINT (a graceful stop, exit 130) and a double
SIGINT (the second once the first's cancellations show in the journal). Then
`orchestrator resume --json` runs in the same environment and the invariants are checked: every
task completed, each agent succeeded exactly once, branches hold their commits in dependency
order, the registry validates against its schema, and no process, run lock or worktree lock is
left behind.

    .venv/bin/python -m benchmarks.torture --points 100 --seed 1
    .venv/bin/python -m benchmarks.torture --at 100007        # one point again, by its seed

tests/test_torture.py runs fixed points in the normal suite and more under `-m torture`.
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import psutil
from orchestrator.observe.schema import shipped_schema
from orchestrator.worktrees.pool import POOL_LOCK_REASON

from benchmarks.common import GIT_ENV

REPO = Path(__file__).resolve().parent.parent
FAKE_CLAUDE = REPO / "tests" / "fake_claude.py"
FAST = ("--launch-stagger", "0", "--interrupt-timeout", "0.3s", "--terminate-timeout", "0.3s",
        "--retry-backoff", "0.05s")
SIGNALS = ("kill-9", "sigint", "double-sigint")
POLL = 0.0015
# Safety nets only: a point that needs them has already failed.
TRIGGER_LIMIT, STOP_LIMIT, RESUME_LIMIT, GONE_LIMIT = 120.0, 60.0, 180.0, 5.0
SHARED_DIR = "src/shared"
Record = dict[str, Any]


@dataclass(frozen=True)
class Task:
    id: str
    directive: str  # the fake agent's mode and parameters
    depends_on: tuple[str, ...] = ()
    conflicts_with: tuple[str, ...] = ()
    shared: bool = False  # declares `files: [src/shared/]`, overlapping the other shared tasks

    @property
    def written(self) -> str:
        """The file the fake agent commits: its own, so overlapping scopes never conflict in git."""
        return f"{SHARED_DIR}/{self.id}.txt" if self.shared else f"fake/{self.id}.txt"


@dataclass(frozen=True)
class Scenario:
    seed: int
    tasks: tuple[Task, ...]
    max_parallel: int


@dataclass(frozen=True)
class KillPoint:
    signal: str  # one of SIGNALS
    trigger: str  # a MATCHERS key, or "result" (the n-th task's result.json appears)
    n: int

    @property
    def label(self) -> str:
        return f"{self.signal} after {self.trigger} #{self.n}"


@dataclass
class Outcome:
    seed: int
    point: KillPoint
    landed: str = "-"  # the last journal record before the signal
    stage: str = "-"
    too_late: bool = False
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return "FAILED" if self.problems else "too late" if self.too_late else "survived"

    def line(self) -> str:
        text = (f"seed={self.seed} {self.point.label} | landed {self.landed} ({self.stage}) | "
                f"{self.verdict} in {self.seconds:.1f}s")
        return text + ("".join(f"\n    - {p}" for p in self.problems) if self.problems else "")


def _changes(rec: Record) -> Record:
    changes = rec.get("changes")
    return changes if isinstance(changes, dict) else {}


MATCHERS: dict[str, Callable[[Record], bool]] = {
    "record": lambda r: True,
    "register": lambda r: r.get("event") == "register",
    "spawn": lambda r: r.get("event") == "transition" and r.get("to") == "running",
    "worktree": lambda r: r.get("event") == "update" and "wm_pid" in _changes(r),
    "agent": lambda r: r.get("event") == "update" and _changes(r).get("phase") == "agent",
    "adoption": lambda r: r.get("event") == "update" and _changes(r).get("phase") == "done",
    "completed": lambda r: r.get("event") == "transition" and r.get("to") == "completed",
    "finalized": lambda r: r.get("event") == "registry_finalized",
    "finished": lambda r: r.get("event") == "run_finished",
}


def stage_of(rec: Record | None) -> str:
    """Which part of a run a journal record (the last one before a signal) belongs to."""
    if rec is None:
        return "startup"
    event, changes = rec.get("event"), _changes(rec)
    if event in ("run_started", "register"):
        return "planning"
    if event == "transition":
        return {"running": "spawn", "queued": "retry", "cancelled": "stopping"}.get(str(rec.get("to")), "adoption")
    if event == "update":
        return "worktree" if "wm_pid" in changes else "adoption" if changes.get("phase") == "done" else "agent"
    return {"registry_finalized": "finish", "run_finished": "merge check"}.get(str(event), str(event))


def describe(rec: Record | None) -> str:
    if rec is None:
        return "no journal yet"
    event, changes = rec.get("event"), _changes(rec)
    detail = ""
    if event == "transition":
        detail = f" {rec.get('from')}→{rec.get('to')}"
    elif event == "update":
        detail = " " + ",".join(f"{k}={changes[k]}" if k == "phase" else k for k in changes)
    return f"#{rec.get('seq')} {event} {rec.get('task_id') or ''}{detail}".replace("  ", " ").rstrip()


# -- scenarios ------------------------------------------------------------------------------------


def make_scenario(seed: int, tasks: int | None = None, slowest: float = 1.5) -> Scenario:
    """6-12 tasks: `commit` or `slow seconds=0.1..slowest`, a DAG of depends_on edges, one or two
    conflicts_with pairs and two or three tasks sharing a `files:` directory. `slowest` changes
    only how long the slow agents work, not the draws: a seed gives the same graph with any."""
    rng = random.Random(seed)
    n = tasks or rng.randint(6, 12)
    ids = [f"t{i:02d}" for i in range(1, n + 1)]
    deps = {tid: tuple(sorted(rng.sample(ids[:i], k=min(i, rng.choice((1, 1, 2))))))
            if i and rng.random() < 0.4 else () for i, tid in enumerate(ids)}
    conflicts: dict[str, list[str]] = {tid: [] for tid in ids}
    for _ in range(rng.randint(1, 2)):
        a, b = sorted(rng.sample(ids, 2))
        conflicts[a].append(b)
    shared = set(rng.sample(ids, k=rng.randint(2, 3)))
    out = []
    for tid in ids:
        mode = "commit" if rng.random() < 0.35 else f"slow seconds={rng.uniform(0.1, slowest):.2f}"
        if tid in shared:
            mode += f" write={SHARED_DIR}/{tid}.txt"
        out.append(Task(tid, mode, deps[tid], tuple(sorted(set(conflicts[tid]))), tid in shared))
    return Scenario(seed, tuple(out), rng.randint(2, 4))


def pick_point(seed: int, scenario: Scenario) -> KillPoint:
    """A seeded kill point spread over a run: mostly SIGKILL anywhere from planning to the merge
    check; a Ctrl-C only where tasks are running, so it has something to interrupt."""
    rng = random.Random(f"kill-{seed}")
    n = len(scenario.tasks)
    expected = 4 + 12 * n  # journal records in a run: 10-14 per task, plus start, finalize, finish
    kind = rng.choices(SIGNALS, weights=(6, 2, 2))[0]
    if kind != "kill-9":
        if rng.random() < 0.5:
            return KillPoint(kind, "record", rng.randint(n + 2, int(expected * 0.7)))
        return KillPoint(kind, rng.choice(("spawn", "worktree", "agent", "completed")), rng.randint(1, n - 1))
    trigger = rng.choice(("record", "record", "register", "spawn", "worktree", "agent", "adoption", "result",
                          "completed", "final", "finalized"))
    if trigger == "record":
        return KillPoint(kind, "record", rng.randint(1, expected))
    if trigger == "final":  # the last result is in: adoption, cleanup, finish and merge check remain
        return KillPoint(kind, "result", n)
    return KillPoint(kind, trigger, 1 if trigger == "finalized" else rng.randint(1, n))


def _git(repo: Path, *args: str) -> tuple[int, str, str]:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=GIT_ENV,
                          check=False, timeout=60)
    return proc.returncode, proc.stdout.strip(), proc.stderr.strip()


def build_repo(scenario: Scenario, root: Path) -> tuple[Path, dict[str, str]]:
    """A committed repository with one prompt per task, a fake `claude` on PATH; returns the
    repository and the environment every orchestrator of the point runs with."""
    repo = root / "repo"
    (repo / "prompts").mkdir(parents=True)
    (repo / SHARED_DIR).mkdir(parents=True)
    (repo / "README.md").write_text("# torture\n")
    (repo / SHARED_DIR / "README.md").write_text("shared\n")
    for task in scenario.tasks:
        front = [f"id: {task.id}"]
        if task.depends_on:
            front.append(f"depends_on: [{', '.join(task.depends_on)}]")
        if task.conflicts_with:
            front.append(f"conflicts_with: [{', '.join(task.conflicts_with)}]")
        if task.shared:
            front.append(f"files: [{SHARED_DIR}/]")
        body = f"# Task {task.id}\nfake-claude: {task.directive}\n"
        (repo / "prompts" / f"{task.id}.md").write_text("---\n" + "\n".join(front) + "\n---\n" + body)
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "initial")):
        rc, _, err = _git(repo, *args)
        if rc:
            raise RuntimeError(f"git {' '.join(args)}: {err}")
    bindir = root / "bin"
    bindir.mkdir()
    (bindir / "claude").write_text(f"#!/bin/sh\nexec '{sys.executable}' '{FAKE_CLAUDE}' \"$@\"\n")
    (bindir / "claude").chmod(0o755)
    (root / "home").mkdir()
    env = {**GIT_ENV, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(root / "home"),
           "FAKE_CLAUDE_LOG": str(root / "agents.log"), "NO_COLOR": "1"}
    if "PYTHONPATH" in os.environ:  # the orchestrator under test may be a checkout, not the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return repo, env


# -- striking -------------------------------------------------------------------------------------


class JournalTail:
    """The run's journal records as they are appended, read incrementally."""

    def __init__(self, repo: Path) -> None:
        self.runs = repo / ".gadugi" / "runs"
        self.path: Path | None = None
        self.offset = 0
        self.partial = b""
        self.last: Record | None = None
        self.finished = False  # a run_finished record of a run that was not interrupted

    def poll(self) -> list[Record]:
        if self.path is None:
            self.path = next(self.runs.glob("*/events.jsonl"), None) if self.runs.is_dir() else None
            if self.path is None:
                return []
        try:
            if self.path.stat().st_size == self.offset:
                return []
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:
            return []
        self.offset += len(chunk)
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # a torn line; the journal's readers skip it too
        if records:
            self.last = records[-1]
        self.finished = self.finished or any(r.get("event") == "run_finished" and not r.get("interrupted")
                                             for r in records)
        return records

    def results(self) -> int:
        return len(list(self.path.parent.glob("tasks/*/result.json"))) if self.path else 0


def _restore_sigint() -> None:
    # A harness started in the background has SIGINT ignored, and children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(scenario: Scenario, repo: Path, env: dict[str, str], root: Path) -> subprocess.Popen[bytes]:
    ids = [t.id for t in scenario.tasks]
    cmd = [sys.executable, "-m", "orchestrator", "run", *ids, "--json", "--max-parallel",
           str(scenario.max_parallel), *FAST]
    with open(root / "run.out", "wb") as out, open(root / "run.err", "wb") as err:
        return subprocess.Popen(cmd, cwd=repo, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_restore_sigint)


def strike(proc: subprocess.Popen[bytes], tail: JournalTail, point: KillPoint, outcome: Outcome,
           root: Path) -> None:
    """Wait for the point's event, then signal; a run that ends first makes the point too late."""
    matches = 0
    deadline = time.monotonic() + TRIGGER_LIMIT
    matcher = MATCHERS.get(point.trigger, MATCHERS["record"])
    while True:
        records = tail.poll()
        matches += sum(map(matcher, records)) if point.trigger != "result" else 0
        hit = tail.results() >= point.n if point.trigger == "result" else matches >= point.n
        if proc.poll() is not None:
            outcome.too_late, outcome.landed, outcome.stage = True, "after the run ended", "ended"
            if proc.returncode not in (0, 1):
                outcome.problems.append(f"the run itself exited {proc.returncode}: {_tail(root / 'run.err')}")
            return
        if hit:
            break
        if time.monotonic() > deadline:
            outcome.problems.append(f"{point.trigger} #{point.n} not reached within {TRIGGER_LIMIT:g} s "
                                    f"(last record: {describe(tail.last)})")
            return
        time.sleep(POLL)
    outcome.landed, outcome.stage = describe(tail.last), stage_of(tail.last)
    if point.signal == "kill-9":
        proc.kill()
        # It may have exited between the last look and the kill.
        outcome.too_late = proc.wait() != -signal.SIGKILL
        return
    proc.send_signal(signal.SIGINT)
    if point.signal == "double-sigint":
        outcome.landed += f"; 2nd SIGINT {_second_sigint(proc, tail)}"
    try:
        code = proc.wait(timeout=STOP_LIMIT)
    except subprocess.TimeoutExpired:
        outcome.problems.append(f"still running {STOP_LIMIT:g} s after SIGINT")
        return
    tail.poll()
    if code == 0 and tail.finished:
        outcome.too_late = True  # the interrupt arrived after the run had finished its work
    elif code != 130:
        outcome.problems.append(f"after SIGINT the orchestrator exited {code}, expected 130: {_tail(root / 'run.err')}")


def _second_sigint(proc: subprocess.Popen[bytes], tail: JournalTail) -> str:
    """The second Ctrl-C once the first one's effect is in the journal (a task cancelled)."""
    deadline = time.monotonic() + STOP_LIMIT
    while proc.poll() is None and time.monotonic() < deadline:
        seen = [r for r in tail.poll() if r.get("to") == "cancelled" or "cancel" in str(r.get("event"))]
        if seen:
            proc.send_signal(signal.SIGINT)
            return f"after {describe(seen[0])}"
        time.sleep(POLL)
    return "not sent: no cancellation before the orchestrator exited"


def _tail(path: Path) -> str:
    try:
        return _last_lines(path.read_text(errors="replace"))
    except OSError:
        return "(no output)"


def _last_lines(text: str, lines: int = 4, chars: int = 600) -> str:
    """The end of some output on one line, for a problem message."""
    said = " | ".join(text.strip().splitlines()[-lines:])
    return ("…" + said[-chars:] if len(said) > chars else said) or "(no output)"


def resume(repo: Path, env: dict[str, str], root: Path) -> tuple[int | None, str, str]:
    cmd = [sys.executable, "-m", "orchestrator", "resume", "--json", *FAST]
    with subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=RESUME_LIMIT)
        except subprocess.TimeoutExpired:
            _kill(proc.pid, group=True)
            out, err = proc.communicate()
            return None, out, err
    (root / "resume.out").write_text(out)
    (root / "resume.err").write_text(err)
    return proc.returncode, out, err


# -- invariants -----------------------------------------------------------------------------------


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def final_tasks(repo: Path, stdout: str) -> tuple[dict[str, Record], str]:
    """Each task's final row (status, branch, error) and where it came from: resume's JSON, else
    the report of a run that had finished, else the registry."""
    try:
        return {t["task_id"]: t for t in json.loads(stdout)["tasks"]}, "resume --json"
    except (ValueError, KeyError, TypeError):
        pass
    for report in sorted((repo / ".gadugi" / "runs").glob("*/report.json")):
        data = _json(report)
        if isinstance(data, dict) and isinstance(data.get("tasks"), list):
            return {t["task_id"]: t for t in data["tasks"]}, "report.json"
    registry = _json(repo / ".gadugi" / "monitoring" / "process_registry.json") or {}
    return dict(registry.get("processes") or {}), "process_registry.json"


def agent_records(log: Path) -> list[Record]:
    try:
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def check(scenario: Scenario, repo: Path, log: Path, code: int | None, stdout: str, stderr: str) -> list[str]:
    rows, source = final_tasks(repo, stdout)
    problems = [f"{t.id} ended {rows[t.id].get('status')} ({source}): {rows[t.id].get('error_message')}"
                for t in scenario.tasks if t.id in rows and rows[t.id].get("status") != "completed"]
    missing = [t.id for t in scenario.tasks if t.id not in rows]
    if missing:
        problems.append(f"missing from {source}: {', '.join(missing)}")
    if code != 0:
        problems.append(f"resume exited {code}: {_last_lines(stderr.strip() or stdout)}")
    records = agent_records(log)
    never = []
    for task in scenario.tasks:
        mine = [r for r in records if r.get("task") == task.id]
        wins = sum(r.get("event") == "end" and r.get("exit_code") == 0 for r in mine)
        starts = sum(r.get("event") == "start" for r in mine)
        if not starts:
            never.append(task.id)
        elif wins != 1:
            ends = [r.get("exit_code") for r in mine if r.get("event") == "end"]
            problems.append(f"{task.id}: agent succeeded {wins} times, expected once ({starts} starts, end codes {ends})")
    if never:
        problems.append(f"agent never started: {', '.join(never)}")
    problems += _check_branches(scenario, repo, rows)
    problems += _check_registry(repo)
    problems += _check_leftovers(repo, log)
    return problems


def _branch(repo: Path, rows: dict[str, Record], tid: str) -> str:
    branch = rows.get(tid, {}).get("branch")
    if branch:
        return str(branch)
    saved = _json(next(iter((repo / ".gadugi" / "runs").glob("*/plan.json")), repo / "none")) or {}
    planned = {t["spec"]["id"]: t["branch"] for t in saved.get("plan", {}).get("tasks", [])}
    return str(planned.get(tid, f"gadugi/{tid}"))


def _check_branches(scenario: Scenario, repo: Path, rows: dict[str, Record]) -> list[str]:
    problems, absent = [], []
    for task in scenario.tasks:
        branch = _branch(repo, rows, task.id)
        if _git(repo, "rev-parse", "--verify", "-q", f"refs/heads/{branch}")[0]:
            absent.append(branch)
            continue
        rc, text, _ = _git(repo, "show", f"{branch}:{task.written}")
        if rc or f"{task.id}: fake change" not in text:
            problems.append(f"{task.id}: branch {branch} lacks the agent's commit of {task.written}")
        for pred in task.depends_on:
            before = _branch(repo, rows, pred)
            if before not in absent and _git(repo, "merge-base", "--is-ancestor", before, branch)[0]:
                problems.append(f"{before} ({pred}) is not an ancestor of {branch} ({task.id}), which depends on it")
    return problems + ([f"branches missing: {', '.join(absent)}"] if absent else [])


def _check_registry(repo: Path) -> list[str]:
    path = repo / ".gadugi" / "monitoring" / "process_registry.json"
    data = _json(path)
    if data is None:
        return [f"{path.name} is missing or not JSON"]
    try:
        errors = list(jsonschema.Draft202012Validator(shipped_schema("process_registry")).iter_errors(data))
    except Exception as exc:  # a harness must report, not crash, whatever the code under test does
        return [f"could not validate {path.name}: {exc!r}"]
    return [f"{path.name} does not validate: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in errors[:3]]


def _our_processes(repo: Path, log: Path) -> Iterator[tuple[psutil.Process, str]]:
    """Live processes of this point, each verified by create time (pids are reused): the
    WorkflowManagers and agents the state files name, and anything running inside the point's
    directory."""
    known: dict[int, tuple[float, str]] = {}  # pid -> (latest plausible create time, what)
    for wm in (repo / ".gadugi" / "runs").glob("*/tasks/*/wm.json"):
        data = _json(wm) or {}
        if "pid" in data:
            known[int(data["pid"])] = (float(data.get("create_time", 0)) + 1, f"WorkflowManager of {wm.parent.name}")
    for events in (repo / ".gadugi" / "runs").glob("*/events.jsonl"):
        for line in events.read_text(errors="replace").splitlines():
            if '"wm_pid"' in line or '"pid_create_time"' in line:
                try:
                    ch = _changes(json.loads(line))
                except ValueError:
                    continue
                for pid_key, time_key, what in (("wm_pid", "wm_create_time", "WorkflowManager"),
                                                ("pid", "pid_create_time", "agent")):
                    if ch.get(pid_key) and ch.get(time_key):
                        known[int(ch[pid_key])] = (float(ch[time_key]) + 1, what)
    for rec in agent_records(log):
        if rec.get("event") == "start":
            known[int(rec["pid"])] = (float(rec["ts"]), f"agent of {rec.get('task')}")
    root = repo.parent
    for proc in psutil.process_iter(["pid", "create_time", "cwd", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
            continue
        seen = known.get(proc.pid)
        if seen is not None and proc.info["create_time"] <= seen[0]:
            yield proc, seen[1]
        elif proc.info["cwd"] and Path(proc.info["cwd"]).is_relative_to(root):
            yield proc, "process inside the point's directory"


def _check_leftovers(repo: Path, log: Path) -> list[str]:
    deadline = time.monotonic() + GONE_LIMIT
    alive = list(_our_processes(repo, log))
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = list(_our_processes(repo, log))
    problems = [f"orphan process pid {p.pid} ({what}): {' '.join(_cmdline(p))[:160]}" for p, what in alive]
    gadugi = repo / ".gadugi"
    if (gadugi / "active_run.json").exists():
        problems.append(f"stale .gadugi/active_run.json: {(gadugi / 'active_run.json').read_text()[:200]}")
    if (gadugi / "orchestrator.lock").exists():
        fd = os.open(gadugi / "orchestrator.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            problems.append(".gadugi/orchestrator.lock is still held")
        finally:
            os.close(fd)
    problems += _check_worktree_locks(repo)
    return problems


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return ["?"]


def _check_worktree_locks(repo: Path) -> list[str]:
    """No worktree locked for a task; idle pool worktrees are locked by design, but only those
    the pool lists."""
    pool = {e.get("path") for e in (_json(repo / ".gadugi" / "pool.json") or {}).get("entries", [])}
    _, out, _ = _git(repo, "worktree", "list", "--porcelain")
    problems = []
    for block in out.split("\n\n"):
        attrs = dict(line.partition(" ")[::2] for line in block.splitlines())
        if "locked" not in attrs:
            continue
        path, reason = attrs.get("worktree", "?"), attrs["locked"]
        if reason != POOL_LOCK_REASON:
            problems.append(f"worktree {path} is still locked: {reason or '(no reason)'}")
        elif path not in pool:
            problems.append(f"pool worktree {path} is locked but not listed in .gadugi/pool.json")
    return problems


def kill_leftovers(repo: Path, log: Path, *procs: subprocess.Popen[Any]) -> None:
    """SIGKILL whatever this point left running, by pid (and process group when it leads one)."""
    for popen in procs:
        if popen.poll() is None:
            _kill(popen.pid, group=True)
            popen.wait()
    for proc, _ in list(_our_processes(repo, log)):
        _kill(proc.pid, group=_leads_group(proc.pid))


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _kill(pid: int, *, group: bool) -> None:
    try:
        os.killpg(pid, signal.SIGKILL) if group else os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


# -- one point, many points -----------------------------------------------------------------------


def run_point(scenario: Scenario, point: KillPoint, root: Path) -> Outcome:
    """Run the scenario in `root`, signal it at `point`, resume and check; never leaves a process."""
    started = time.monotonic()
    outcome = Outcome(scenario.seed, point)
    repo, env = build_repo(scenario, root)
    log = Path(env["FAKE_CLAUDE_LOG"])
    proc = start_run(scenario, repo, env, root)
    try:
        strike(proc, JournalTail(repo), point, outcome, root)
        if proc.poll() is None:  # the trigger never came, or a Ctrl-C did not stop it: kill -9 it
            _kill(proc.pid, group=True)
            proc.wait()
        code, out, err = resume(repo, env, root)
        outcome.problems += check(scenario, repo, log, code, out, err)
    finally:
        kill_leftovers(repo, log, proc)
        outcome.seconds = time.monotonic() - started
    return outcome


def point_seeds(seed: int, points: int) -> list[int]:
    return [seed * 100_000 + i for i in range(points)]


def counted(outcomes: list[Outcome]) -> list[Outcome]:
    """The points whose signal landed while the run was live (a too-late point counts only if it failed)."""
    return [o for o in outcomes if not o.too_late or o.problems]


def markdown(outcomes: list[Outcome], command: str, took: float) -> str:
    struck = counted(outcomes)
    survived = sum(not o.problems for o in struck)
    late = len(outcomes) - len(struck)
    lines = ["## Crash torture", "",
             f"`{command}` on {datetime.date.today()} ({took / 60:.1f} min): **survived {survived} / tried "
             f"{len(struck)}** kill points ({late} landed after the run had ended and are not counted). Each point "
             "runs 6-12 fake-agent tasks (dependencies, conflicts, shared scopes), stops the orchestrator right "
             "after a seeded journal record or result file, runs `orchestrator resume --json` and checks: all "
             "tasks completed, each agent succeeded once, branches hold their commits in dependency order, the "
             "registry validates, no orphan process, run lock or worktree lock.", "",
             "| signal | tried | survived | failed |", "|---|---|---|---|"]
    for kind in SIGNALS:
        mine = [o for o in struck if o.point.signal == kind]
        lines.append(f"| {kind} | {len(mine)} | {sum(not o.problems for o in mine)} | "
                     f"{sum(bool(o.problems) for o in mine)} |")
    lines += ["", "| where it landed (last journal record) | tried | failed |", "|---|---|---|"]
    stages = Counter(o.stage for o in struck)
    for stage, count in stages.most_common():
        lines.append(f"| {stage} | {count} | {sum(bool(o.problems) for o in struck if o.stage == stage)} |")
    failed = [o for o in struck if o.problems]
    if failed:
        lines += ["", "| seed | signal | landed | first problem |", "|---|---|---|---|"]
        for o in failed:
            problem = o.problems[0].replace("|", "\\|").replace("\n", " ")[:200]
            lines.append(f"| {o.seed} | {o.point.label} | {o.landed} | {problem} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.torture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20, help="how many kill points (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="master seed; point i has seed SEED*100000+i")
    parser.add_argument("--at", type=int, action="append", default=[], metavar="SEED",
                        help="run only this point seed (repeatable); overrides --points")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per scenario (default 6-12, seeded)")
    parser.add_argument("--keep", action="store_true", help="keep the directories of failed points")
    args = parser.parse_args(argv)
    seeds = args.at or point_seeds(args.seed, args.points)
    started = time.monotonic()
    outcomes = []
    for seed in seeds:
        scenario = make_scenario(seed, args.tasks)
        root = Path(tempfile.mkdtemp(prefix=f"gadugi-torture-{seed}-"))
        keep = False
        try:
            outcome = run_point(scenario, pick_point(seed, scenario), root)
            keep = args.keep and bool(outcome.problems)
        finally:
            if not keep:
                shutil.rmtree(root, ignore_errors=True)
        outcomes.append(outcome)
        print(outcome.line() + (f"\n    kept {root}" if keep else ""), flush=True)
    struck = counted(outcomes)
    print(f"\nsurvived {sum(not o.problems for o in struck)} / tried {len(struck)} "
          f"({len(outcomes) - len(struck)} too late)\n")
    command = "python -m benchmarks.torture " + (" ".join(f"--at {s}" for s in args.at) if args.at
                                                  else f"--points {args.points} --seed {args.seed}")
    command += f" --tasks {args.tasks}" if args.tasks else ""
    print(markdown(outcomes, command, time.monotonic() - started))
    return 1 if any(o.problems for o in outcomes) else 0

if __name__ == "__main__":
    sys.exit(main())
