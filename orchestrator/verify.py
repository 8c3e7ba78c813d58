"""The acceptance check a prompt declares (`verify:`), run in the task's worktree."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from orchestrator.models import VerifyResult

OUTPUT_TAIL = 4000


def run_verify(command: str, cwd: Path, env: Mapping[str, str], *, timeout: float) -> VerifyResult:
    """Run the user's own verify command through /bin/sh.

    `verify` is a shell command by definition (pipes, `&&`), written by the user in their prompt,
    so it gets an explicit `sh -c`; no prompt name or path is ever interpolated into it. It runs in
    its own session so a timeout takes its whole process group down.
    """
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        import os
        import signal

        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        code = 124
        out = out + f"\n[verify timed out after {timeout:g}s]".encode()
    text = out.decode("utf-8", "replace")
    return VerifyResult(
        command=command,
        exit_code=code,
        passed=code == 0,
        output_tail=text[-OUTPUT_TAIL:],
        duration_seconds=round(time.monotonic() - t0, 3),
    )
