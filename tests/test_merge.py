"""Merge check and integration on real repositories: in-memory merges, one new branch, nothing else."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from orchestrator.cli.commands import integrate as integrate_cmd
from orchestrator.cli.commands import merge_check as merge_check_cmd
from orchestrator.errors import InputError
from orchestrator.gitops.merge import integrate, merge_check

from conftest import git

BASE_FILES = {"a.txt": "one\ntwo\nthree\n", "b.txt": "bee\n", "c.txt": "sea\n", "d.txt": "dee\n"}


def branch(repo: Path, name: str, start: str, files: dict[str, str]) -> str:
    """Create `name` at `start` with one commit writing `files`, without touching the checkout."""
    git(repo, "worktree", "add", "-q", "-b", name, str(repo.parent / f"wt-{name.replace('/', '-')}"), start)
    wt = repo.parent / f"wt-{name.replace('/', '-')}"
    for rel, content in files.items():
        (wt / rel).write_text(content)
    git(wt, "commit", "-qam", f"{name} change")
    sha = git(wt, "rev-parse", "HEAD")
    git(repo, "worktree", "remove", str(wt))
    return sha


def write_report(repo: Path, run_id: str, base: str, tasks: list[tuple[str, str, str]]) -> None:
    run_dir = repo / ".gadugi" / "runs" / run_id
    run_dir.mkdir(parents=True)
    rows = [{"task_id": t, "title": f"Task {t}", "status": s, "branch": f"gadugi/{t}"} for t, s, _ in tasks]
    (run_dir / "report.json").write_text(json.dumps({"run_id": run_id, "base_sha": base, "tasks": rows}))


def snapshot(repo: Path) -> tuple[str, str, str, str, float]:
    """Every ref, HEAD, git status and the index mtime: what `integrate` must leave alone."""
    index_mtime = (repo / ".git" / "index").stat().st_mtime_ns
    return (
        git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        git(repo, "rev-parse", "HEAD"),
        # No optional locks: a plain `git status` refreshes (rewrites) the index itself.
        git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all"),
        git(repo, "worktree", "list", "--porcelain"),
        index_mtime,
    )


@pytest.fixture
def overlap_repo(make_repo) -> tuple[Path, str]:
    repo = make_repo(BASE_FILES)
    base = git(repo, "rev-parse", "HEAD")
    branch(repo, "gadugi/t1", base, {"a.txt": "one\nTWO from t1\nthree\n"})
    branch(repo, "gadugi/t2", base, {"a.txt": "one\ntwo by t2\nthree\n", "d.txt": "dee t2\n"})
    t3 = branch(repo, "gadugi/t3", base, {"b.txt": "bee t3\n"})
    branch(repo, "gadugi/t4", t3, {"c.txt": "sea t4\n"})  # stacked on t3, as dependents are
    return repo, base


def test_overlapping_branches_named_and_clean_rest_integrated(overlap_repo: tuple[Path, str]) -> None:
    repo, base = overlap_repo
    branches = [(t, f"gadugi/{t}") for t in ("t1", "t2", "t3", "t4")]
    report = merge_check(repo, base, branches)
    assert [c.status for c in report.branches] == ["clean"] * 4
    assert [(pc.a, pc.b, pc.files) for pc in report.conflicts] == [("t1", "t2", ["a.txt"])]
    assert len(report.merge_order) == 3 and {"t3", "t4"} <= set(report.merge_order)
    (left_out,) = report.rejected
    assert left_out.task_id in ("t1", "t2") and left_out.files == ["a.txt"]
    assert left_out.conflicts_with == [({"t1", "t2"} - {left_out.task_id}).pop()]

    before = snapshot(repo)
    result = integrate(repo, report, "integration/run")
    after = snapshot(repo)
    new_ref = f"refs/heads/integration/run {result.head}"
    assert after[0].splitlines() == sorted(before[0].splitlines() + [new_ref])
    assert after[1:] == before[1:]
    assert result.merged == report.merge_order
    kept = ({"t1", "t2"} - {left_out.task_id}).pop()
    assert git(repo, "show", "integration/run:b.txt") == "bee t3"
    assert git(repo, "show", "integration/run:c.txt") == "sea t4"
    expected_a = {"t1": "one\nTWO from t1\nthree", "t2": "one\ntwo by t2\nthree"}[kept]
    assert git(repo, "show", "integration/run:a.txt") == expected_a
    for t in report.merge_order:
        subprocess.run(["git", "merge-base", "--is-ancestor", f"gadugi/{t}", "integration/run"], cwd=repo, check=True)

    with pytest.raises(InputError, match="already exists"):
        integrate(repo, report, "integration/run")


def test_largest_clean_set_beats_plan_order(make_repo) -> None:
    # x conflicts with both y and z; y and z merge together: the best set is {y, z}, not {x}.
    repo = make_repo(BASE_FILES)
    base = git(repo, "rev-parse", "HEAD")
    branch(repo, "gadugi/x", base, {"a.txt": "x\n", "b.txt": "x\n"})
    branch(repo, "gadugi/y", base, {"a.txt": "y\n"})
    branch(repo, "gadugi/z", base, {"b.txt": "z\n"})
    report = merge_check(repo, base, [("x", "gadugi/x"), ("y", "gadugi/y"), ("z", "gadugi/z")])
    assert sorted(report.merge_order) == ["y", "z"]
    assert [r.task_id for r in report.rejected] == ["x"]
    assert sorted(report.rejected[0].conflicts_with) == ["y", "z"]


def test_missing_empty_and_base_conflict(make_repo) -> None:
    repo = make_repo(BASE_FILES)
    base = git(repo, "rev-parse", "HEAD")
    branch(repo, "gadugi/edits-a", base, {"a.txt": "branch\n"})
    git(repo, "branch", "gadugi/empty", base)
    moved = branch(repo, "main-moved", base, {"a.txt": "moved on\n"})
    report = merge_check(repo, moved, [("e", "gadugi/edits-a"), ("n", "gadugi/empty"), ("m", "gadugi/gone")])
    assert [c.status for c in report.branches] == ["conflict", "empty", "missing"]
    assert report.branches[0].conflicted_files == ["a.txt"]
    assert report.merge_order == []
    assert {r.task_id: r.reason for r in report.rejected} == {"e": "conflicts with the base", "m": "branch no longer exists"}


def cli() -> click.Group:
    group = click.Group()
    group.add_command(merge_check_cmd.command)
    group.add_command(integrate_cmd.command)
    return group


def test_commands_latest_run(overlap_repo: tuple[Path, str]) -> None:
    repo, base = overlap_repo
    write_report(repo, "orchestration-1", base, [("t1", "failed", ""), ("t3", "completed", "")])
    write_report(repo, "orchestration-2", base, [(t, "completed", "") for t in ("t1", "t2", "t3", "t4")])
    os.utime(repo / ".gadugi/runs/orchestration-1/report.json", (1, 1))
    runner = CliRunner()
    res = runner.invoke(cli(), ["merge-check", "--project-root", str(repo), "--json"])
    assert res.exit_code == 1, res.output
    data = json.loads(res.output)
    assert data["run_id"] == "orchestration-2"
    assert [(c["a"], c["b"], c["files"]) for c in data["conflicts"]] == [("t1", "t2", ["a.txt"])]
    res = runner.invoke(cli(), ["merge-check", "orchestration-1", "--project-root", str(repo)])
    assert res.exit_code == 0, res.output
    assert "merge order (1 clean): t3" in res.output
    (repo / ".gadugi/runs/orchestration-3").mkdir()  # started, not finished: no report yet
    res = runner.invoke(cli(), ["merge-check", "--project-root", str(repo)])
    assert res.exit_code == 1 and "run orchestration-3 has not finished" in res.output
    (repo / ".gadugi/runs/orchestration-3").rmdir()

    res = runner.invoke(cli(), ["integrate", "--project-root", str(repo), "--into", "integ"])
    assert res.exit_code == 1 and "created integ" in res.output and "t1 <-> t2: a.txt" in res.output
    res = runner.invoke(cli(), ["integrate", "--project-root", str(repo), "--into", "integ"])
    assert res.exit_code == 1 and res.output.strip().splitlines()[-1] == (
        "error: branch 'integ' already exists; choose a new name for the integration branch")
    res = runner.invoke(cli(), ["integrate", "--project-root", str(repo)])
    assert res.exit_code == 1 and "nothing to do" in res.output


def test_pr_without_gh_says_so(overlap_repo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo, base = overlap_repo
    write_report(repo, "r", base, [("t3", "completed", "")])
    bindir = tmp_path / "nogh"
    bindir.mkdir()
    (bindir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(bindir))
    res = CliRunner().invoke(cli(), ["integrate", "--project-root", str(repo), "--pr"])
    assert res.exit_code == 1
    assert "gh (GitHub CLI) is not installed: no pull requests opened" in res.output
    assert git(repo, "remote") == ""


def test_pr_with_authenticated_gh(overlap_repo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo, base = overlap_repo
    write_report(repo, "r", base, [("t3", "completed", ""), ("t4", "completed", ""), ("t1", "failed", "")])
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(repo, "remote", "add", "origin", str(remote))
    bindir = tmp_path / "ghbin"
    bindir.mkdir()
    calls = tmp_path / "gh.log"
    (bindir / "gh").write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> {calls}\n"
        "if [ \"$1\" = pr ]; then echo \"https://github.example/pr/$4\"; fi\n"
    )
    (bindir / "gh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    res = CliRunner().invoke(cli(), ["integrate", "--project-root", str(repo), "--pr", "--json"])
    assert res.exit_code == 0, res.output
    prs = json.loads(res.output)["pull_requests"]
    assert [(p["task_id"], p["url"]) for p in prs] == [
        ("t3", "https://github.example/pr/gadugi/t3"), ("t4", "https://github.example/pr/gadugi/t4")]
    log = calls.read_text().splitlines()
    assert log[0] == "auth status"
    assert log[1].startswith("pr create --head gadugi/t3 --base main --title Task t3")
    assert set(git(remote, "for-each-ref", "--format=%(refname)").splitlines()) == {
        "refs/heads/gadugi/t3", "refs/heads/gadugi/t4"}
