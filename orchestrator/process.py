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

from orchestrator.proctree import create_time_of, descendants, kill_verified, signal_group

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
READ_CHUNK = 1 << 16

LogFn = Callable[[str], None]
T = TypeVar("T")


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


class AgentProcess:
    """One agent child: own process group, prompt file on stdin, stdout read line by line.

    Construct, then `start()`, then read stdout with `lines()`. `stop()` may be called from
    another thread while `lines()` is being read.
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
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_file: BinaryIO | None = None
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
        # 0.0 when it exited and was reaped before we looked: nothing will ever need to match it.
        self.create_time = create_time_of(self.popen.pid) or 0.0
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
        if self._popen is None:
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
        found = descendants(self.pid)
        with self._tree_lock:
            self._descendants.update(found)

    def _reap_leftovers(self, say: LogFn) -> None:
        # Group members that outlived the leader, and escaped descendants (own session) alike.
        self._signal_group(signal.SIGKILL)
        with self._tree_lock:
            remembered = dict(self._descendants)
        killed = kill_verified(remembered)
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
