"""The run journal: append-only NDJSON (`events.jsonl`) of every transition and notable event.

It is the record of what happened, not a view of it: the registry can be rebuilt from it when its
JSON file is lost or corrupt. Each record is one `os.write` of one whole line on an `O_APPEND`
descriptor, so concurrent appenders never interleave bytes, and a short `flock` on the journal
itself keeps `seq` strictly increasing across processes.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from orchestrator.models import iso

log = logging.getLogger(__name__)

RESERVED = frozenset({"ts", "seq", "run_id", "event"})
_TAIL_CHUNK = 16384


class Journal:
    """Appender for one `events.jsonl`; safe to share between threads and processes."""

    def __init__(self, path: Path, run_id: str | None = None, *, fsync: bool = False) -> None:
        """`run_id` defaults to the parent directory name (the layout is `runs/<run-id>/`)."""
        self.path = path
        self.run_id = run_id if run_id is not None else path.parent.name
        self.fsync = fsync
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        # (file size after our last append, seq we wrote): when the size still matches, nobody
        # else appended and the next seq needs no read.
        self._last: tuple[int, int] | None = None

    def append(self, event: str, *, fsync: bool | None = None, **fields: Any) -> dict[str, Any]:
        """Append one record and return it (with its `ts` and `seq`)."""
        clash = RESERVED & fields.keys()
        if clash:
            raise ValueError(f"journal fields may not be named {sorted(clash)}")
        with self._mutex:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                seq = self._next_seq(fd, size)
                record: dict[str, Any] = {"ts": iso(), "seq": seq, "run_id": self.run_id, "event": event}
                record.update(fields)
                line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"
                # A torn last line (crash mid-append) must not swallow our record: start a new line.
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = "\n" + line
                data = line.encode("utf-8")
                view = memoryview(data)
                while view:  # one write in practice; a short write only happens on a full disk
                    view = view[os.write(fd, view) :]
                if self.fsync if fsync is None else fsync:
                    os.fsync(fd)
                self._last = (size + len(data), seq)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return record

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _descriptor(self) -> int:
        # After fork the inherited descriptor shares its open file description (and so its flock)
        # with the parent, which would let both hold the lock at once: open our own.
        if self._fd is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            self._pid = os.getpid()
            self._last = None
        return self._fd

    def _next_seq(self, fd: int, size: int) -> int:
        if self._last is not None and self._last[0] == size:
            return self._last[1] + 1
        return last_seq(fd, size) + 1


def last_seq(fd: int, size: int) -> int:
    """The seq of the last complete, parseable record, read backwards from the end (0 if none)."""
    end = size
    carry = b""  # the end part of a line whose start lies before `end`
    in_torn_tail = True  # bytes after the file's last newline: nothing, or a torn record
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        lines = (os.pread(fd, end - start, start) + carry).split(b"\n")
        end = start
        if in_torn_tail:
            if len(lines) == 1:
                carry = b""
                continue
            lines.pop()
            in_torn_tail = False
        carry = lines.pop(0) if end > 0 else b""
        for raw in reversed(lines):
            seq = _seq_of(raw)
            if seq is not None:
                return seq
    return 0


def _seq_of(raw: bytes) -> int | None:
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if isinstance(seq, int) else None


@dataclass
class JournalScan:
    """Everything readable in a journal, and what was not."""

    records: list[dict[str, Any]] = field(default_factory=list)
    corrupt_lines: list[int] = field(default_factory=list)
    """1-based line numbers of unreadable lines before the last one."""
    truncated_tail: bool = False
    """The last line was incomplete or unreadable (a crash mid-append); it was ignored."""


def scan_journal(path: Path) -> JournalScan:
    """Parse a journal, skipping unreadable lines; missing file → empty scan."""
    scan = JournalScan()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return scan
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict):
            scan.records.append(record)
        elif number == len(lines):
            scan.truncated_tail = True
        else:
            scan.corrupt_lines.append(number)
    return scan


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's records in order; a torn last line is ignored, corrupt lines are skipped
    and counted in a warning (use `scan_journal` for the details)."""
    scan = scan_journal(path)
    if scan.corrupt_lines:
        log.warning(
            "%s: skipped %d corrupt line(s): %s", path, len(scan.corrupt_lines), scan.corrupt_lines[:10]
        )
    return scan.records
