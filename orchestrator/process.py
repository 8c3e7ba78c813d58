"""Long-running child processes (agents) in their own process group, stopped by explicit escalation.

An agent is a tree: the CLI, its shells, test runners, dev servers. It starts a new session so one
signal reaches the whole group, and descendants are remembered as they appear because a child that
calls setsid leaves the group and would otherwise outlive the stop.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

import psutil

INTERRUPT_TIMEOUT = 5.0
"""Seconds between SIGINT and SIGTERM: time for the agent to save its session and exit."""
TERMINATE_TIMEOUT = 5.0
"""Seconds between SIGTERM and SIGKILL."""
MAX_LINE_BYTES = 1 << 20
"""A stdout line longer than this is cut; the rest is read and dropped so memory stays bounded."""
DESCENDANT_SCAN_INTERVAL = 0.5
"""How often the process tree is sampled, so escaped descendants are known when it is time to stop."""
EXIT_GRACE = 2.0
"""Seconds stdout is still read after the agent exited while a leftover descendant holds it open."""
CREATE_TIME_TOLERANCE = 0.05
READ_CHUNK = 1 << 16

LogFn = Callable[[str], None]
T = TypeVar("T")
LineCallback = Callable[[str], None]


def _no_log(message: str) -> None:
    del message


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_exit(code: int | None) -> str:
    """`exited 3`, `killed by SIGKILL`, or `still running`, for messages."""
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {_signal_name(-code)}"
    return f"exited {code}"


# The signals a WorkflowManager maps to stop requests. A child is spawned with them blocked and
# unblocks them once its handlers are in place, so a stop sent while it is still starting (its
# imports take a while on a loaded machine) is delivered late, never acted on by the default
# disposition (which would kill it without a result).
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGUSR1})


@contextmanager
def stops_deferred() -> Iterator[None]:
    """Hold STOP_SIGNALS back in this thread for the block; one that arrives meanwhile is
    pending, not lost, and is delivered when the block ends. For steps that must not be cut in
    half by a Ctrl-C: a spawn and the record that the spawned process exists."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def spawn_with_stops_deferred(spawn: Callable[[], T]) -> T:
    """Run `spawn` (a Popen) with STOP_SIGNALS blocked, so its child inherits them blocked
    (it unblocks them with accept_stops once its handlers are in place)."""
    with stops_deferred():
        return spawn()


