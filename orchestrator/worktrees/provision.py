"""Make a fresh worktree usable: copy `.worktreeinclude` files, run the `setup` hook, hand out a $PORT.

`.worktreeinclude` follows Claude Code: a gitignore-syntax file at the project root; a file of the
main checkout is copied only if it matches a pattern AND git ignores it, so tracked files (which
the worktree already has) are never duplicated. Both sets come from git itself (`ls-files
--others --ignored` with the standard excludes, and with the include file as the exclude list),
so the pattern semantics are git's exactly. Copies never overwrite, never follow a symlink (source
or destination side) and never leave the worktree.

The hooks are the user's own shell commands from their config, so they run as `/bin/sh -c CMD`
(an explicit argv; Python never spawns a shell on its own), in their own session, output appended
to the task log.
"""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field

from orchestrator.errors import OrchestratorError
from orchestrator.gitops import git
from orchestrator.models import iso
from orchestrator.proctree import create_time_of, is_alive, signal_group
from orchestrator.state.atomic import read_json, write_json_atomic
from orchestrator.state.locks import file_lock

PORTS_FILE = Path(".gadugi") / "ports.json"
PORTS_LOCK = Path(".gadugi") / ".ports.lock"
TAIL_BYTES = 4000
_COPY_CHUNK = 1 << 20


class WorktreeSetupError(OrchestratorError):
    """The setup hook failed; carries its exit code and the end of its output."""

    def __init__(self, command: str, exit_code: int | None, output_tail: str) -> None:
        how = "timed out" if exit_code is None else f"exited {exit_code}"
        last = output_tail.strip().splitlines()[-1:] or ["no output"]
        super().__init__(f"setup command `{command}` {how}: {last[0]}")
        self.command = command
        self.exit_code = exit_code
        self.output_tail = output_tail


class HookResult(BaseModel):
    command: str
    exit_code: int | None = Field(description="None when it timed out (and was killed).")
    output_tail: str = ""
    duration_seconds: float = 0.0


class SetupResult(BaseModel):
    copied: list[str] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="path -> why it was not copied")
    port: int | None = None
    setup: HookResult | None = None


class PortAllocation(BaseModel):
    task_id: str
    worktree: str
    pid: int
    pid_create_time: float | None = None
    allocated_at: str


class PortsFile(BaseModel):
    """`.gadugi/ports.json`: ports handed to tasks whose process still runs."""

    ports: dict[str, PortAllocation] = Field(default_factory=dict, description="Keyed by port number.")


# -- .worktreeinclude -----------------------------------------------------------------------------


def include_candidates(project_root: Path, include_file: str = ".worktreeinclude") -> list[str]:
    """Git-ignored files of the main checkout matching a pattern of `include_file` (sorted)."""
    patterns = project_root / include_file
    if not patterns.is_file():
        return []
    matched = set(git.ignored_files(project_root, patterns_file=patterns))
    if not matched:
        return []
    ignored = set(git.ignored_files(project_root))
    return sorted(matched & ignored)


def _safe_relative(rel: str) -> PurePosixPath | None:
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(part in ("..", ".", "") for part in path.parts):
        return None
    return path


def copy_included(project_root: Path, worktree: Path, include_file: str = ".worktreeinclude") -> SetupResult:
    """Copy the `.worktreeinclude` files into `worktree` under the same relative paths."""
    result = SetupResult()
    worktree = worktree.resolve()
    skip_dirs = {PurePosixPath(".gadugi")}
    for entry in git.list_worktrees(project_root):
        try:  # other worktrees nested in the checkout (ours under .worktrees/) are not its files
            skip_dirs.add(PurePosixPath(entry.path.resolve().relative_to(project_root.resolve()).as_posix()))
        except ValueError:
            continue
    for rel in include_candidates(project_root, include_file):
        path = _safe_relative(rel)
        if path is None:
            result.skipped[rel] = "path escapes the worktree"
            continue
        if any(d.parts and path.parts[: len(d.parts)] == d.parts for d in skip_dirs):
            continue
        why = _copy_one(project_root, worktree, path)
        if why is None:
            result.copied.append(rel)
        else:
            result.skipped[rel] = why
    return result


def _copy_one(root: Path, worktree: Path, rel: PurePosixPath) -> str | None:
    """Copy one file; the reason it was not copied, or None."""
    source = root
    for part in rel.parts:
        source = source / part
        if source.is_symlink():
            return "symlink (not followed)"
    st = os.lstat(source)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    target = worktree
    for part in rel.parts[:-1]:
        target = target / part
        if target.is_symlink():
            return "a parent directory in the worktree is a symlink"
        if not target.exists():
            target.mkdir()
        elif not target.is_dir():
            return "a parent path in the worktree is not a directory"
    target = target / rel.parts[-1]
    if os.path.lexists(target):
        return "exists in the worktree (never overwritten)"
    # O_EXCL|O_NOFOLLOW: nothing can appear at the target (or be swapped for a symlink) between the
    # check above and the write.
    src_fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dst_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, stat.S_IMODE(st.st_mode))
        try:
            while chunk := os.read(src_fd, _COPY_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst_fd, view) :]
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    return None


# -- ports ----------------------------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """Nothing listens on or holds `port` right now (a bind test on all interfaces)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _live(alloc: PortAllocation) -> bool:
    return alloc.pid_create_time is not None and is_alive(alloc.pid, alloc.pid_create_time)


