"""The fake `claude` end to end: every mode through AgentProcess and the real stream parser, in tmp
git repositories, with the fake found on PATH like the real CLI."""
from __future__ import annotations

import itertools
import json
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from orchestrator.agents.claude import ClaudeStreamParser, build_command
from orchestrator.models import AgentOutcome
from orchestrator.process import AgentProcess

from conftest import wait_until

MakeRepo = Callable[..., Path]
FAST = {"interrupt_timeout": 0.3, "terminate_timeout": 0.3}
PATIENT = {"interrupt_timeout": 30.0, "terminate_timeout": 30.0}  # for a fake that does stop at SIGINT


@dataclass
class Run:
    outcome: AgentOutcome
    proc: AgentProcess
    parser: ClaudeStreamParser
    stderr: str
    lines: int = 0
    steps: list[str] = field(default_factory=list)


@pytest.fixture
def run_fake(tmp_path: Path, path_with: str) -> Callable[..., Run]:
    def _run(
        repo: Path,
        prompt: str,
        *,
        task: str = "t1",
        argv: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        stop_after: Callable[[ClaudeStreamParser], bool] | None = None,
        on_line: Callable[[str], None] | None = None,
        graces: dict[str, float] = FAST,
    ) -> Run:
        logs = tmp_path / f"logs-{task}"
        logs.mkdir(exist_ok=True)
        prompt_file = logs / "prompt.md"
        prompt_file.write_text(prompt)
        full_env = {**os.environ, "PATH": path_with, "GADUGI_TASK_ID": task, **(env or {})}
        proc = AgentProcess(
            list(argv) if argv is not None else build_command(),
            cwd=repo,
            env=full_env,
            stdin_path=prompt_file,
            stderr_log=logs / "stderr.log",
            stdout_log=logs / "stdout.jsonl",
            scan_interval=0.05,
        ).start()
        parser = ClaudeStreamParser()
        run = Run(AgentOutcome(), proc, parser, "")
        for line in proc.lines():
            run.lines += 1
            parser.feed(line)
            if on_line is not None:
                on_line(line)
            if stop_after is not None and stop_after(parser):
                proc.stop("test stop", log=run.steps.append, **graces)
                break
        code = proc.wait(10)
        proc.close()
        run.stderr = (logs / "stderr.log").read_text()
        run.outcome = parser.outcome(code, stderr=run.stderr)
        return run

    return _run


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def head_subject(repo: Path) -> str:
    return git(repo, "log", "-1", "--format=%s")


def test_commit_lands_in_git_log(make_repo: MakeRepo, run_fake: Callable[..., Run], tmp_path: Path) -> None:
    repo = make_repo()
    log = tmp_path / "fake.log"
    run = run_fake(repo, "Add a feature.\n", task="feat-a", env={"FAKE_CLAUDE_LOG": str(log)})
    assert run.outcome.success, run.outcome.message
    assert head_subject(repo) == "feat-a: fake change"
    assert (repo / "fake" / "feat-a.txt").read_text() == "feat-a: fake change\n"
    assert git(repo, "status", "--porcelain") == ""
    assert run.outcome.num_turns == 2
    assert run.outcome.tokens.total > 10000
    assert run.outcome.cost_usd is not None and 0 < run.outcome.cost_usd < 1
    assert run.outcome.session_id and len(run.outcome.session_id) == 36
    assert run.outcome.last_tool is not None and run.outcome.last_tool.startswith("Bash git add")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["event"] for r in records] == ["start", "end"]
    assert records[0]["task"] == "feat-a" and records[0]["cwd"] == str(repo)
    assert records[1]["exit_code"] == 0


