"""The acceptance check a prompt declares (`verify:`), run in the task's worktree."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestrator.models import VerifyResult
from orchestrator.worktrees.provision import OnStart, run_hook

TIMED_OUT = 124  # the exit code `timeout(1)` uses, so scripts reading results see a familiar one


def run_verify(command: str, cwd: Path, env: Mapping[str, str], *, timeout: float, log_path: Path,
               on_start: OnStart | None = None) -> VerifyResult:
    """Run the user's own verify command like a setup hook: `/bin/sh -c` (it is a shell command by
    definition, written by the user in their prompt), its own session so a timeout takes the
    whole group down, output appended to the task log."""
    hook = run_hook(command, cwd=cwd, env=env, log_path=log_path, what="verify", timeout=timeout, on_start=on_start)
    code = TIMED_OUT if hook.exit_code is None else hook.exit_code
    tail = hook.output_tail if hook.exit_code is not None else f"{hook.output_tail}\n[verify timed out after {timeout:g}s]"
    return VerifyResult(command=command, exit_code=code, passed=code == 0, output_tail=tail,
                        duration_seconds=hook.duration_seconds)
