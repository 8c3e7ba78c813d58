"""The one top-level handler: expected errors exit 1 in one line, Ctrl-C 130, bugs 3 with a crash log."""
from __future__ import annotations

import functools
import os
import platform
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from orchestrator.errors import OrchestratorError

EXIT_ERROR = 1
EXIT_BUG = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a process ended by SIGPIPE


def handle_errors(func: Callable[..., int]) -> Callable[..., None]:
    """Wrap a click command whose body returns an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        try:
            code = func(*args, **kwargs)
        except OrchestratorError as exc:
            click.echo(f"error: {exc}", err=True)
            code = EXIT_ERROR
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            code = EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader went away (`orchestrator status | head`): not an error of ours. Point
            # stdout at /dev/null so the interpreter's final flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = EXIT_BROKEN_PIPE
        except click.exceptions.ClickException:
            raise
        except Exception as exc:
            if _is_validation_error(exc):  # a value the models refused: the user's input
                first = exc.errors()[0]  # type: ignore[attr-defined]
                click.echo(f"error: {first.get('msg', str(exc)).removeprefix('Value error, ')}", err=True)
                code = EXIT_ERROR
            else:  # a bug: keep the details, show one line
                log = write_crash_log(kwargs.get("project_root"))
                click.echo(f"error: unexpected {type(exc).__name__}: {exc} (details: {log})", err=True)
                code = EXIT_BUG
        ctx.exit(code)

    return wrapper


def _is_validation_error(exc: Exception) -> bool:
    # Looked up, not imported: a command that never loaded pydantic cannot have raised its
    # error, and importing it here would cost every command its start-up time.
    pydantic_core = sys.modules.get("pydantic_core")
    return pydantic_core is not None and isinstance(exc, pydantic_core.ValidationError)


def write_crash_log(project_root: str | None) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    candidates = [Path(project_root or ".") / ".gadugi", Path(tempfile.gettempdir())]
    text = (
        f"gadugi-orchestrator crash {stamp}\npython {sys.version}\nplatform {platform.platform()}\n"
        f"argv {sys.argv}\n\n{traceback.format_exc()}"
    )
    for directory in candidates:
        try:
            if directory.is_dir() or directory.parent.is_dir():
                directory.mkdir(exist_ok=True)
                path = directory / f"crash-{stamp}.log"
                path.write_text(text, encoding="utf-8")
                return path
        except OSError:
            continue
    return Path("<unwritable>")
