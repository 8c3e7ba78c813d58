"""Run the `orchestrator` command line inside the test process, for tests about what a command
does rather than about the orchestrator's own process (signals, kill -9, a dead orchestrator: those
start `python -m orchestrator` as a real child).

A child interpreter costs each command ~0.7 s of CPU for its imports alone, which this process has
already paid; the WorkflowManagers, their launcher and the agents are still real processes. The
result has the shape `subprocess.run` gives, so a test reads it the same either way.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from click.testing import CliRunner
from orchestrator.cli.main import main


def run_in_process(cwd: Path, args: Sequence[str], env: Mapping[str, str | None],
                   input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """`orchestrator ARGS` from `cwd` with `env` laid over os.environ (None removes a name);
    os.environ, the working directory and the signal handlers are restored afterwards."""
    # The CLI turns SIGTERM into an interrupt for the rest of its process's life: ours goes on.
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with contextlib.chdir(cwd):
            result = CliRunner(env=dict(env)).invoke(main, list(args), input=input_text, prog_name="orchestrator",
                                                     catch_exceptions=False)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return subprocess.CompletedProcess(["orchestrator", *args], result.exit_code, result.stdout, result.stderr)


def run_with_environment(cwd: Path, args: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`orchestrator ARGS` from `cwd` in this process with exactly `env` as its environment, as a
    child started with `env=` would have it."""
    return run_in_process(cwd, args, {**{name: None for name in os.environ if name not in env}, **env})
