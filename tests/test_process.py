"""AgentProcess with real children: line reading, logs, and the SIGINT → SIGTERM → SIGKILL
escalation on the process group, including descendants that escaped into their own session."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from orchestrator.process import AgentProcess, describe_exit
from orchestrator.proctree import descendants, is_alive, kill_tree_now

from conftest import wait_until

FAST = {"interrupt_timeout": 0.3, "terminate_timeout": 0.3}
# For a process that does stop at SIGINT: the wait ends when it exits, so a long grace costs
# nothing and keeps a loaded machine's slow exit from looking like a process that ignored it.
PATIENT = {"interrupt_timeout": 30.0, "terminate_timeout": 30.0}


def python(
    tmp_path: Path,
    code: str,
    *,
    stdin_path: Path | None = None,
    max_line_bytes: int = 1 << 20,
    scan_interval: float = 0.5,
) -> AgentProcess:
    proc = AgentProcess(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=dict(os.environ),
        stdin_path=stdin_path,
        stderr_log=tmp_path / "stderr.log",
        stdout_log=tmp_path / "stdout.log",
        max_line_bytes=max_line_bytes,
        scan_interval=scan_interval,
    )
    return proc.start()


def wait_for(predicate: Callable[[], object]) -> None:
    wait_until(predicate)


def test_lines_stdin_file_stderr_and_logs(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_text("first\nsecond\n")
    proc = python(tmp_path, """
        import sys
        data = sys.stdin.read()
        print("got", len(data.splitlines()), "lines")
        sys.stdout.buffer.write(b"bad \\xff byte\\n")
        print("no newline at end", end="")
        print("to stderr", file=sys.stderr)
        sys.exit(4)
    """, stdin_path=prompt)
    assert proc.pid > 0 and proc.create_time > 0
    lines = list(proc.lines())
    assert lines == ["got 2 lines", "bad \ufffd byte", "no newline at end"]
    assert proc.wait(5) == 4
    assert (tmp_path / "stderr.log").read_text() == "to stderr\n"
    assert (tmp_path / "stdout.log").read_bytes() == b"got 2 lines\nbad \xff byte\nno newline at end"
    proc.close()


def test_giant_line_is_cut_and_reading_goes_on(tmp_path: Path) -> None:
    proc = python(tmp_path, """
        import sys
        sys.stdout.write("a" * (3 * 1024 * 1024 + 5) + "\\n")
        sys.stdout.write("after\\n")
    """, max_line_bytes=1024 * 1024)
    lines = list(proc.lines())
    assert [len(line) for line in lines] == [1024 * 1024, 5]
    assert lines[1] == "after"
    assert proc.truncated_lines == 1
    assert proc.wait(5) == 0


def test_missing_executable_raises_oserror(tmp_path: Path) -> None:
    proc = AgentProcess(["/nonexistent/claude"], cwd=tmp_path, env={}, stdin_path=None,
                        stderr_log=tmp_path / "e.log")
    with pytest.raises(FileNotFoundError):
        proc.start()


def test_poll_wait_and_exit_codes(tmp_path: Path) -> None:
    go = tmp_path / "go"
    # The child runs until told to end, so "still running" never depends on how fast it starts.
    proc = python(tmp_path, f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)")
    assert proc.poll() is None
    assert proc.wait(0.01) is None
    go.write_text("")
    assert proc.wait(30) == 0
    assert describe_exit(0) == "exited 0"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(None) == "still running"


def test_stop_by_sigint(tmp_path: Path) -> None:
    proc = python(tmp_path, """
        import time
        print("ready", flush=True)
        time.sleep(60)
    """)
    assert next(proc.lines()) == "ready"
    steps: list[str] = []
    code = proc.stop("test", log=steps.append, **PATIENT)
    assert code == -signal.SIGINT  # Python re-raises an unhandled KeyboardInterrupt as the signal
    assert "SIGINT" in steps[0]
    assert not any("SIGTERM" in step for step in steps)


def test_stop_escalates_to_sigkill_and_logs_each_step(tmp_path: Path) -> None:
    proc = python(tmp_path, """
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    """)
    assert next(proc.lines()) == "ready"
    steps: list[str] = []
    code = proc.stop("timeout", interrupt_timeout=0.2, terminate_timeout=0.2, log=steps.append)
    assert code == -signal.SIGKILL
    joined = "\n".join(steps)
    assert joined.index("SIGINT") < joined.index("SIGTERM") < joined.index("SIGKILL")
    assert "timeout" in steps[0]
    assert not psutil.pid_exists(proc.pid)


def test_stop_reaches_the_whole_group_and_escaped_descendants(tmp_path: Path) -> None:
    marker = tmp_path / "pids"
    proc = python(tmp_path, f"""
        import subprocess, time
        same_group = subprocess.Popen(["sleep", "1000"])
        escaped = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        open({str(marker)!r}, "w").write(f"{{same_group.pid}} {{escaped.pid}}")
        time.sleep(1000)
    """, scan_interval=0.05)
    wait_for(lambda: marker.exists() and marker.read_text())
    pids = [int(p) for p in marker.read_text().split()]
    wait_for(lambda: set(pids) <= set(descendants(proc.pid)))
    steps: list[str] = []
    proc.stop("cancel", log=steps.append, **FAST)
    for pid in pids:
        wait_for(lambda pid=pid: not psutil.pid_exists(pid) or
                 psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    assert any("leftover descendant" in step for step in steps)


def test_stop_after_exit_still_reaps_leftovers(tmp_path: Path) -> None:
    marker, go = tmp_path / "pid", tmp_path / "go"
    # The leader exits when told to, after its escaped child has been seen: no race with a timer.
    proc = python(tmp_path, f"""
        import os, subprocess, time
        child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        open({str(marker)!r}, "w").write(str(child.pid))
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
    """, scan_interval=0.05)
    wait_for(lambda: marker.exists() and marker.read_text())
    orphan = int(marker.read_text())
    wait_for(lambda: orphan in remembered(proc))
    go.write_text("")
    assert proc.wait(30) == 0
    assert psutil.pid_exists(orphan)  # the leader is gone, the escaped child is not
    assert proc.stop("cleanup", **FAST) == 0
    wait_for(lambda: not psutil.pid_exists(orphan) or
             psutil.Process(orphan).status() == psutil.STATUS_ZOMBIE)


def test_stop_from_another_thread_ends_lines(tmp_path: Path) -> None:
    proc = python(tmp_path, """
        import time
        while True:
            print("tick", flush=True)
            time.sleep(0.05)
    """)
    count = 0
    stopper: threading.Thread | None = None
    for _ in proc.lines():
        count += 1
        if count == 2:  # an event, not a delay: stop once it has surely started ticking
            stopper = threading.Thread(target=proc.stop, args=("timeout",), kwargs=FAST)
            stopper.start()
    assert stopper is not None
    stopper.join()
    assert count >= 2
    assert proc.wait(5) is not None


def remembered(proc: AgentProcess) -> set[int]:
    """The descendants `proc` has recorded so far: a peek at its private memory, because what is
    tested is that it still knows one the live tree no longer shows."""
    with proc._tree_lock:
        return set(proc._descendants)


def test_kill_tree_now_checks_create_time_and_reaches_other_sessions(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    stranger = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        open({str(marker)!r}, "w").write(str(child.pid))
        time.sleep(1000)
    """)], start_new_session=True)
    try:
        wait_for(lambda: marker.exists() and marker.read_text())
        escaped = int(marker.read_text())
        created = psutil.Process(stranger.pid).create_time()
        assert is_alive(stranger.pid, created)
        assert kill_tree_now(stranger.pid, created - 100) == []  # a reused pid is never hit
        assert stranger.poll() is None and _is_live(escaped)
        assert kill_tree_now(stranger.pid, created) == [escaped]
        assert stranger.wait(30) == -signal.SIGKILL
        assert not _is_live(escaped)
        assert not is_alive(stranger.pid, created)
    finally:
        if stranger.poll() is None:
            stranger.kill()
            stranger.wait()


def test_lines_end_after_exit_when_a_descendant_holds_stdout(tmp_path: Path) -> None:
    proc = AgentProcess(
        [sys.executable, "-c", "import subprocess; print(subprocess.Popen(['sleep', '1000']).pid)"],
        cwd=tmp_path,
        env=dict(os.environ),
        stdin_path=None,
        stderr_log=tmp_path / "stderr.log",
        exit_grace=0.3,
    ).start()
    lines: list[str] = []
    # lines() must end when the agent exits, not when the sleeper holding its stdout does (in
    # 1000 s); the join's bound only keeps a broken build from hanging the suite.
    reader = threading.Thread(target=lambda: lines.extend(proc.lines()), daemon=True)
    reader.start()
    reader.join(timeout=120)
    assert not reader.is_alive(), "lines() waited for a descendant that holds stdout"
    sleeper = int(lines[0])
    assert _is_live(sleeper)
    assert proc.wait(1) == 0
    proc.stop("agent finished", **FAST)  # the sleeper is still in the group, so it goes too
    wait_for(lambda: not _is_live(sleeper))


def _is_live(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
