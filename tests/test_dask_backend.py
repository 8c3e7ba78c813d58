"""The Dask backend end to end: real clusters (in-process and with worker processes), real git,
the fake `claude` as the agent, driven through OrchestratorCoordinator."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import build_repo, fake_claude_dir, git, path_with_fake_claude, wait_until
from test_e2e import write_prompt
from test_reliability import assert_gone

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402 (only once distributed is known to be there)
from orchestrator import OrchestrationConfig, OrchestratorCoordinator  # noqa: E402
from orchestrator.backends.dask import loopback_http  # noqa: E402
from orchestrator.backends.factory import make_backend  # noqa: E402
from orchestrator.errors import InputError  # noqa: E402
from orchestrator.models import OrchestrationResult  # noqa: E402
from orchestrator.observe.events import EngineEvent, PhaseChanged, Retrying, RunStarted  # noqa: E402

FAST: dict[str, Any] = {
    "interrupt_timeout": 0.3, "terminate_timeout": 0.3, "backoff_base": 0.05, "backoff_cap": 0.1,
    "launch_stagger": 0.0, "min_free_memory": 0, "min_free_disk": 0,
}

# a ─┬─ b          e ── f
# c ─┴─ d ──┬── h ─┘        g (alone)
EIGHT = {
    "a": ("", "commit"), "b": ("depends_on: [a]", "commit"), "c": ("", "commit"),
    "d": ("depends_on: [a, c]", "commit"), "e": ("", "commit"), "f": ("depends_on: [e]", "commit"),
    "g": ("", "commit"), "h": ("depends_on: [d, f]", "commit"),
}


def nanny_environ_restorer() -> Callable[[], None]:
    """What puts back, as they are now, the variables a nanny sets in our own environment whenever
    it spawns a worker (a restart too), and where the fake claude logs."""
    spawned = [*(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}), "__DASK_PARENT_PID",
               "PYTHONHASHSEED", "FAKE_CLAUDE_LOG"]
    saved = {name: os.environ.get(name) for name in spawned}

    def restore() -> None:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return restore


@contextmanager
def started_cluster(agent_log: Path, local_directory: Path) -> Iterator[Any]:
    """Two worker processes with two agent slots each; workers inherit the environment they are
    started in, as real ones have their own (here: where the fake claude logs)."""
    restore = nanny_environ_restorer()
    os.environ["FAKE_CLAUDE_LOG"] = str(agent_log)
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = distributed.LocalCluster(
                processes=True, n_workers=2, threads_per_worker=2, resources={"agent": 2},
                local_directory=str(local_directory), **loopback_http(),
            )
    finally:
        restore()  # the workers have theirs; a test after this starts from our own again
    try:
        yield cluster
    finally:
        cluster.close()
        restore()  # a worker the nanny restarted meanwhile set them again


@pytest.fixture(scope="module")
def _shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """One cluster for the tests that leave its workers alive: starting one costs ~2 s of CPU.
    Its agents log to a link that each test points at its own log."""
    where = tmp_path_factory.mktemp("dask-cluster")
    with started_cluster(where / "agents.log", where / "dask") as cluster:
        yield cluster, where / "agents.log"


@pytest.fixture
def proc_cluster(_shared_cluster: tuple[Any, Path], tmp_path: Path) -> Iterator[Any]:
    """The shared cluster, its agents logging to this test's `tmp_path / "agents.log"`."""
    cluster, link = _shared_cluster
    link.unlink(missing_ok=True)
    link.symlink_to(tmp_path / "agents.log")
    with distributed.Client(cluster, set_as_default=False) as client:
        assert len(client.scheduler_info()["workers"]) == 2, "a test before this one lost a worker"
    yield cluster
    link.unlink()


@pytest.fixture
def own_proc_cluster(tmp_path: Path) -> Iterator[Any]:
    """A cluster of this test's own, for one that kills a worker."""
    with started_cluster(tmp_path / "agents.log", tmp_path / "dask") as cluster:
        yield cluster


