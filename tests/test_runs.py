"""find_run: the one way `status`, `cancel`, `export`, `clean`, `resume`, `merge-check` and
`integrate` name a run, by id or the latest."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from orchestrator.errors import InputError
from orchestrator.state.runs import find_run, run_dirs

OLD, NEW = "orchestration-20250101-120000-ab12", "orchestration-20250102-090000-cd34"


def make_runs(root: Path, *run_ids: str) -> None:
    for run_id in run_ids:
        (root / ".gadugi" / "runs" / run_id).mkdir(parents=True)


def name_in_registry(root: Path, run_id: str) -> None:
    monitoring = root / ".gadugi" / "monitoring"
    monitoring.mkdir(parents=True, exist_ok=True)
    (monitoring / "process_registry.json").write_text(json.dumps({"run_id": run_id, "processes": {}}))


def test_by_id_and_the_monitoring_dir(tmp_path: Path) -> None:
    make_runs(tmp_path, OLD, NEW)
    run = find_run(tmp_path, OLD)
    assert run.run_id == OLD and run.run_dir == tmp_path / ".gadugi" / "runs" / OLD
    assert run.monitoring_dir == tmp_path / ".gadugi" / "monitoring"
    assert find_run(tmp_path, OLD, tmp_path / "mon").monitoring_dir == tmp_path / "mon"
    assert run_dirs(tmp_path) == [run.run_dir, find_run(tmp_path, NEW).run_dir]


def test_an_unknown_id_says_what_there_is(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no run 'x' under .*\(there are no runs yet\)"):
        find_run(tmp_path, "x")
    make_runs(tmp_path, OLD, NEW)
    with pytest.raises(InputError, match=f"did you mean {OLD}"):
        find_run(tmp_path, OLD[:-1] + "3")  # a typo in the suffix
    with pytest.raises(InputError, match=f"the latest: {NEW}, {OLD}$"):
        find_run(tmp_path, "nightly")
    (tmp_path / ".gadugi" / "elsewhere").mkdir()
    for outside in ("../elsewhere", "..", "."):
        with pytest.raises(InputError, match="no run"):
            find_run(tmp_path, outside)


def test_latest_is_the_newest_run_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no run found under .*start one with `orchestrator run`"):
        find_run(tmp_path, None)
    make_runs(tmp_path, NEW, OLD)
    (tmp_path / ".gadugi" / "runs" / "notes.txt").write_text("not a run")
    assert find_run(tmp_path, None).run_id == NEW


def test_latest_is_the_run_the_registry_names(tmp_path: Path) -> None:
    """An older run resumed after a newer one is what `status` or `cancel` means now."""
    make_runs(tmp_path, OLD, NEW)
    name_in_registry(tmp_path, OLD)
    assert find_run(tmp_path, None).run_id == OLD
    # Another monitoring directory has its own registry (none here): the newest run then.
    assert find_run(tmp_path, None, tmp_path / "other").run_id == NEW
    name_in_registry(tmp_path, "orchestration-gone")  # its directory was deleted
    assert find_run(tmp_path, None).run_id == NEW
    (tmp_path / ".gadugi" / "monitoring" / "process_registry.json").write_text('{"run_id": ')  # torn
    assert find_run(tmp_path, None).run_id == NEW