def accept_stops() -> None:
    """In the child, once its handlers are installed: deliver what arrived meanwhile."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def signal_group(pgid: int, signum: int) -> bool:
    """Signal a whole process group; False when it is already gone (or no longer ours)."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class AgentProcess:
    """One agent child: own process group, prompt file on stdin, stdout read line by line.

    Construct, then `start()`. Read stdout either with `lines()` in the caller's thread or with
    `start_reader(callback)`; exactly one of the two, because they share the pipe. `stop()` may be
    called from another thread while the reader is running.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | str,
        env: Mapping[str, str],
        stdin_path: Path | str | None,
        stderr_log: Path | str,
        stdout_log: Path | str | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        scan_interval: float = DESCENDANT_SCAN_INTERVAL,
        exit_grace: float = EXIT_GRACE,
        redact: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.redact = redact
        self.cwd = Path(cwd)
        self.env = dict(env)
        self.stdin_path = Path(stdin_path) if stdin_path is not None else None
        self.stderr_log = Path(stderr_log)
        self.stdout_log = Path(stdout_log) if stdout_log is not None else None
        self.max_line_bytes = max_line_bytes
        self.scan_interval = scan_interval
        self.exit_grace = exit_grace
        self.create_time = 0.0
        self.truncated_lines = 0
        self.reader_error: BaseException | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_file: BinaryIO | None = None
        self._reader: threading.Thread | None = None
        self._descendants: dict[int, float] = {}
        self._tree_lock = threading.Lock()
        self._finished = threading.Event()
        self._exited_at: float | None = None

    def start(self) -> AgentProcess:
        """Launch in a new session. OSError (FileNotFoundError for a missing executable) propagates."""
        if self._popen is not None:
            raise RuntimeError("already started")
        stdin: BinaryIO | int
        # A file, not a pipe, on stdin: the child reads the prompt at its own pace and we never block
        # writing it; the child keeps its own descriptor, so ours is closed right after the spawn.
        stdin = open(self.stdin_path, "rb") if self.stdin_path is not None else subprocess.DEVNULL
        try:
            with open(self.stderr_log, "ab") as stderr:
                self._popen = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    start_new_session=True,
                    close_fds=True,
                )
        finally:
            if not isinstance(stdin, int):
                stdin.close()
        self.create_time = _create_time(self.popen.pid)
        if self.stdout_log is not None:
            self._log_file = open(self.stdout_log, "ab")
        threading.Thread(target=self._scan_loop, name=f"tree-scan-{self.pid}", daemon=True).start()
        return self

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError("the process has not been started")
        return self._popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def lines(self) -> Iterator[str]:
        """Yield stdout lines (decoded, newline stripped) until EOF, appending each to stdout_log.

        Also ends `exit_grace` seconds after the agent itself exited even if the pipe is still
        open: a server the agent left running in the background keeps our stdout forever.
        """
        stream = self.popen.stdout
        assert stream is not None
        lines = _split_lines(stream.fileno(), self.max_line_bytes, self._exited_for, self.exit_grace)
        for raw, truncated in lines:
            if truncated:
                self.truncated_lines += 1
            if self._log_file is not None:
                self._log_file.write(self.redact(raw) if self.redact is not None else raw)
                self._log_file.flush()
            yield raw.decode("utf-8", errors="replace").rstrip("\r\n")
        self._close_log()

    def _exited_for(self) -> float:
        """Seconds since the agent was first seen exited (0.0 while it runs)."""
        if self._exited_at is None and self.poll() is not None:
            self._exited_at = time.monotonic()
        if self._exited_at is None:
            return 0.0
        return time.monotonic() - self._exited_at

    def start_reader(self, callback: LineCallback) -> threading.Thread:
        """Drain stdout in a thread, calling `callback` per line.

        A callback that raises is recorded in `reader_error` and reading goes on: a reader that
        stopped draining would leave the child blocked on a full pipe.
        """
        if self._reader is not None:
            raise RuntimeError("a reader is already attached")

        def run() -> None:
            for line in self.lines():
                try:
                    callback(line)
                except Exception as exc:  # noqa: BLE001 - kept for the caller, see docstring
                    if self.reader_error is None:
                        self.reader_error = exc

        self._reader = threading.Thread(target=run, name=f"agent-stdout-{self.pid}", daemon=True)
        self._reader.start()
        return self._reader

    def join_reader(self, timeout: float | None = None) -> bool:
        """Wait for the reader to reach EOF; True when it has (or there is no reader)."""
        if self._reader is None:
            return True
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None:
            self._finished.set()
        return code

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None when the process is still running after `timeout` seconds."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._finished.set()
        return code

    def descendants(self) -> dict[int, float]:
        """Every descendant seen so far, pid -> create_time (some may have exited since)."""
        self._scan_tree()
        with self._tree_lock:
            return dict(self._descendants)

    def stop(
        self,
        reason: str,
        *,
        interrupt_timeout: float = INTERRUPT_TIMEOUT,
        terminate_timeout: float = TERMINATE_TIMEOUT,
        log: LogFn | None = None,
    ) -> int:
        """SIGINT, SIGTERM, then SIGKILL to the process group, then SIGKILL every remembered
        descendant still alive; returns the exit code (negative signal number when killed)."""
        say = log or _no_log
        self._scan_tree()
        if self.poll() is None:
            _escalate(
                f"pid {self.pid}",
                reason,
                send=self._signal_group,
                wait=lambda timeout: self.wait(timeout) is not None,
                interrupt_timeout=interrupt_timeout,
                terminate_timeout=terminate_timeout,
                log=say,
            )
            self.popen.wait()
            self._finished.set()
        else:
            say(f"pid {self.pid} already {describe_exit(self.returncode)} ({reason})")
        self._reap_leftovers(say)
        code = self.popen.returncode
        assert code is not None
        say(f"pid {self.pid} {describe_exit(code)}")
        return code

    def close(self) -> None:
        """Release the pipe and log file; the process itself is left alone."""
        self._finished.set()
        if self._popen is None or (self._reader is not None and self._reader.is_alive()):
            return
        if self._popen.stdout is not None:
            self._popen.stdout.close()
        self._close_log()

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._popen is not None and self.poll() is None:
            self.stop("context exited", interrupt_timeout=1.0, terminate_timeout=1.0)
        self.close()

    def _close_log(self) -> None:
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()

    def _signal_group(self, signum: int) -> None:
        # The group id is our child's pid (start_new_session). Linux keeps a pid out of reuse while
        # it is still some group's id, so after the leader is reaped this reaches only its members.
        signal_group(self.pid, signum)

    def _scan_loop(self) -> None:
        while not self._finished.wait(self.scan_interval):
            self._scan_tree()

    def _scan_tree(self) -> None:
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return
        found: dict[int, float] = {}
        for child in children:
            try:
                found[child.pid] = child.create_time()
            except psutil.Error:
                continue
        with self._tree_lock:
            self._descendants.update(found)

    def _reap_leftovers(self, say: LogFn) -> None:
        # Group members that outlived the leader, and escaped descendants (own session) alike.
        self._signal_group(signal.SIGKILL)
        with self._tree_lock:
            remembered = dict(self._descendants)
        killed = _kill_verified(remembered)
        if killed:
            say(f"SIGKILL to {len(killed)} leftover descendant(s) of pid {self.pid}: {sorted(killed)}")


def _split_lines(
    fd: int, limit: int, exited_for: Callable[[], float], grace: float
) -> Iterator[tuple[bytes, bool]]:
    """(raw line, truncated) pairs from a pipe; a line longer than `limit` keeps its head and the
    rest is dropped as it arrives, so memory stays within `limit` plus one read."""
    buf = bytearray()
    dropping = False
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            if exited_for() > grace:
                break
            continue
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            break
        buf += chunk
        start = 0
        while True:
            newline = buf.find(b"\n", start)
            if newline < 0:
                break
            if dropping:
                dropping = False
            else:
                yield bytes(buf[start : newline + 1]), False
            start = newline + 1
        del buf[:start]
        if len(buf) >= limit:
            if not dropping:
                yield bytes(buf[:limit]) + b"\n", True
            dropping = True
            buf.clear()
        if exited_for() > grace:
            break
    if buf and not dropping:
        yield bytes(buf), False


def _create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        # Exited and reaped before we looked: nothing will ever need to match it.
        return 0.0


def process_matches(pid: int, create_time: float) -> bool:
    """True when `pid` is alive and is the process that started at `create_time` (not a reuse)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - create_time) <= CREATE_TIME_TOLERANCE
    except psutil.Error:
        return False