def allocate_port(project_root: Path, port_range: tuple[int, int], *, task_id: str, worktree: Path) -> int:
    """A port of `port_range` that is free now and not held by another running task.

    Held means recorded in `.gadugi/ports.json` by a process that is still alive (pid +
    create_time, so a recycled pid does not count); entries of dead processes are reclaimed.
    """
    low, high = port_range
    with file_lock(project_root / PORTS_LOCK):
        data = PortsFile.model_validate(read_json(project_root / PORTS_FILE) or {})
        held = {port: a for port, a in data.ports.items() if _live(a) and a.task_id != task_id}
        for port in range(low, high + 1):
            if str(port) in held or not port_is_free(port):
                continue
            pid = os.getpid()
            held[str(port)] = PortAllocation(task_id=task_id, worktree=str(worktree), pid=pid,
                                             pid_create_time=create_time_of(pid), allocated_at=iso())
            write_json_atomic(project_root / PORTS_FILE, PortsFile(ports=held).model_dump(mode="json"))
            return port
    raise OrchestratorError(f"no free port in {low}-{high} for task {task_id} (all in use or held by running tasks)")


def allocated_port(project_root: Path, task_id: str) -> int | None:
    data = PortsFile.model_validate(read_json(project_root / PORTS_FILE) or {})
    return next((int(p) for p, a in data.ports.items() if a.task_id == task_id), None)


def release_port(project_root: Path, task_id: str) -> None:
    with file_lock(project_root / PORTS_LOCK):
        data = PortsFile.model_validate(read_json(project_root / PORTS_FILE) or {})
        kept = {p: a for p, a in data.ports.items() if a.task_id != task_id}
        if kept != data.ports:
            write_json_atomic(project_root / PORTS_FILE, PortsFile(ports=kept).model_dump(mode="json"))


# -- hooks ----------------------------------------------------------------------------------------


def hook_env(
    base: Mapping[str, str], *, project_root: Path, worktree: Path, task_id: str, branch: str, base_sha: str,
    port: int | None,
) -> dict[str, str]:
    env = dict(git.no_git_env(base))
    env.update(GADUGI_WORKTREE=str(worktree), GADUGI_BRANCH=branch, GADUGI_BASE_SHA=base_sha,
               GADUGI_TASK_ID=task_id, GADUGI_PROJECT_ROOT=str(project_root))
    if port is not None:
        env["PORT"] = str(port)
    return env


OnStart = Callable[["subprocess.Popen[bytes]"], None]


def run_hook(command: str, *, cwd: Path, env: Mapping[str, str], log_path: Path, what: str,
             timeout: float | None = None, on_start: OnStart | None = None) -> HookResult:
    """Run `/bin/sh -c command` with output appended to `log_path`; the exit code and output tail.
    `on_start` gets the process as soon as it exists, so its owner can stop it (cancel, deadline)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("ab") as log:
        log.write(f"--- {what}: {command}\n".encode())
        log.flush()
        start = os.fstat(log.fileno()).st_size
        proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if on_start is not None:
            on_start(proc)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Its own session: the whole group goes, not just the shell.
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        end = os.fstat(log.fileno()).st_size
        with log_path.open("rb") as reader:
            reader.seek(max(start, end - TAIL_BYTES))
            tail = reader.read(end - reader.tell()).decode("utf-8", errors="replace")
        log.write(f"--- {what} {'timed out' if code is None else f'exited {code}'}\n".encode())
    return HookResult(command=command, exit_code=code, output_tail=tail,
                      duration_seconds=round(time.monotonic() - started, 3))


def prepare_worktree(
    project_root: Path,
    worktree: Path,
    *,
    task_id: str,
    branch: str,
    base_sha: str,
    setup: str | None,
    port_range: tuple[int, int] | None,
    log_path: Path,
    include_file: str | None = ".worktreeinclude",
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    on_start: OnStart | None = None,
) -> SetupResult:
    """Copy included files, allocate $PORT, run `setup`; raises WorktreeSetupError when it fails."""
    result = copy_included(project_root, worktree, include_file) if include_file else SetupResult()
    if port_range is not None:
        result.port = allocate_port(project_root, port_range, task_id=task_id, worktree=worktree)
    if setup:
        hook = run_hook(
            setup, cwd=worktree, log_path=log_path, what="setup", timeout=timeout, on_start=on_start,
            env=hook_env(os.environ if env is None else env, project_root=project_root, worktree=worktree,
                         task_id=task_id, branch=branch, base_sha=base_sha, port=result.port),
        )
        result.setup = hook
        if hook.exit_code != 0:
            raise WorktreeSetupError(setup, hook.exit_code, hook.output_tail)
    return result


def teardown_worktree(
    project_root: Path,
    worktree: Path,
    *,
    task_id: str,
    branch: str,
    base_sha: str,
    teardown: str | None,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout: float | None = 300.0,
) -> HookResult | None:
    """Run `teardown` before the worktree goes and release the task's port; never raises for a
    failing hook (the result says how it went, the log has the output)."""
    result = None
    try:
        if teardown and worktree.is_dir():
            result = run_hook(
                teardown, cwd=worktree, log_path=log_path, what="teardown", timeout=timeout,
                env=hook_env(os.environ if env is None else env, project_root=project_root, worktree=worktree,
                             task_id=task_id, branch=branch, base_sha=base_sha,
                             port=allocated_port(project_root, task_id)),
            )
    except OSError as exc:
        result = HookResult(command=teardown or "", exit_code=-1, output_tail=str(exc))
    finally:
        release_port(project_root, task_id)
    return result
