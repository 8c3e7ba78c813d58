"""End-to-end runs of the real CLI with a fake agent of known cost, against a shell floor.

* no-op overhead: N tasks whose agent only commits one file, at k slots, against
  `xargs -P k` doing the same git work (worktree add, commit, worktree remove);
* idle cost: the orchestrator's own CPU time and peak RSS while 16 agents sleep.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
from orchestrator.tracing import sdk_missing

from benchmarks.common import GIT_ENV, PYTHON, make_small_repo
from benchmarks.phases import read_phases

# A stand-in named `claude`, so the run treats it as Claude Code (its launch spacing, its config
# directory per task): it reads its prompt, commits one file and prints the result line Claude
# Code's stream-json ends with. A shell script, so its cost is the same as the shell floor's commit.
AGENT_SCRIPT = """cat > /dev/null
t="$GADUGI_TASK_ID"
echo "$t" > "done-$t.txt" && git add "done-$t.txt" && git commit -q -m "$t: done" || exit 1
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"done",\
"session_id":"00000000-0000-4000-8000-000000000000","total_cost_usd":0,"duration_ms":1}'
"""
# flock around add/remove: a `worktree add` concurrent with a `worktree remove` fails in git 2.39
# ("failed to read .git/worktrees/<x>/commondir"); the orchestrator serializes them the same way.
SHELL_TASK = (
    'flock .git/bench.lock git worktree add -q --no-track -b "sh/$1" "wt/$1" HEAD && cd "wt/$1" && '
    'echo "$1" > "done-$1.txt" && git add "done-$1.txt" && git commit -q -m "$1: done" && '
    'cd ../.. && flock .git/bench.lock git worktree remove "wt/$1"'
)


def _prompts(repo: Path, n: int) -> list[str]:
    folder = repo / "prompts"
    folder.mkdir(exist_ok=True)
    names = []
    for i in range(n):
        (folder / f"t{i:02d}.md").write_text(f"---\nid: t{i:02d}\n---\n# Task {i}\nCommit one file.\n")
        names.append(f"prompts/t{i:02d}.md")
    subprocess.run(["git", "add", "-A"], cwd=repo, env=GIT_ENV, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "prompts"], cwd=repo, env=GIT_ENV, check=True)
    return names


def install_agent(work: Path, prefix: str = "") -> Path:
    """A directory holding the stand-in `claude` (`prefix` runs first), to put first on PATH."""
    agent_dir = work / "bin"
    agent_dir.mkdir(exist_ok=True)
    (agent_dir / "claude").write_text("#!/bin/sh\n" + prefix + AGENT_SCRIPT)
    (agent_dir / "claude").chmod(0o755)
    return agent_dir


def orchestrate(repo: Path, prompts: list[str], k: int, extra: tuple[str, ...] = (), *,
                agent_dir: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    # A HOME with no subscription login, so `--claude-config auto` gives each agent its own directory.
    home = repo.parent / "home"
    home.mkdir(exist_ok=True)
    env = dict(GIT_ENV, HOME=str(home), **(env or {}))
    if agent_dir is not None:
        env["PATH"] = f"{agent_dir}{os.pathsep}{os.environ['PATH']}"
    return subprocess.Popen([PYTHON, "-m", "orchestrator", "run", *prompts, "--max-parallel", str(k),
                             "--json", "--quiet", *extra],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_run(proc: subprocess.Popen[str], n: int) -> None:
    out, err = proc.communicate()
    try:
        result = json.loads(out)
    except ValueError as exc:
        raise RuntimeError(f"orchestrator printed no JSON (rc {proc.returncode}): {err[-2000:]}") from exc
    if result.get("successful_tasks") != n:
        failed = [(t["task_id"], t.get("status"), t.get("error_message")) for t in result.get("tasks", [])
                  if t.get("status") != "completed"]
        raise RuntimeError(f"only {result.get('successful_tasks')}/{n} tasks completed: {failed} {err[-2000:]}")


class OtlpSink:
    """An OTLP/HTTP endpoint on 127.0.0.1 that accepts every export and counts the requests: what
    a collector costs the run is not what is measured, only what exporting costs it."""

    def __init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpSink:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class OverheadResult:
    tasks: int
    slots: int
    orchestrator: list[float] = field(default_factory=list)  # the default: a config directory per agent
    shared: list[float] = field(default_factory=list)  # --claude-config shared: launches spaced 0.5 s
    # --otel, exporting to a local OTLP/HTTP sink: wall seconds and export requests (empty without the extra).
    traced: list[float] = field(default_factory=list)
    exports: list[int] = field(default_factory=list)
    shell: list[float] = field(default_factory=list)
    # Per run with the default spacing: median seconds per phase (benchmarks.phases), and from
    # the CLI's start to the first agent process.
    phases: list[dict[str, float]] = field(default_factory=list)
    first_agent: list[float] = field(default_factory=list)


def run_noop(work: Path, n: int, k: int, reps: int) -> OverheadResult:
    out = OverheadResult(tasks=n, slots=k)
    agent_dir = install_agent(work)
    for rep in range(reps):
        repo = make_small_repo(work / f"orch-{rep}")
        prompts = _prompts(repo, n)
        t0, epoch0 = time.perf_counter(), time.time()
        proc = orchestrate(repo, prompts, k, agent_dir=agent_dir)
        check_run(proc, n)
        out.orchestrator.append(time.perf_counter() - t0)
        phases = read_phases(next((repo / ".gadugi" / "runs").iterdir()))
        out.phases.append(phases.medians())
        out.first_agent.append(phases.time_to_first_agent(epoch0) or float("nan"))
        shutil.rmtree(repo)

        if sdk_missing() is None:
            repo = make_small_repo(work / f"orch-otel-{rep}")
            prompts = _prompts(repo, n)
            with OtlpSink() as sink:
                t0 = time.perf_counter()
                proc = orchestrate(repo, prompts, k, ("--otel",), agent_dir=agent_dir,
                                   env={"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url})
                check_run(proc, n)
                out.traced.append(time.perf_counter() - t0)
                out.exports.append(sink.requests)
            shutil.rmtree(repo)

        repo = make_small_repo(work / f"orch0-{rep}")
        prompts = _prompts(repo, n)
        t0 = time.perf_counter()
        proc = orchestrate(repo, prompts, k, ("--claude-config", "shared"), agent_dir=agent_dir)
        check_run(proc, n)
        out.shared.append(time.perf_counter() - t0)
        shutil.rmtree(repo)

        repo = make_small_repo(work / f"shell-{rep}")
        (repo / "wt").mkdir()
        ids = "".join(f"t{i:02d}\n" for i in range(n))
        t0 = time.perf_counter()
        subprocess.run(["xargs", "-P", str(k), "-I{}", "sh", "-c", SHELL_TASK, "sh", "{}"], cwd=repo,
                       input=ids, text=True, env=GIT_ENV, check=True)
        out.shell.append(time.perf_counter() - t0)
        shutil.rmtree(repo)
    return out


@dataclass
class IdleResult:
    agents: int
    sleep: float
    wall: float
    cpu_total: float
    steady_cpu_percent: float
    steady_seconds: float
    peak_rss: int
    peak_wm_rss_total: int
    peak_wm_uss_total: int  # what the WorkflowManagers cost beyond pages they share with the launcher
    wm_cpu_percent: float


def _workflow_managers(orchestrator: psutil.Process) -> list[psutil.Process]:
    """The orchestrator's WorkflowManagers: children of its launcher, or its own children where
    one was spawned the plain way."""
    found = []
    for kid in orchestrator.children():
        if "orchestrator.task.forkserver" in " ".join(kid.cmdline()):
            found += kid.children()
        else:
            found.append(kid)
    return found


def run_idle(work: Path, agents: int, sleep: float) -> IdleResult:
    repo = make_small_repo(work / "idle")
    prompts = _prompts(repo, agents)
    (work / "home").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    proc = orchestrate(repo, prompts, agents, ("--agent-cmd", f"sleep {sleep:g}"))
    me = psutil.Process(proc.pid)
    peak = peak_wm = peak_uss = 0
    steady: list[tuple[float, float, float]] = []  # (wall, orchestrator cpu, WM cpu) while all agents run
    wms: dict[int, psutil.Process] = {}
    while proc.poll() is None:
        try:
            cpu = me.cpu_times()
            peak = max(peak, me.memory_info().rss)
            kids = _workflow_managers(me)
            for kid in kids:
                wms.setdefault(kid.pid, kid)
            alive = [p for p in wms.values() if p.is_running()]
            wm_rss = sum(p.memory_info().rss for p in alive)
            wm_cpu = sum(sum(p.cpu_times()[:2]) for p in alive)
            peak_wm = max(peak_wm, wm_rss)
            if len(kids) == agents:
                peak_uss = max(peak_uss, sum(p.memory_full_info().uss for p in alive))
            if len(kids) == agents:
                steady.append((time.perf_counter(), cpu.user + cpu.system, wm_cpu))
        except psutil.Error:
            pass
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    check_run(proc, agents)
    # The orchestrator's own CPU over its life, from the kernel's accounting of the exited child.
    total = steady[-1][1] if steady else float("nan")
    if len(steady) >= 2:
        span = steady[-1][0] - steady[0][0]
        cpu_pct = 100 * (steady[-1][1] - steady[0][1]) / span
        wm_pct = 100 * (steady[-1][2] - steady[0][2]) / span / agents
    else:
        span, cpu_pct, wm_pct = 0.0, float("nan"), float("nan")
    shutil.rmtree(repo)
    return IdleResult(agents=agents, sleep=sleep, wall=wall, cpu_total=total, steady_cpu_percent=cpu_pct,
                      steady_seconds=span, peak_rss=peak, peak_wm_rss_total=peak_wm, peak_wm_uss_total=peak_uss,
                      wm_cpu_percent=wm_pct)