def _kill_verified(pids: Mapping[int, float]) -> list[int]:
    """SIGKILL each pid whose create_time still matches; returns the pids signalled."""
    procs: list[psutil.Process] = []
    for pid, created in pids.items():
        if not process_matches(pid, created):
            continue
        try:
            proc = psutil.Process(pid)
            proc.kill()
            procs.append(proc)
        except psutil.Error:
            continue
    # Not our children, so not ours to reap: a zombie counts as dead.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(process_matches(p.pid, pids[p.pid]) for p in procs):
        time.sleep(0.02)
    return [proc.pid for proc in procs]


def _escalate(
    what: str,
    reason: str,
    *,
    send: Callable[[int], None],
    wait: Callable[[float], bool],
    interrupt_timeout: float,
    terminate_timeout: float,
    log: LogFn,
) -> None:
    log(f"stopping {what} ({reason}): SIGINT to process group")
    send(signal.SIGINT)
    if wait(interrupt_timeout):
        return
    log(f"{what} still running {interrupt_timeout:g}s after SIGINT: SIGTERM to process group")
    send(signal.SIGTERM)
    if wait(terminate_timeout):
        return
    log(f"{what} still running {terminate_timeout:g}s after SIGTERM: SIGKILL to process group")
    send(signal.SIGKILL)
    wait(terminate_timeout)