def test_directive_params_and_max_turns(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    repo = make_repo()
    run = run_fake(repo, "# Task\n\nfake-claude: commit write=src/out.txt\nfake-claude: fail\n")
    assert run.outcome.success
    assert (repo / "src" / "out.txt").exists()
    repo2 = make_repo()
    run = run_fake(repo2, "fake-claude: commit\n", argv=build_command(max_turns=1))
    assert run.outcome.failure == "max_turns"
    assert head_subject(repo2) == "initial"


def test_mode_from_env_when_prompt_has_none(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    repo = make_repo()
    run = run_fake(repo, "plain prompt", env={"FAKE_CLAUDE_MODE": "no-change"})
    assert run.outcome.success
    assert head_subject(repo) == "initial"


def test_edit_leaves_a_dirty_tree(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    repo = make_repo()
    run = run_fake(repo, "fake-claude: edit write=notes.md\n")
    assert run.outcome.success
    assert head_subject(repo) == "initial"
    assert git(repo, "status", "--porcelain") == "?? notes.md"


def test_no_change(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    repo = make_repo()
    run = run_fake(repo, "fake-claude: no-change\n")
    assert run.outcome.success
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("mode", "failure", "exit_code"),
    [
        ("fail", "agent_error", 1),
        ("wrong-subtype", "max_turns", 0),
        ("no-result", "crashed", 0),
        ("crash", "crashed", 3),
        ("auth", "auth", 1),
        ("rate-limited", "rate_limited", 1),
    ],
)
def test_failure_modes(
    make_repo: MakeRepo, run_fake: Callable[..., Run], mode: str, failure: str, exit_code: int
) -> None:
    run = run_fake(make_repo(), f"fake-claude: {mode}\n")
    assert run.outcome.exit_code == exit_code
    assert not run.outcome.success
    assert run.outcome.failure == failure, run.outcome.message


def test_auth_message_tells_how_to_log_in(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    run = run_fake(make_repo(), "fake-claude: auth\n")
    assert "/login" in run.outcome.message and "ANTHROPIC_API_KEY" in run.outcome.message
    assert run.parser.auth_failed


def test_overloaded_then_recovers(make_repo: MakeRepo, run_fake: Callable[..., Run], tmp_path: Path) -> None:
    repo = make_repo()
    prompt = f"fake-claude: overloaded times=2 state={tmp_path / 'count'}\n"
    first = run_fake(repo, prompt)
    second = run_fake(repo, prompt)
    third = run_fake(repo, prompt)
    assert [r.outcome.failure for r in (first, second, third)] == ["api_error", "api_error", "none"]
    assert first.parser.api_error_status == 529
    assert head_subject(repo) == "t1: fake change"


def test_slow_emits_events_while_it_works(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    stamps: list[float] = []
    run = run_fake(make_repo(), "fake-claude: slow seconds=1\n", on_line=lambda _: stamps.append(time.monotonic()))
    assert run.outcome.success
    # Several events (one per tick of its work), not a single burst at the end; how far apart
    # they land depends on the machine's load, so only their number is asserted.
    assert len(stamps) >= 6


def test_slow_until_a_file_naps_between_events_past_its_seconds(
    make_repo: MakeRepo, run_fake: Callable[..., Run], tmp_path: Path
) -> None:
    # Waiting for a file has no deadline, so `seconds` (here already past at the start) must not
    # shorten the nap: a fake that spun would flood its stream and burn a core for as long as a
    # test keeps it waiting. The nap is a lower bound (load only lengthens it), so this cannot flake.
    release = tmp_path / "release"
    stamps: list[float] = []

    def on_line(line: str) -> None:
        if "Still working" in line:
            stamps.append(time.monotonic())
            if len(stamps) == 4:
                release.touch()

    run = run_fake(make_repo(), f"fake-claude: slow seconds=0 until={release}\n", on_line=on_line)
    assert run.outcome.success
    assert len(stamps) >= 4  # more if this reader lagged a nap behind the fake
    assert min(b - a for a, b in itertools.pairwise(stamps)) >= 0.15


def test_flood_is_drained_with_bounded_memory(
    make_repo: MakeRepo, run_fake: Callable[..., Run], tmp_path: Path
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    run = run_fake(make_repo(), "fake-claude: flood mb=50\n")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert run.outcome.success, run.outcome.message
    assert run.lines > 700
    assert (tmp_path / "logs-t1" / "stdout.jsonl").stat().st_size > 50 * 1024 * 1024
    assert grown_mib < 30, f"reader grew by {grown_mib:.0f} MiB"


def test_hang_is_stopped_by_sigint(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    run = run_fake(make_repo(), "fake-claude: hang\n", stop_after=lambda p: p.session_id is not None, graces=PATIENT)
    assert run.outcome.exit_code == 130  # the fake exits like a CLI on Ctrl-C
    assert run.outcome.failure == "crashed"
    assert any("SIGINT" in step for step in run.steps)
    assert not any("SIGTERM" in step for step in run.steps)


def test_ignore_sigterm_escalates_to_sigkill(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    run = run_fake(make_repo(), "fake-claude: ignore-sigterm\n", stop_after=lambda p: p.events >= 1)
    assert run.outcome.exit_code == -signal.SIGKILL
    assert run.outcome.failure == "killed"
    signals = [sig for step in run.steps for sig in ("SIGINT", "SIGTERM", "SIGKILL") if f"{sig} to process group" in step]
    assert signals == ["SIGINT", "SIGTERM", "SIGKILL"]


def test_grandchild_in_its_own_session_does_not_survive(
    make_repo: MakeRepo, run_fake: Callable[..., Run], tmp_path: Path
) -> None:
    marker = tmp_path / "grandchild.pid"
    tree: dict[int, float] = {}

    def stop_when_spawned(parser: ClaudeStreamParser) -> bool:
        del parser
        wait_until(lambda: marker.exists() and marker.read_text(), "the grandchild's pid file")
        grandchild = psutil.Process(int(marker.read_text()))
        agent = grandchild.parent()
        assert agent is not None
        assert os.getsid(grandchild.pid) == grandchild.pid != os.getsid(agent.pid)  # escaped
        tree.update({grandchild.pid: grandchild.create_time(), agent.pid: agent.create_time()})
        return True

    run = run_fake(make_repo(), f"fake-claude: grandchild grandchild={marker}\n", stop_after=stop_when_spawned)
    assert run.proc.pid in tree
    assert any("leftover descendant" in step for step in run.steps)
    wait_until(lambda: not [pid for pid, created in tree.items() if _alive(pid, created)], "the whole tree gone")


def _alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - created) < 0.05
    except psutil.NoSuchProcess:
        return False


def test_refuses_stream_json_without_verbose(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    run = run_fake(make_repo(), "hi", argv=["claude", "-p", "--output-format", "stream-json"])
    assert run.outcome.exit_code == 1 and run.outcome.events == 0
    assert "requires --verbose" in run.stderr
    assert run.outcome.failure == "agent_error" and "refused" in run.outcome.message


def test_unknown_option_is_refused(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    run = run_fake(make_repo(), "hi", argv=build_command(extra_args=["--frobnicate"]))
    assert run.stderr.strip() == "error: unknown option '--frobnicate'"
    assert run.outcome.failure == "agent_error" and "refused" in run.outcome.message


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal only happens as root")
def test_skip_permissions_refused_as_root(make_repo: MakeRepo, run_fake: Callable[..., Run]) -> None:
    run = run_fake(make_repo(), "hi", argv=build_command(extra_args=["--dangerously-skip-permissions"]))
    assert "cannot be used with root/sudo privileges" in run.stderr
    assert run.outcome.failure == "agent_error" and "non-root" in run.outcome.message
    sandboxed = run_fake(make_repo(), "fake-claude: no-change\n",
                         argv=build_command(permission_mode="bypassPermissions"), env={"IS_SANDBOX": "1"})
    assert sandboxed.outcome.success


def test_parallel_fakes_log_overlapping_runs(
    make_repo: MakeRepo, tmp_path: Path, path_with: str
) -> None:
    log = tmp_path / "fake.log"
    procs = []
    for task in ("a", "b", "c"):
        repo = make_repo(name=f"repo-{task}")
        prompt = tmp_path / f"{task}.md"
        prompt.write_text("fake-claude: slow seconds=1.5\n")
        env = {**os.environ, "PATH": path_with, "GADUGI_TASK_ID": task, "FAKE_CLAUDE_LOG": str(log)}
        procs.append(AgentProcess(build_command(), cwd=repo, env=env, stdin_path=prompt,
                                  stderr_log=tmp_path / f"{task}.err").start())
    for proc in procs:  # drained, so no fake blocks on a full pipe
        threading.Thread(target=lambda proc=proc: list(proc.lines()), daemon=True).start()
    assert [proc.wait(20) for proc in procs] == [0, 0, 0]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    starts = {r["task"]: r["ts"] for r in records if r["event"] == "start"}
    ends = {r["task"]: r["ts"] for r in records if r["event"] == "end"}
    assert set(starts) == set(ends) == {"a", "b", "c"}
    assert max(starts.values()) < min(ends.values())  # they really ran at the same time


def test_text_and_json_output_formats(make_repo: MakeRepo, path_with: str) -> None:
    repo = make_repo()
    env = {**os.environ, "PATH": path_with}
    out = subprocess.run(["claude", "-p", "--output-format", "json"], input="fake-claude: no-change\n",
                         capture_output=True, text=True, cwd=repo, env=env, check=True).stdout
    assert json.loads(out)["type"] == "result"
    out = subprocess.run(["claude", "-p", "fake-claude: no-change"], capture_output=True, text=True,
                         cwd=repo, env=env, check=True).stdout
    assert out.strip() == "Nothing needs to change."
