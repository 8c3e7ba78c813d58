"""The one primitive for short commands: argv in, (rc, stdout, stderr) out, never a shell."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.errors import OrchestratorError


class CommandError(OrchestratorError):
    """A command exited non-zero; renders the command, code and both streams."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(str(self))

    def __str__(self) -> str:
        detail = (self.stderr.strip() or self.stdout.strip()).splitlines()
        last = detail[-1] if detail else "no output"
        return f"`{' '.join(self.argv)}` exited {self.returncode}: {last}"


def run_cmd(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input_text: str | None = None,
    timeout: float | None = None,
) -> tuple[int, str, str]:
    """Run a short command to completion and return (rc, stdout, stderr)."""
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            input=input_text,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise CommandError(argv, 127, "", f"{argv[0]}: command not found") from exc
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.returncode, proc.stdout, proc.stderr


def which(name: str, path: str | None = None) -> str | None:
    """shutil.which with an explicit PATH, so tests can point at fake agents."""
    import shutil

    return shutil.which(name, path=path if path is not None else os.environ.get("PATH"))