def stop_group(
    proc: subprocess.Popen[bytes],
    reason: str,
    *,
    interrupt_timeout: float = INTERRUPT_TIMEOUT,
    terminate_timeout: float = TERMINATE_TIMEOUT,
    log: LogFn | None = None,
) -> None:
    """The agent's escalation for a short command in its own session (a setup hook, verify):
    SIGINT, SIGTERM, SIGKILL to its process group, each after its grace."""

    def wait(timeout: float) -> bool:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def send(signum: int) -> None:
        signal_group(proc.pid, signum)

    if proc.poll() is None:
        _escalate(f"pid {proc.pid}", reason, send=send, wait=wait, interrupt_timeout=interrupt_timeout,
                  terminate_timeout=terminate_timeout, log=log or _no_log)


def kill_tree_now(pid: int, create_time: float) -> list[int]:
    """SIGKILL `pid` and every process below it, whatever process group or session each one is
    in (agents and hooks run in sessions of their own). For the second Ctrl-C: no grace, and
    nothing signalled unless `pid` still has `create_time`. Returns the descendants killed."""
    if not process_matches(pid, create_time):
        return []
    try:
        tree = {child.pid: child.create_time() for child in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        tree = {}
    groups = set()
    for member in (pid, *tree):
        try:
            groups.add(os.getpgid(member))
        except ProcessLookupError:
            continue
    groups.discard(os.getpgrp())  # never our own
    # The root first, so it starts nothing new while its children go; then each group, which
    # also takes whatever a child forked after we looked.
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for group in groups:
        signal_group(group, signal.SIGKILL)
    return _kill_verified(tree)


def kill_process_tree(
    pid: int,
    create_time: float,
    *,
    reason: str = "stale process",
    interrupt_timeout: float = INTERRUPT_TIMEOUT,
    terminate_timeout: float = TERMINATE_TIMEOUT,
    log: LogFn | None = None,
) -> bool:
    """Stop a process we did not spawn in this run (re-attached after a restart) and its tree.

    Nothing is signalled unless `pid` still has `create_time`, so a reused pid is never hit.
    Returns True when the process was alive and has been stopped.
    """
    say = log or _no_log
    if not process_matches(pid, create_time):
        say(f"pid {pid} is gone (or reused); nothing to stop")
        return False
    root = psutil.Process(pid)
    tree: dict[int, float] = {}
    try:
        for child in root.children(recursive=True):
            tree[child.pid] = child.create_time()
        own_group = os.getpgid(pid) == pid
    except (psutil.Error, ProcessLookupError):
        return False

    def send(signum: int) -> None:
        try:
            if own_group:
                os.killpg(pid, signum)
            else:
                root.send_signal(signum)
        except (ProcessLookupError, psutil.Error):
            pass

    def wait(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process_matches(pid, create_time):
                return True
            time.sleep(0.05)
        return not process_matches(pid, create_time)

    _escalate(
        f"pid {pid}",
        reason,
        send=send,
        wait=wait,
        interrupt_timeout=interrupt_timeout,
        terminate_timeout=terminate_timeout,
        log=say,
    )
    if own_group:
        signal_group(pid, signal.SIGKILL)
    killed = _kill_verified(tree)
    if killed:
        say(f"SIGKILL to {len(killed)} leftover descendant(s) of pid {pid}: {sorted(killed)}")
    return True