def prompts(repo: Path, specs: dict[str, tuple[str, str]]) -> list[Path]:
    return [write_prompt(repo, f"{tid}.md", f"id: {tid}\n{front}", f"# Task {tid}\nfake-claude: {mode}")
            for tid, (front, mode) in specs.items()]


def config(path_with: str, log: Path, **extra: Any) -> OrchestrationConfig:
    env = dict(os.environ, PATH=path_with, FAKE_CLAUDE_LOG=str(log))
    return OrchestrationConfig(max_parallel=4, env=env, **{**FAST, **extra})


def branches(repo: Path, base: str) -> dict[str, tuple[int, str]]:
    """branch -> (commits since base, tree): equal trees mean the same files, byte for byte."""
    names = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/gadugi/").split()
    return {b: (int(git(repo, "rev-list", "--count", f"{base}..{b}")), git(repo, "rev-parse", f"{b}^{{tree}}"))
            for b in names}


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def statuses(result: OrchestrationResult) -> dict[str, str]:
    return {t.task_id: t.status.value for t in result.tasks}


FILES = {"src/app.py": "print('app')\n", "README.md": "# demo\n"}


@pytest.fixture(scope="module")
def local_eight(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, tuple[int, str]], str, float]:
    """The eight prompts run once by the local backend: the reference both Dask runs must match
    (each branch's commits and tree, and the tree they start from), and its wall time."""
    where = tmp_path_factory.mktemp("local-eight")
    repo = build_repo(where / "local", FILES)
    path = path_with_fake_claude(fake_claude_dir(where / "fakebin"))
    log = where / "agents.log"
    t0 = time.monotonic()
    local = OrchestratorCoordinator(config(path, log), repo).orchestrate(prompts(repo, EIGHT))
    wall = time.monotonic() - t0
    assert local.successful_tasks == 8
    assert sorted(r["task"] for r in records(log) if r["event"] == "start") == sorted(EIGHT)
    base = git(repo, "rev-parse", "HEAD")
    return branches(repo, base), git(repo, "rev-parse", "HEAD^{tree}"), wall


