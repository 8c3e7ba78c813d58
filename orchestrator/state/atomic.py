"""Crash-safe JSON files: readers see the old file or the new one, never half of either.

Gadugi rewrote its state in place with `open('w')` + `json.dump`, so a dashboard reading mid-write
(or a crash mid-write) got truncated JSON. Here every write goes to a temp file in the same
directory (same filesystem, so `os.replace` is an atomic rename), is fsynced, renamed over the
target, and the directory is fsynced so the rename itself survives a power cut.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from orchestrator.errors import StateError
from orchestrator.models import utcnow


class CorruptStateFile(StateError):
    """A state file existed but did not parse; it was moved aside so the caller can rebuild."""

    def __init__(self, path: Path, moved_to: Path | None, reason: str) -> None:
        where = f"moved to {moved_to.name}" if moved_to else "already moved aside by another process"
        super().__init__(f"corrupt state file {path} ({reason}); {where}")
        self.path = path
        self.moved_to = moved_to
        self.reason = reason


def dumps_compact(data: Any) -> str:
    """The one JSON encoding for state files: compact (cheap to write and parse), UTF-8."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(
    path: Path, payload: bytes, *, fsync: bool = True, durable_rename: bool | None = None
) -> None:
    """Replace `path` with `payload` atomically; with `fsync`, the content is on disk before the
    rename. `durable_rename` (default: as `fsync`) also syncs the directory so the rename itself
    survives a power cut; readers never see a half-written file either way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
        # mkstemp creates 0600; state files are read by editors and dashboards of the same user
        # and by other tools, so give them the usual mode.
        os.fchmod(fd, 0o644)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    if fsync if durable_rename is None else durable_rename:
        fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str, *, fsync: bool = True) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def write_json_atomic(path: Path, data: Any, *, fsync: bool = True) -> None:
    """Serialise `data` first (so an encoding error leaves the old file alone), then replace."""
    write_bytes_atomic(path, dumps_compact(data).encode("utf-8"), fsync=fsync)


def quarantine(path: Path) -> Path | None:
    """Move `path` aside as `<name>.corrupt-<UTC time>`; None if it has already gone."""
    stamp = utcnow().strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    return target


def read_json(path: Path) -> Any | None:
    """The parsed contents of `path`, or None when it does not exist.

    A file that exists but does not parse is kept for inspection under a `.corrupt-<time>` name
    and CorruptStateFile is raised, so the caller rebuilds instead of silently starting empty.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        moved = quarantine(path)
        raise CorruptStateFile(path, moved, str(exc)) from exc
