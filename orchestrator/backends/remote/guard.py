"""`python -m orchestrator.backends.remote.guard`: takes a remote task's processes down with its worker.

A WorkflowManager runs in its own session so signals aimed at the worker do not hit it; the flip
side is that a Dask worker killed mid-task (OOM, SIGKILL, a lost machine) would leave it and its
agent running, and the retry would then race a ghost on the same branch. The worker keeps this
guard's stdin open and tells it which process groups to watch (`watch PID CREATE_TIME` lines);
end of input without a final `done` line means the worker is gone, and every watched group that
is still the same process gets SIGKILL.
"""
from __future__ import annotations

import os
import signal
import sys

from orchestrator.proctree import is_alive, signal_group


def kill_groups(watched: list[tuple[int, float]]) -> None:
    for pid, created in reversed(watched):  # the agent (newest) before its WorkflowManager
        if not is_alive(pid, created):
            continue
        if not signal_group(pid, signal.SIGKILL):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def main() -> int:
    # The worker's Ctrl-C must not take the guard down before the worker itself is gone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watched: list[tuple[int, float]] = []
    for line in sys.stdin:
        parts = line.split()
        if parts == ["done"]:
            return 0
        if len(parts) == 3 and parts[0] == "watch":
            watched.append((int(parts[1]), float(parts[2])))
    kill_groups(watched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