@pytest.mark.parametrize("where", ["in-process", "processes"])
def test_eight_prompts_same_branches_as_local(where: str, local_eight: tuple[dict[str, tuple[int, str]], str, float],
                                              make_repo, path_with: str, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    expected, base_tree, local_wall = local_eight
    dask_repo = make_repo(FILES, name="dask")
    log = tmp_path / "agents.log"
    if where == "in-process":
        cfg = config(path_with, log, backend="dask-local")
    else:
        cluster = request.getfixturevalue("proc_cluster")
        cfg = config(path_with, log, backend="dask", scheduler=cluster.scheduler_address)
    t0 = time.monotonic()
    remote = OrchestratorCoordinator(cfg, dask_repo).orchestrate(prompts(dask_repo, EIGHT))
    dask_wall = time.monotonic() - t0
    assert remote.successful_tasks == 8, [
        (t.task_id, t.status.value, t.error_message) for t in remote.tasks if t.status.value != "completed"]
    assert git(dask_repo, "rev-parse", "HEAD^{tree}") == base_tree
    assert len(expected) == 8
    assert branches(dask_repo, git(dask_repo, "rev-parse", "HEAD")) == expected
    # Every task ran exactly once, and the registry and logs are filled in here, not on workers.
    starts = [r["task"] for r in records(log) if r["event"] == "start"]
    assert sorted(starts) == sorted(EIGHT)
    run_dir = next((dask_repo / ".gadugi" / "runs").iterdir())
    assert "agent" in (run_dir / "tasks" / "h" / "workflow_manager.log").read_text()
    assert (run_dir / "tasks" / "h" / "agent.jsonl").stat().st_size > 0
    registry = json.loads((dask_repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())
    assert {v["status"] for v in registry["processes"].values()} == {"completed"}
    assert not git(dask_repo, "for-each-ref", "refs/gadugi/"), "no scratch refs left behind"
    print(f"\n[{where}] local {local_wall:.2f}s, dask {dask_wall:.2f}s for 8 tasks")


def test_worker_killed_mid_task_is_lost_then_retried(own_proc_cluster: Any, make_repo, path_with: str,
                                                     tmp_path: Path) -> None:
    proc_cluster = own_proc_cluster
    repo = make_repo()
    log = tmp_path / "agents.log"
    # The slow agent works until `release` exists, which the test makes only once the first one is
    # gone: the first cannot finish on its own, and the retry does not wait out a clock.
    release = tmp_path / "release"
    specs = {"slow": ("", f"slow until={release}"), "x": ("", "commit"), "y": ("depends_on: [x]", "commit")}
    files = prompts(repo, specs)
    cfg = config(path_with, log, backend="dask", scheduler=proc_cluster.scheduler_address, retries=2)
    out: dict[str, OrchestrationResult] = {}
    runner = threading.Thread(target=lambda: out.update(r=OrchestratorCoordinator(cfg, repo).orchestrate(files)))
    runner.start()
    wait_until(lambda: any(r["task"] == "slow" for r in records(log)), "the slow agent's start record")
    first = next(r for r in records(log) if r["task"] == "slow")
    agent = psutil.Process(first["pid"])
    # agent <- WorkflowManager <- the worker's launcher <- the Dask worker process
    launcher = agent.parent().parent()
    assert "orchestrator.task.forkserver" in " ".join(launcher.cmdline()), "forked by the worker's launcher"
    worker_pid = launcher.parent().pid
    with distributed.Client(proc_cluster, set_as_default=False) as client:
        assert worker_pid in client.run(os.getpid).values()
    os.kill(worker_pid, signal.SIGKILL)
    # The guard takes the orphaned agent down with its worker (a broken guard hangs here and fails).
    assert_gone({first["pid"]})
    release.touch()
    runner.join(timeout=60)
    result = out["r"]
    tasks = {t.task_id: t for t in result.tasks}
    assert result.successful_tasks == 3, [(t.task_id, t.attempts, t.error_message) for t in result.tasks]
    assert tasks["slow"].attempts == 2
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    report = json.loads((run_dir / "report.json").read_text())
    assert [a["failure"] for a in report["task_results"]["slow"]["attempts"]] == ["lost"]
    # The guard took the orphaned agent down with its worker: it never finished on its own. The
    # worker's launcher ended with its socket.
    assert_gone({first["pid"], launcher.pid})
    ends = [r for r in records(log) if r["task"] == "slow" and r["event"] == "end"]
    assert len(ends) == 1 and ends[0]["pid"] != first["pid"]


@pytest.mark.parametrize("where", ["in-process", "processes"])
def test_cancel_and_timeout_stop_the_agent_on_the_worker(where: str, make_repo, path_with: str, tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    repo = make_repo()
    log = tmp_path / "agents.log"
    # c ends only by the cancel, sent when its agent runs; t only by its own deadline, counted from
    # its start on the worker. No run-wide clock, so a slow worker cannot turn c's cancel into a timeout.
    files = prompts(repo, {"c": ("", "hang"), "t": ("timeout: 3s", "hang")})
    if where == "in-process":
        cfg = config(path_with, log, backend="dask-local", retries=0)
    else:
        cluster = request.getfixturevalue("proc_cluster")
        cfg = config(path_with, log, backend="dask", scheduler=cluster.scheduler_address, retries=0)
    run_dirs: list[Path] = []

    def observer(event: EngineEvent) -> None:
        if isinstance(event, RunStarted):
            run_dirs.append(event.run_dir)
        if event == PhaseChanged(task_id="c", phase="agent"):
            control = run_dirs[0] / "control"
            control.mkdir(exist_ok=True)
            (control / "cancel-c").write_text("")

    result = OrchestratorCoordinator(cfg, repo).orchestrate(files, observer=observer)
    assert statuses(result) == {"c": "cancelled", "t": "timeout"}
    for tid in ("c", "t"):
        wm_log = (run_dirs[0] / "tasks" / tid / "workflow_manager.log").read_text()
        assert "SIGINT" in wm_log, wm_log
    assert_gone({r["pid"] for r in records(log)})
    assert len(records(log)) >= 2


@pytest.mark.parametrize("where", ["in-process", "processes"])
def test_base_only_in_the_local_repository(where: str, make_repo, path_with: str, tmp_path: Path,
                                           request: pytest.FixtureRequest) -> None:
    repo = make_repo({"README.md": "# pushed\n"})
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    git(repo, "fetch", "-q", "origin")
    (repo / "local.txt").write_text("only here\n")
    git(repo, "add", "local.txt")
    git(repo, "commit", "-q", "-m", "not pushed")
    base = git(repo, "rev-parse", "HEAD")
    assert not git(repo, "branch", "-r", "--contains", base)
    log = tmp_path / "agents.log"
    files = prompts(repo, {"a": ("", "commit"), "b": ("depends_on: [a]", "commit")})
    if where == "in-process":
        cfg = config(path_with, log, backend="dask-local")  # same machine: fetches origin by path
    else:
        cluster = request.getfixturevalue("proc_cluster")
        cfg = config(path_with, log, backend="dask", scheduler=cluster.scheduler_address)
    result = OrchestratorCoordinator(cfg, repo).orchestrate(files)
    assert result.successful_tasks == 2, statuses(result)
    for branch in ("gadugi/a", "gadugi/b"):
        git(repo, "merge-base", "--is-ancestor", base, branch)
        assert git(repo, "show", f"{branch}:local.txt") == "only here"
    assert git(repo, "show", "gadugi/b:fake/a.txt") == "a: fake change"


def test_missing_extra_and_bad_scheduler(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo()
    with pytest.raises(InputError, match="--scheduler"):
        make_backend("dask", {}, project_root=repo)
    with pytest.raises(InputError, match="unknown backend"):
        make_backend("ray", {}, project_root=repo)
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    with pytest.raises(InputError, match=r"pip install 'gadugi-orchestrator\[dask\]'"):
        make_backend("dask-local", {}, project_root=repo)


def _listening(ports_before: set[tuple[str, int]] | None = None) -> set[tuple[str, int]]:
    """(address, port) of every socket this process and its children listen on."""
    me = psutil.Process()
    found = set()
    for proc in (me, *me.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            found |= {(c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet") if c.status == psutil.CONN_LISTEN}
    return found - (ports_before or set())


@pytest.mark.parametrize("processes", [False, True], ids=["in-process", "processes"])
def test_the_local_cluster_listens_on_the_loopback_only(processes: bool, make_repo, recwarn: pytest.WarningsRecorder) -> None:
    """dask-local is this run's own cluster: nothing of it is reachable from the network, and it
    takes no fixed port (8787 is where a user's own Dask dashboard lives)."""
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        held.bind(("127.0.0.1", 8787))
        held.listen()
    except OSError:  # another test's cluster holds it already: the case this is about
        held.close()
    before = _listening()
    restore = nanny_environ_restorer()
    try:
        backend = make_backend("dask-local", dict(os.environ), project_root=make_repo(), processes=processes,
                               n_workers=1)
        try:
            opened = _listening(before)
        finally:
            backend.close()
    finally:
        held.close()
        restore()
    assert opened, "the cluster listens somewhere"
    assert {ip for ip, _ in opened} <= {"127.0.0.1", "::1"}, opened
    assert 8787 not in {port for _, port in opened}
    assert not [w for w in recwarn if "already in use" in str(w.message)]


def test_version_skew_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.version
    from orchestrator.backends.dask import check_versions

    with distributed.LocalCluster(processes=False, n_workers=1, **loopback_http()) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        check_versions(client)
        monkeypatch.setattr(orchestrator.version, "__version__", "9.9.9")
        # The in-process worker shares our modules, so its answer is patched to an older release.
        monkeypatch.setattr("orchestrator.backends.dask.worker_versions", lambda: {"orchestrator": "0.0.1"})
        with pytest.raises(InputError, match=r"gadugi-orchestrator 9\.9\.9, worker .* has 0\.0\.1"):
            check_versions(client)


def start_worker(address: str, home: Path, path_with: str, log: Path, name: str) -> subprocess.Popen[bytes]:
    """A worker process of its own, as on another machine: its own HOME (so its own agent
    sessions), the fake claude on its PATH."""
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_CLAUDE")}
    env.update(HOME=str(home), PATH=path_with, FAKE_CLAUDE_LOG=str(log))
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
         "--resources", "agent=1", "--name", name, "--no-dashboard", "--no-nanny", "--local-directory", str(home / "dask")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_retry_on_a_worker_without_the_session_starts_afresh(make_repo, path_with: str, tmp_path: Path) -> None:
    """Sessions are worker-local: attempt 1 crashes on worker A; A is retired while the engine
    schedules the retry, which lands on worker B, whose HOME has no such session."""
    repo = make_repo()
    log = tmp_path / "agents.log"
    files = prompts(repo, {"c": ("", f"crash-once state={tmp_path / 'c.state'}")})
    cluster = distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                                       **loopback_http())
    workers = {"a": start_worker(cluster.scheduler_address, tmp_path / "home-a", path_with, log, "a")}
    try:
        with distributed.Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)

            def observer(event: EngineEvent) -> None:
                # Runs on the engine's thread, before the retry is submitted: a deterministic switch.
                if isinstance(event, Retrying):
                    workers["b"] = start_worker(cluster.scheduler_address, tmp_path / "home-b", path_with, log, "b")
                    client.wait_for_workers(2, timeout=60)
                    client.retire_workers(names=["a"], close_workers=True)
                    workers["a"].wait(timeout=60)

            # The agents' state in each worker's HOME, as on two machines: a config directory per
            # task would sit in the run directory these same-machine workers share.
            cfg = config(path_with, log, backend="dask", scheduler=cluster.scheduler_address, retries=1,
                         claude_config="shared")
            result = OrchestratorCoordinator(cfg, repo).orchestrate(files, observer=observer)
        task = result.tasks[0]
        assert task.status.value == "completed" and task.attempts == 2, task.error_message
        starts = [(r["mode"], Path(r["cwd"]).parts) for r in records(log) if r["event"] == "start"]
        assert [mode for mode, _ in starts] == ["crash-once", "resume-missing", "crash-once"], starts
        assert (tmp_path / "home-a" / ".fake-claude" / "sessions").is_dir()
        assert git(repo, "log", "-1", "--format=%s", task.branch).startswith("c")
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        cluster.close()


@pytest.mark.parametrize("how", ["forked", "spawned"])
def test_a_workers_workflow_manager_runs_in_its_session_holding_its_attempt_lock(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a worker the WorkflowManager is forked by the worker's launcher, or spawned when there
    is none; either way in its own session, holding the attempt lock until it exits, waited for."""
    from orchestrator.backends.remote import task as remote_task
    from orchestrator.task import attempt_lock

    monkeypatch.setattr(remote_task, "_launcher", None)
    if how == "spawned":
        monkeypatch.setattr(remote_task.Launcher, "start", staticmethod(lambda *args, **kwargs: None))
    request, lock = tmp_path / "request.json", tmp_path / "wm-1.lock"
    os.mkfifo(request)  # it blocks reading its request until the test writes it
    with (tmp_path / "stderr.log").open("ab") as stderr:
        wm = remote_task._start_workflow_manager(request, dict(os.environ), stderr.fileno(), lock)
    try:
        assert os.getsid(wm.pid) == wm.pid
        parent = " ".join(psutil.Process(wm.pid).parent().cmdline())
        assert ("orchestrator.task.forkserver" in parent) == (how == "forked")
        assert attempt_lock.is_held(lock) and not wm.finished()
    finally:
        with request.open("w") as fifo:
            fifo.write("{}")  # not a valid request: it says so and exits
    assert wm.stdout.read() == b""
    wm.wait()
    assert wm.finished() and not attempt_lock.is_held(lock)
    assert "request" in (tmp_path / "stderr.log").read_text().lower()
