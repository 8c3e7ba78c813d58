"""The launcher's own end: a process that has imported the WorkflowManager once and forks one
per task on request (`python -m orchestrator.task.forkserver`, started by
`orchestrator.backends.launcher`, whose docstring says why and what is kept the same).

Single-threaded, because forking a threaded process is unsafe; it lives as long as its socket.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from orchestrator.process import STOP_SIGNALS
from orchestrator.task.attempt_lock import LOCK_FD_ENV

MAX_MESSAGE = 1 << 20  # a spawn request carries the task's environment; far below this
FDS_PER_SPAWN = 3  # the task's stdout, its stderr, the attempt lock: in that order


def serve(sock: socket.socket, *, traced: bool = False) -> None:
    # Imported here, once, before the first request: this is the cost the launcher exists to pay
    # only once per run.
    from orchestrator.task import workflow_manager

    if traced:  # each WorkflowManager of a traced run would import the SDK (~0.15 s of CPU): here, once
        from orchestrator.tracing import sdk_missing

        if sdk_missing() is None:
            from orchestrator.otel import preload

            preload()

    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    while True:
        ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        if sock.fileno() in ready:
            try:
                raw, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, FDS_PER_SPAWN)
            except OSError:
                raw, fds = b"", []
            if not raw:
                return  # the orchestrator is gone; forked WorkflowManagers carry on without us
            request = json.loads(raw)
            # The reply waits until the child has its own session, as Popen(start_new_session)
            # returns only after the child's setsid: from then on it is out of our reach.
            in_session_r, in_session_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(in_session_r)
                _become_workflow_manager(workflow_manager.main, request, fds,
                                         close=(sock.fileno(), wake_r, wake_w), in_session=in_session_w)
            os.close(in_session_w)
            os.read(in_session_r, 1)  # EOF once the child closed its end, after setsid (or died)
            os.close(in_session_r)
            for fd in fds:
                os.close(fd)
            if not _send(sock, {"pid": pid}):
                return
        if wake_r in ready and not _report_exits(sock):
            return


def _send(sock: socket.socket, reply: dict[str, int]) -> bool:
    try:
        sock.send(json.dumps(reply).encode())
    except OSError:
        return False  # the orchestrator is gone
    return True


def _report_exits(sock: socket.socket) -> bool:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return True
        if not _send(sock, {"exited": pid, "returncode": os.waitstatus_to_exitcode(status)}):
            return False


def _become_workflow_manager(main: Callable[[list[str]], int], request: dict[str, Any], fds: list[int], *,
                             close: tuple[int, ...], in_session: int) -> NoReturn:
    code: int = 1
    try:
        os.setsid()
        os.close(in_session)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in close:
            os.close(fd)
        stdout_fd, stderr_fd, lock_fd = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        for fd in (devnull, stdout_fd, stderr_fd):
            os.close(fd)
        os.chdir(request["cwd"])
        # The lock descriptor keeps the number it arrived with; the WorkflowManager finds it in
        # its environment, as when it was passed at exec.
        os.environ.clear()
        os.environ.update({**request["env"], LOCK_FD_ENV: str(lock_fd)})
        sys.argv = ["-m orchestrator.task", *request["args"]]
        code = main(request["args"])
    except SystemExit as exc:  # as the interpreter reads it: None is 0, a message is 1
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        # os._exit, not a return into the launcher's loop; what an interpreter exit would have
        # done for us is done here: flush the streams and the log handlers.
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.task.forkserver")
    parser.add_argument("--socket-fd", type=int, required=True)
    parser.add_argument("--chdir", type=Path)
    parser.add_argument("--traced", action="store_true", help="import the OpenTelemetry SDK before forking")
    args = parser.parse_args(argv)
    if args.chdir is not None:
        os.chdir(args.chdir)
    serve(socket.socket(fileno=args.socket_fd), traced=args.traced)
    return 0


if __name__ == "__main__":
    sys.exit(main())
