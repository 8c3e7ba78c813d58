"""cancel, export, clean, doctor, the setup hook in a real run, and the merge check after a run."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psutil

from cli_in_process import run_in_process
from conftest import git
from test_e2e import run_cli, write_prompt
from test_reliability import assert_gone, pids_from_log, start_orchestrator, started, wait_for


def cli(repo: Path, path_env: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_in_process(repo, args, {"PATH": path_env})


def test_cancel_one_task_of_a_running_run(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "h.md", "id: h", "# H\nfake-claude: hang")
    write_prompt(repo, "q.md", "id: q\ndepends_on: [ok]", "# Q\nfake-claude: commit")
    # `ok` works through the cancel of its neighbour: it ends only once the cancel has been taken.
    release = tmp_path / "release"
    write_prompt(repo, "ok.md", "id: ok", f"# OK\nfake-claude: slow until={release}")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "h", "ok", "q", "--max-parallel", "2", "--json",
                              "--interrupt-timeout", "0.3s", "--terminate-timeout", "0.3s", log=log)
    wait_for(lambda: started(log) >= {"h", "ok"})
    cancelled = cli(repo, path_with, "cancel", "h")
    assert cancelled.returncode == 0, cancelled.stderr
    release.touch()
    out, err = proc.communicate(timeout=60)
    tasks = {t["task_id"]: t for t in json.loads(out)["tasks"]}
    assert tasks["h"]["status"] == "cancelled"
    assert tasks["h"]["error_message"] == "cancelled by user (`orchestrator cancel`)", "who, not which signal"
    assert tasks["ok"]["status"] == "completed" and tasks["q"]["status"] == "completed", "the rest carry on"
    assert proc.returncode == 1
    assert_gone(pids_from_log(log))
    # Once the run is over there is nothing to cancel, said in one line.
    late = cli(repo, path_with, "cancel", "--all")
    assert late.returncode == 1 and "not active" in late.stderr and late.stderr.count("\n") == 1


def test_export(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    assert run_cli(repo, path_with, "run", "a").returncode == 0
    out = tmp_path / "export.json"
    proc = cli(repo, path_with, "export", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["registry"]["processes"]["a"]["status"] == "completed"
    assert data["results"]["a"]["commits"] and data["report"]["successful_tasks"] == 1
    assert data["registry_stats"]["completed_count"] == 1


def test_clean_keeps_work_and_doctor_reports(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "bad.md", "id: bad", "# Bad\nfake-claude: fail")
    write_prompt(repo, "bad2.md", "id: bad2", "# Bad2\nfake-claude: fail")
    proc = run_cli(repo, path_with, "run", "bad", "bad2", "--json", "--retries", "0")
    tasks = {t["task_id"]: t for t in json.loads(proc.stdout)["tasks"]}
    kept, dirty = Path(tasks["bad"]["worktree"]), Path(tasks["bad2"]["worktree"])
    assert kept.is_dir() and dirty.is_dir()
    (dirty / "notes.txt").write_text("work in progress\n")  # someone kept working in it

    doctor = cli(repo, path_with, "doctor")
    assert doctor.returncode == 1 and "dirty worktree" in doctor.stdout and "bad2" in doctor.stdout

    clean = cli(repo, path_with, "clean")
    assert clean.returncode == 0, clean.stderr
    assert not kept.exists() and dirty.is_dir(), "a dirty worktree is never removed without --force"
    assert "kept" in clean.stdout and "uncommitted" in clean.stdout
    forced = cli(repo, path_with, "clean", "--force")
    assert forced.returncode == 0 and not dirty.exists()
    # Nothing was lost: the work went to the task's branch first, and both branches remain.
    assert git(repo, "show", f"{tasks['bad2']['branch']}:notes.txt") == "work in progress"
    assert git(repo, "rev-parse", "--verify", tasks["bad"]["branch"])
    assert "prunable" not in git(repo, "worktree", "list", "--porcelain")
    assert cli(repo, path_with, "doctor").stdout.strip() == "all clear"


def test_doctor_finds_orphans_and_leftover_processes(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "h.md", "id: h", "# H\nfake-claude: hang")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "h", log=log)
    wait_for(lambda: started(log) == {"h"})
    proc.kill()  # the WorkflowManager and its agent outlive the orchestrator
    proc.communicate()
    (repo / ".worktrees" / "stray").mkdir(parents=True)
    report = cli(repo, path_with, "doctor")
    assert report.returncode == 1
    assert "leftover process" in report.stdout and "orphaned directory" in report.stdout
    assert "stale lock" in report.stdout
    assert pids_from_log(log) and all(psutil.pid_exists(p) for p in pids_from_log(log)), "nothing killed without --force"
    fixed = cli(repo, path_with, "doctor", "--force")
    assert "fixed: leftover process" in fixed.stdout and "fixed: stale lock" in fixed.stdout
    assert_gone(pids_from_log(log))
    assert (repo / ".worktrees" / "stray").is_dir(), "doctor never deletes a directory"


def test_setup_hook_in_a_real_run(make_repo, path_with: str) -> None:
    repo = make_repo({"README.md": "r\n", ".gitignore": ".env\n"})
    (repo / ".env").write_text("SECRET_MODE=on\n")
    (repo / ".worktreeinclude").write_text(".env\n")
    (repo / ".gadugi").mkdir()
    (repo / ".gadugi" / "config.toml").write_text(
        'setup = "test -f .env && echo port=$PORT > setup-ran.txt"\nport_range = "47100-47199"\n'
    )
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    proc = run_cli(repo, path_with, "run", "a", "--json")
    assert proc.returncode == 0, proc.stderr
    task = json.loads(proc.stdout)["tasks"][0]
    ran = git(repo, "show", f"{task['branch']}:setup-ran.txt")
    assert ran.startswith("port=471"), ran
    # A failing setup fails the task with its output.
    (repo / ".gadugi" / "config.toml").write_text('setup = "echo broken dependency >&2; exit 7"\n')
    failed = run_cli(repo, path_with, "run", "a", "--json", "--retries", "0")
    task = json.loads(failed.stdout)["tasks"][0]
    assert task["status"] == "failed" and "exited 7" in task["error_message"]
    assert "broken dependency" in task["error_message"]


def test_merge_check_names_overlapping_branches_and_integrate_builds_the_rest(make_repo, path_with: str) -> None:
    repo = make_repo({"README.md": "r\n"})
    # Both create the same new file, which no prompt declares and git does not track yet, so the
    # plan cannot see the overlap and runs them side by side: their branches conflict.
    write_prompt(repo, "x.md", "id: x", "# X\nfake-claude: commit write=new/shared.txt")
    write_prompt(repo, "y.md", "id: y", "# Y\nfake-claude: commit write=new/shared.txt")
    write_prompt(repo, "z.md", "id: z", "# Z\nfake-claude: commit")
    proc = run_cli(repo, path_with, "run", "x", "y", "z", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "conflict in new/shared.txt" in proc.stderr
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    report = json.loads((run_dir / "merge_check.json").read_text())
    assert [(c["a"], c["b"], c["files"]) for c in report["conflicts"]] == [("x", "y", ["new/shared.txt"])]
    assert "Merge check" in (run_dir / "report.md").read_text()
    before = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    built = cli(repo, path_with, "integrate", "--into", "integration")
    # It builds the clean rest, and exits 1 because a branch had to be left out.
    assert built.returncode == 1 and "created integration" in built.stdout, built.stderr
    assert "left out 1" in built.stdout
    merged = git(repo, "log", "--format=%s", "integration")
    assert "z: fake change" in merged and ("x: fake change" in merged) != ("y: fake change" in merged)
    after = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    assert set(after.splitlines()) - set(before.splitlines()) == {
        line for line in after.splitlines() if line.startswith("refs/heads/integration ")
    }


def test_every_subcommand_reads_the_projects_config(make_repo, path_with: str) -> None:
    """monitoring_dir and worktrees_dir from .gadugi/config.toml are where status, export, cancel,
    clean and doctor look, as the run put things there."""
    repo = make_repo({".gadugi/config.toml": 'monitoring_dir = "mon"\nworktrees_dir = "wt"\nworktree_pool = 1\n'})
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    write_prompt(repo, "b.md", "id: b", "# B\nfake-claude: fail")
    run = run_cli(repo, path_with, "run", "a", "b", "--json")
    assert run.returncode == 1, run.stderr
    run_id = json.loads(run.stdout)["run_id"]
    assert (repo / "mon" / "process_registry.json").exists() and not (repo / ".gadugi" / "monitoring").exists()
    assert (repo / "wt").is_dir()

    status = cli(repo, path_with, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["run_id"] == run_id
    export = cli(repo, path_with, "export")
    assert export.returncode == 0 and json.loads(export.stdout)["registry"]["processes"]["a"]["status"] == "completed"
    cancel = cli(repo, path_with, "cancel", "--all")
    assert cancel.returncode == 1 and "not active" in cancel.stderr
    # The pool's idle checkout is the tool's own: not a leftover lock, and a clean run is all clear.
    doctor = cli(repo, path_with, "doctor")
    assert doctor.returncode == 0 and doctor.stdout.strip() == "all clear", doctor.stdout
    clean = cli(repo, path_with, "clean")
    assert clean.returncode == 0 and str(repo / "wt") in clean.stdout, clean.stdout


def test_clean_branches_deletes_only_what_loses_nothing(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    write_prompt(repo, "n.md", "id: n", "# N\nfake-claude: no-change")
    write_prompt(repo, "f.md", "id: f", "# F\nfake-claude: commit")
    assert run_cli(repo, path_with, "run", "a", "n", "f", "--cleanup-worktrees").returncode == 0
    git(repo, "merge", "-q", "--no-edit", "gadugi/a")
    unmerged = git(repo, "rev-parse", "gadugi/f").strip()

    first = cli(repo, path_with, "clean", "--branches")
    assert first.returncode == 0, first.stderr
    assert "deleted branch gadugi/a: merged into HEAD" in first.stdout
    assert "deleted branch gadugi/n: no commits of its own" in first.stdout
    assert "kept branch gadugi/f: 1 commit(s) not in HEAD (--force deletes it" in first.stdout
    assert git(repo, "branch", "--list", "gadugi/*").split() == ["gadugi/f"]

    forced = cli(repo, path_with, "clean", "--branches", "--force")
    assert forced.returncode == 0, forced.stderr
    line = next(x for x in forced.stdout.splitlines() if x.startswith("deleted branch gadugi/f"))
    assert f"1 unmerged commit(s) ({unmerged[:10]})" in line and "refs/gadugi/trash/gadugi/f@" in line
    trash = line.rsplit(" ", 1)[-1]
    assert git(repo, "rev-parse", trash).strip() == unmerged, "the dropped work stays reachable"
    assert git(repo, "branch", "--list", "gadugi/*") == ""
    assert "nothing to clean" in cli(repo, path_with, "clean", "--branches").stdout


def test_clean_branches_keeps_a_run_that_resume_would_continue(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "h.md", "id: h", "# H\nfake-claude: hang")
    log = tmp_path / "agents.log"
    proc = start_orchestrator(repo, path_with, "h", "--interrupt-timeout", "0.3s", "--terminate-timeout", "0.3s",
                              log=log)
    wait_for(lambda: "h" in started(log))
    proc.send_signal(2)
    proc.communicate(timeout=60)
    kept = cli(repo, path_with, "clean", "--branches")
    assert kept.returncode == 0, kept.stderr
    assert "kept branch gadugi/h: run " in kept.stdout and "is not finished (`orchestrator resume" in kept.stdout
    assert git(repo, "branch", "--list", "gadugi/h").strip() == "gadugi/h"


def test_clean_runs_the_teardown_hook_like_the_run_does(make_repo, path_with: str) -> None:
    repo = make_repo({".gadugi/config.toml": 'teardown = "touch \\"$GADUGI_PROJECT_ROOT/torn-$GADUGI_TASK_ID\\""\n'})
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    assert run_cli(repo, path_with, "run", "a", "--keep-worktrees", "--worktree-pool", "0").returncode == 0
    assert not (repo / "torn-a").exists(), "kept worktrees get no teardown"
    clean = cli(repo, path_with, "clean")
    assert clean.returncode == 0 and "removed" in clean.stdout, clean.stdout
    assert (repo / "torn-a").exists(), "a worktree removed by clean had its teardown, as in a run"
