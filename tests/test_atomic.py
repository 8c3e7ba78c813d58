from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from orchestrator.errors import StateError
from orchestrator.state.atomic import (
    CorruptStateFile,
    read_json,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def test_roundtrip_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    assert read_json(path) is None
    write_json_atomic(path, {"a": [1, 2], "ü": "ß"})
    assert read_json(path) == {"a": [1, 2], "ü": "ß"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["state.json"], "temp file left behind"


def test_text_and_bytes(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "a.md", "# hé\n", fsync=False)
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.md").read_text(encoding="utf-8") == "# hé\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_unserialisable_data_leaves_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"ok": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert read_json(path) == {"ok": True}
    assert os.listdir(tmp_path) == ["state.json"]


@pytest.mark.parametrize("content", [b'{"processes": {"a": ', b"", b"\xff\xfe not utf8", b"[1, 2"])
def test_corrupt_file_is_moved_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "process_registry.json"
    path.write_bytes(content)
    with pytest.raises(CorruptStateFile) as info:
        read_json(path)
    err = info.value
    assert isinstance(err, StateError)
    assert err.path == path
    assert err.moved_to is not None and err.moved_to.name.startswith("process_registry.json.corrupt-")
    assert err.moved_to.read_bytes() == content
    assert not path.exists()
    assert read_json(path) is None


def test_two_corruptions_keep_both_copies(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    moved = []
    for content in (b"{", b"[[["):
        path.write_bytes(content)
        with pytest.raises(CorruptStateFile) as info:
            read_json(path)
        moved.append(info.value.moved_to)
    assert moved[0] != moved[1]
    assert sorted(p.read_bytes() for p in moved if p) == [b"[[[", b"{"]


def _reader(path: str, stop: multiprocessing.synchronize.Event, out: multiprocessing.Queue[tuple[int, int]]) -> None:
    good = bad = 0
    while not stop.is_set():
        try:
            with open(path, "rb") as fh:
                json.loads(fh.read())
            good += 1
        except FileNotFoundError:
            continue
        except ValueError:
            bad += 1
    out.put((good, bad))


def test_reader_never_sees_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    write_json_atomic(path, {"n": 0})
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    out: multiprocessing.Queue[tuple[int, int]] = ctx.Queue()
    proc = ctx.Process(target=_reader, args=(str(path), stop, out))
    proc.start()
    try:
        for n in range(300):
            # Big enough that a non-atomic write would be observed half-done.
            write_json_atomic(path, {"n": n, "pad": ["x" * 100] * (50 + n % 7)}, fsync=False)
    finally:
        stop.set()
        good, bad = out.get(timeout=10)
        proc.join(timeout=10)
    assert bad == 0
    assert good > 0
