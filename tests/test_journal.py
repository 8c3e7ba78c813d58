from __future__ import annotations

import json
import logging
import multiprocessing
from datetime import datetime
from pathlib import Path

import pytest
from orchestrator.state.journal import Journal, read_journal, scan_journal


def _journal(tmp_path: Path, **kw: object) -> Journal:
    return Journal(tmp_path / "runs" / "run-1" / "events.jsonl", **kw)  # type: ignore[arg-type]


def test_records_carry_ts_seq_run_id_event(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal:
        first = journal.append("run_started", tasks=["a", "b"])
        journal.append("transition", task_id="a", changes={"status": "running"})
    records = read_journal(journal.path)
    assert records[0] == first
    assert [r["seq"] for r in records] == [1, 2]
    assert {r["run_id"] for r in records} == {"run-1"}, "run id defaults to the run directory name"
    assert [r["event"] for r in records] == ["run_started", "transition"]
    assert records[1]["changes"] == {"status": "running"}
    assert datetime.fromisoformat(records[0]["ts"]).tzinfo is not None


def test_seq_continues_after_reopen(tmp_path: Path) -> None:
    with _journal(tmp_path, run_id="r") as journal:
        journal.append("a")
        journal.append("b")
    with _journal(tmp_path, run_id="r", fsync=True) as journal:
        assert journal.append("c")["seq"] == 3


def test_reserved_names_rejected(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal, pytest.raises(ValueError):
        journal.append("x", seq=5)


def test_truncated_last_line_is_ignored_and_not_glued_to(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.append("a")
    journal.append("b")
    journal.close()
    with open(journal.path, "ab") as fh:
        fh.write(b'{"ts":"2025-01-01T00:00:00+00:00","seq":3,"run_id":"run-1","ev')  # crash mid-append
    scan = scan_journal(journal.path)
    assert scan.truncated_tail and not scan.corrupt_lines
    assert [r["event"] for r in read_journal(journal.path)] == ["a", "b"]

    reopened = _journal(tmp_path)
    assert reopened.append("c")["seq"] == 3, "seq follows the last complete record"
    reopened.close()
    scan = scan_journal(journal.path)
    assert [r["event"] for r in scan.records] == ["a", "b", "c"]
    assert scan.corrupt_lines == [3] and not scan.truncated_tail


def test_corrupt_middle_lines_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"seq":1,"event":"a"}\nnot json\n\xff\n[1]\n{"seq":2,"event":"b"}\n', encoding="latin-1")
    with caplog.at_level(logging.WARNING):
        records = read_journal(path)
    assert [r["event"] for r in records] == ["a", "b"]
    assert scan_journal(path).corrupt_lines == [2, 3, 4]
    assert "skipped 3 corrupt line(s)" in caplog.text


def test_missing_journal_reads_empty(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "none.jsonl") == []


def test_seq_found_across_chunk_boundaries(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    for n in range(3):
        journal.append("big", blob="x" * 40_000, n=n)  # each record spans several 16 KiB chunks
    journal.close()
    with open(journal.path, "ab") as fh:
        fh.write(b'{"torn": "' + b"y" * 40_000)  # and a torn record longer than a chunk
    reopened = _journal(tmp_path)
    assert reopened.append("after")["seq"] == 4
    reopened.close()


def _append_many(worker: int, journal: Journal) -> None:
    for n in range(100):
        journal.append("tick", worker=worker, n=n)


def test_concurrent_processes_get_unique_increasing_seq(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.append("start")  # the parent's descriptor is inherited by the forked children
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(w, journal)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    journal.close()
    lines = journal.path.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    assert [r["seq"] for r in records] == list(range(1, 402))
    for worker in range(4):
        assert [r["n"] for r in records if r.get("worker") == worker] == list(range(100))
