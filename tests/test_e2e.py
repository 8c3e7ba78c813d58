"""End to end: the real CLI in a subprocess, real git worktrees, the fake `claude` as the agent."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from cli_in_process import run_in_process
from conftest import git

REQUIRED_PROCESS_KEYS = {
    "task_id", "task_name", "status", "command", "working_directory", "created_at", "prompt_file", "pid",
    "started_at", "completed_at", "last_heartbeat", "exit_code", "error_message", "resource_usage",
    "run_id", "attempt", "branch", "base_sha", "worktree", "session_id", "phase", "cost_usd", "tokens",
}


def write_prompt(repo: Path, name: str, front: str, body: str) -> Path:
    path = repo / "prompts" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"---\n{front.strip()}\n---\n{body.strip()}\n")
    return path


def run_cli(repo: Path, path_env: str, *args: str, log: Path | None = None, own_process: bool = False,
            timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`orchestrator ARGS` in `repo`, in this process unless `own_process` (the CLI's own
    interpreter: `python -m orchestrator`, as run_orchestrator.sh starts it)."""
    env = {"PATH": path_env}
    if args and args[0] in ("run", "resume") and "--launch-stagger" not in args:
        args = (args[0], "--launch-stagger", "0", *args[1:])  # tests need no pacing between fake agents
    if log is not None:
        env["FAKE_CLAUDE_LOG"] = str(log)
    if not own_process:
        return run_in_process(repo, args, env)
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=repo, env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=timeout)


def peak_concurrency(spans: Mapping[str, Sequence[float]]) -> int:
    """Most intervals open at once (an interval ending as another starts does not overlap it)."""
    points = sorted([(span[0], 1) for span in spans.values()] + [(span[-1], -1) for span in spans.values()],
                    key=lambda p: (p[0], p[1]))
    running = peak = 0
    for _, delta in points:
        running += delta
        peak = max(peak, running)
    return peak


def intervals(log: Path) -> dict[str, tuple[float, float]]:
    spans: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        spans.setdefault(rec["task"], []).append(rec["ts"])
    return {task: (min(ts), max(ts)) for task, ts in spans.items()}


@pytest.fixture
def six_prompt_repo(make_repo) -> Path:
    repo = make_repo({"src/app.py": "print('app')\n", "src/util.py": "X = 1\n", "README.md": "# demo\n"})
    write_prompt(repo, "a.md", "id: a\nfiles: [src/app.py]", "# Task A\nfake-claude: slow seconds=0.6 write=src/app.py")
    write_prompt(repo, "b.md", "id: b\ndepends_on: [a]", "# Task B\nfake-claude: commit")
    write_prompt(repo, "c.md", "id: c\nfiles: [src/app.py]", "# Task C\nfake-claude: commit write=src/app.py")
    write_prompt(repo, "d.md", "id: d", "# Task D\nfake-claude: slow seconds=0.6")
    write_prompt(repo, "e.md", "id: e\ndepends_on: [b, d.md]", "# Task E\nfake-claude: commit")
    write_prompt(repo, "f.md", "id: f", "# Task F\nfake-claude: slow seconds=0.4")
    return repo


def test_six_prompts_dependencies_and_conflict(six_prompt_repo: Path, path_with: str, tmp_path: Path) -> None:
    repo = six_prompt_repo
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", *[f"prompts/{n}.md" for n in "abcdef"], "--max-parallel", "3", "--json", log=log,
                   own_process=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    assert result["total_tasks"] == 6 and result["successful_tasks"] == 6 and result["failed_tasks"] == 0
    tasks = {t["task_id"]: t for t in result["tasks"]}
    assert set(tasks) == set("abcdef")

    spans = intervals(log)
    # Start order respects the DAG: every "after" starts once its "before" has ended.
    for before, after in [("a", "b"), ("b", "e"), ("d", "e"), ("a", "c")]:
        assert spans[after][0] >= spans[before][1], (before, after, spans)
    # Never more than 3 agents at once.
    assert peak_concurrency(spans) <= 3

    branches = {tid: t["branch"] for tid, t in tasks.items()}
    for tid, branch in branches.items():
        log_text = git(repo, "log", "--format=%s", branch)
        assert f"{tid}: fake change" in log_text, (tid, log_text)
        assert len(tasks[tid]["commits"]) >= 1
    # Dependents (and conflict followers) stack on their predecessors' work.
    for before, after in [("a", "b"), ("b", "e"), ("d", "e"), ("a", "c")]:
        subprocess.run(["git", "merge-base", "--is-ancestor", branches[before], branches[after]], cwd=repo, check=True)
    # Completed tasks' worktrees are removed, their branches kept; nothing shows in git status.
    leftover = list((repo / ".worktrees").iterdir()) if (repo / ".worktrees").exists() else []
    assert leftover == [], f"completed tasks' worktrees are removed: {leftover}"
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    assert ".worktrees" not in status and ".gadugi" not in status

    monitoring = repo / ".gadugi" / "monitoring"
    registry = json.loads((monitoring / "process_registry.json").read_text())
    assert set(registry["processes"]) == set("abcdef")
    for info in registry["processes"].values():
        assert REQUIRED_PROCESS_KEYS <= set(info), REQUIRED_PROCESS_KEYS - set(info)
        assert info["status"] == "completed"
        assert info["pid"] and info["attempt"] == 1
    status_file = json.loads((monitoring / f"{result['run_id']}_status.json").read_text())
    assert status_file["status_breakdown"] == {"queued": 0, "running": 0, "completed": 6, "failed": 0, "timeout": 0,
                                               "cancelled": 0}
    assert (monitoring / f"{result['run_id']}_final.json").exists()
    run_dir = repo / ".gadugi" / "runs" / result["run_id"]
    assert (run_dir / "report.json").exists() and (run_dir / "report.md").exists()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "run_finished" for e in events)
    prompt = (run_dir / "tasks" / "e" / "prompt.md").read_text()
    assert "fake-claude: commit" in prompt and branches["e"] in prompt


def test_failing_prompt_exit_1_others_unaffected(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "ok1.md", "id: ok1", "# One\nfake-claude: commit")
    write_prompt(repo, "bad.md", "id: bad", "# Bad\nfake-claude: fail")
    write_prompt(repo, "after-bad.md", "id: after-bad\ndepends_on: [bad]", "# After\nfake-claude: commit")
    write_prompt(repo, "ok2.md", "id: ok2", "# Two\nfake-claude: commit")
    proc = run_cli(repo, path_with, "run", "ok1", "bad", "after-bad", "ok2", "--json")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    tasks = {t["task_id"]: t for t in result["tasks"]}
    assert tasks["ok1"]["status"] == "completed" and tasks["ok2"]["status"] == "completed"
    assert tasks["bad"]["status"] == "failed" and tasks["bad"]["error_message"]
    assert tasks["after-bad"]["status"] == "cancelled"
    assert "bad" in tasks["after-bad"]["error_message"]
    # The failed task's worktree is kept for inspection; the completed ones are gone.
    assert Path(tasks["bad"]["worktree"]).is_dir()
    assert not (repo / ".worktrees" / "ok1").exists()


def test_wrong_subtype_exit_zero_is_a_failure(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "w.md", "id: w", "# W\nfake-claude: wrong-subtype")
    write_prompt(repo, "n.md", "id: n", "# N\nfake-claude: no-result")
    proc = run_cli(repo, path_with, "run", "w", "n", "--json", "--retries", "0")
    assert proc.returncode == 1
    tasks = {t["task_id"]: t for t in json.loads(proc.stdout)["tasks"]}
    assert tasks["w"]["status"] == "failed" and "turn limit" in tasks["w"]["error_message"]
    assert tasks["n"]["status"] == "failed" and "result" in tasks["n"]["error_message"]


def test_uncommitted_work_is_committed_and_no_change_is_reported(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "e.md", "id: e", "# E\nfake-claude: edit")
    write_prompt(repo, "n.md", "id: n", "# N\nfake-claude: no-change")
    proc = run_cli(repo, path_with, "run", "e", "n", "--json")
    assert proc.returncode == 0, proc.stderr
    tasks = {t["task_id"]: t for t in json.loads(proc.stdout)["tasks"]}
    assert len(tasks["e"]["commits"]) == 1 and not tasks["e"]["no_changes"]
    assert "e: work left uncommitted by the agent" in git(repo, "log", "-1", "--format=%s", tasks["e"]["branch"])
    assert tasks["n"]["no_changes"] and tasks["n"]["commits"] == []


def test_verify_decides_success(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "good.md", "id: good\nverify: test -f fake/good.txt", "# G\nfake-claude: commit")
    write_prompt(repo, "bad.md", "id: bad\nverify: 'exit 3'", "# B\nfake-claude: commit")
    proc = run_cli(repo, path_with, "run", "good", "bad", "--json")
    assert proc.returncode == 1
    tasks = {t["task_id"]: t for t in json.loads(proc.stdout)["tasks"]}
    assert tasks["good"]["status"] == "completed" and tasks["good"]["verify_passed"] is True
    assert tasks["bad"]["status"] == "failed" and "verify failed" in tasks["bad"]["error_message"]


def test_a_failed_verify_shows_what_broke(make_repo, path_with: str) -> None:
    """The summary and report.md show the end of the check's output, where the traceback names the
    error, not only "exited 1"."""
    repo = make_repo({"check.py": "import sys\nprint('checking')\ndef f():\n    raise ValueError('the answer is not 42')\n"
                                  "for i in range(30):\n    print(f'noise {i}')\nf()\n"})
    write_prompt(repo, "v.md", "id: v\nverify: python3 check.py", "# V\nfake-claude: commit")
    proc = run_cli(repo, path_with, "run", "v")
    assert proc.returncode == 1
    assert "v: verify failed: `python3 check.py` exited 1: ValueError: the answer is not 42" in proc.stdout
    shown = [line for line in proc.stdout.splitlines() if line.startswith("    | ")]
    assert shown[-1] == "    | ValueError: the answer is not 42" and 2 <= len(shown) <= 5
    assert any("raise ValueError" in line for line in shown)
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    report = (run_dir / "report.md").read_text()
    block = report.split("```\n", 2)[1]
    assert "Traceback (most recent call last):" in block and block.rstrip().endswith("ValueError: the answer is not 42")
    [task] = json.loads((run_dir / "report.json").read_text())["tasks"]
    assert task["verify_output"][-1] == "ValueError: the answer is not 42" and len(task["verify_output"]) == 10


def test_missing_agent_one_clear_line(make_repo, tmp_path: Path) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# A")
    proc = run_cli(repo, "/usr/bin:/bin", "run", "a")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "claude" in proc.stderr and "npm install -g @anthropic-ai/claude-code" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (repo / ".worktrees").exists() and not (repo / ".gadugi" / "runs").exists()


def test_dry_run_creates_nothing(six_prompt_repo: Path, path_with: str) -> None:
    repo = six_prompt_repo
    before = git(repo, "for-each-ref", "--format=%(refname)")
    proc = run_cli(repo, path_with, "run", "--dry-run", *[f"prompts/{n}.md" for n in "abcdef"])
    assert proc.returncode == 0, proc.stderr
    assert "  a / c: a and c both touch src/app.py" in proc.stdout and "  b after a: " in proc.stdout
    assert "--output-format stream-json --verbose" in proc.stdout
    assert git(repo, "for-each-ref", "--format=%(refname)") == before
    assert not (repo / ".worktrees").exists() and not (repo / ".gadugi").exists()
    plan = json.loads(run_cli(repo, path_with, "plan", "--json", *[f"prompts/{n}.md" for n in "abcdef"]).stdout)
    for key in ("total_tasks", "parallelizable_tasks", "sequential_tasks", "execution_groups", "groups", "edges"):
        assert key in plan
    assert plan["total_tasks"] == 6
    kinds = {(e["before"], e["after"]): e["kind"] for e in plan["edges"]}
    assert kinds[("a", "b")] == "dependency" and kinds[("a", "c")] == "conflict"


def test_fallback_runs_one_at_a_time_in_main_checkout(make_repo, path_with: str) -> None:
    repo = make_repo()
    (repo / ".worktrees").write_text("not a directory\n")
    git(repo, "add", ".worktrees")
    git(repo, "commit", "-qm", "block worktrees")
    write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    write_prompt(repo, "b.md", "id: b", "# B\nfake-claude: commit")
    git(repo, "add", "prompts")
    git(repo, "commit", "-qm", "prompts")
    proc = run_cli(repo, path_with, "run", "a", "b", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["fallback_sequential"] is True and result["max_parallel"] == 1
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    for t in result["tasks"]:
        assert f"{t['task_id']}: fake change" in git(repo, "log", "--format=%s", t["branch"])
    no_fallback = run_cli(repo, path_with, "run", "a", "--no-fallback")
    assert no_fallback.returncode == 1 and "cannot create worktrees" in no_fallback.stderr


def test_twelve_prompts_mixed(make_repo, path_with: str, tmp_path: Path) -> None:
    """Dependencies, directory and glob conflicts, a failure with dependents, at --max-parallel 3."""
    repo = make_repo({"src/core/engine.py": "E = 1\n", "src/core/util.py": "U = 1\n", "docs/a.md": "a\n", "README.md": "r\n"})
    # verify runs while the task is still running: its worktree must be locked then.
    locked = 'git worktree list --porcelain | grep -A6 "^worktree $PWD$" | grep -q "^locked"'
    specs = {
        "t01": ("files: [src/core/]", "slow seconds=0.5 write=src/core/new.py"),
        "t02": ("files: [src/core/engine.py]", "commit write=src/core/engine.py"),  # inside t01's directory
        "t03": ("files: ['docs/*.md']", "slow seconds=0.3 write=docs/b.md"),
        "t04": ("files: [docs/a.md]", "commit write=docs/a.md"),  # glob match with t03
        "t05": ("depends_on: [t02]", "commit"),
        "t06": ("depends_on: [t05, t03]", "commit"),
        "t07": ("", "fail"),
        "t08": ("depends_on: [t07]", "commit"),
        "t09": ("depends_on: [t08]", "commit"),
        "t10": (f"verify: '{locked}'", "slow seconds=0.3"),
        "t11": ("priority: 1", "commit"),
        "t12": ("conflicts_with: [t11]", "commit"),
    }
    for tid, (front, mode) in specs.items():
        write_prompt(repo, f"{tid}.md", f"id: {tid}\n{front}", f"# Task {tid}\nfake-claude: {mode}")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", *specs, "--max-parallel", "3", "--json", log=log)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    tasks = {t["task_id"]: t for t in result["tasks"]}
    expected_failed, expected_cancelled = {"t07"}, {"t08", "t09"}
    for tid in specs:
        want = "failed" if tid in expected_failed else "cancelled" if tid in expected_cancelled else "completed"
        assert tasks[tid]["status"] == want, (tid, tasks[tid])
    assert "t07" in tasks["t08"]["error_message"] and "t08" in tasks["t09"]["error_message"]
    assert result["successful_tasks"] == 9 and result["failed_tasks"] == 1 and result["cancelled_tasks"] == 2

    spans = intervals(log)
    assert "t08" not in spans and "t09" not in spans  # never started
    ordered = [("t01", "t02"), ("t03", "t04"), ("t02", "t05"), ("t05", "t06"), ("t03", "t06"), ("t11", "t12")]
    for before, after in ordered:
        assert spans[after][0] >= spans[before][1], (before, after)
        subprocess.run(["git", "merge-base", "--is-ancestor", tasks[before]["branch"], tasks[after]["branch"]],
                       cwd=repo, check=True)
    assert peak_concurrency(spans) <= 3
    assert tasks["t10"]["verify_passed"] is True
    registry = json.loads((repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())
    assert {k: v["status"] for k, v in registry["processes"].items()} == {k: tasks[k]["status"] for k in specs}


def test_python_api(make_repo, path_with: str) -> None:
    from orchestrator import OrchestrationConfig, OrchestratorCoordinator

    repo = make_repo()
    a = write_prompt(repo, "a.md", "id: a", "# A\nfake-claude: commit")
    b = write_prompt(repo, "b.md", "id: b\ndepends_on: [a]", "# B\nfake-claude: commit")
    config = OrchestrationConfig(max_parallel=2, env=dict(os.environ, PATH=path_with))
    result = OrchestratorCoordinator(config, repo).orchestrate([a, b])
    assert result.exit_code == 0 and result.successful_tasks == 2 and result.total_tasks == 2
    assert [t.task_id for t in result.tasks] == ["a", "b"]
    assert all(t.commits for t in result.tasks)
    # b depends on a, so they ran one after the other: the measured ratio of summed task time to
    # wall time is at most 1 (a chain cannot run side by side), and it is that ratio, exactly.
    busy = sum(t.duration_seconds for t in result.tasks)
    assert result.parallel_speedup == round(busy / result.execution_time_seconds, 2)
    assert 0 < result.parallel_speedup <= 1.0
    b_started = next(t for t in result.tasks if t.task_id == "b").started_at
    a_done = next(t for t in result.tasks if t.task_id == "a").completed_at
    assert a_done is not None and b_started is not None and a_done <= b_started
    git_log = subprocess.run(["git", "merge-base", "--is-ancestor", result.tasks[0].branch, result.tasks[1].branch],
                             cwd=repo, capture_output=True)
    assert git_log.returncode == 0, "b is stacked on a's work"


def test_not_logged_in_stops_the_run_with_one_line(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    for tid in ("a", "b", "c"):
        write_prompt(repo, f"{tid}.md", f"id: {tid}", f"# {tid}\nfake-claude: auth")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "a", "b", "c", "--max-parallel", "1", log=log)
    assert proc.returncode == 1
    assert len(intervals(log)) == 1, "after the first auth failure nothing else is launched"
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "/login" in errors[0] and "ANTHROPIC_API_KEY" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    # One cause, said where it happened and once as the run's error, not once per task.
    assert (proc.stdout + proc.stderr).count("Please run /login") <= 4, proc.stdout + proc.stderr
    assert "  b: cancelled: launches were stopped after the same failure repeated (see the run's error)" in proc.stdout


def test_only_branches_that_exist_are_reported_and_a_rerun_says_which_it_did_not_reuse(
        make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a", "# a\nfake-claude: auth")
    write_prompt(repo, "b.md", "id: b\ndepends_on: [a]", "# b\nfake-claude: commit")
    proc = run_cli(repo, path_with, "run", "a", "b")
    assert proc.returncode == 1
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.startswith(("a ", "b "))}
    assert rows["a"][-1] == "gadugi/a" and rows["b"][-1] == "-"
    report = next((repo / ".gadugi" / "runs").iterdir()) / "report.md"
    assert "| b | cancelled |" in report.read_text() and "none (never started)" in report.read_text()
    assert git(repo, "branch", "--list", "gadugi/b") == ""

    write_prompt(repo, "a.md", "id: a", "# a\nfake-claude: commit")
    again = run_cli(repo, path_with, "run", "a", "b", "--json")
    assert again.returncode == 0, again.stderr
    branches = {t["task_id"]: t["branch"] for t in json.loads(again.stdout)["tasks"]}
    assert branches == {"a": "gadugi/a-2", "b": "gadugi/b"}
    assert ("warning: branches from earlier runs are kept, not reused; this run makes new ones: "
            "gadugi/a -> gadugi/a-2 (") in again.stderr


def test_generic_agent_command(make_repo, path_with: str, tmp_path: Path) -> None:
    tool = tmp_path / "my agent"  # a space in the path: arguments never pass through a shell
    tool.mkdir()
    script = tool / "tool.sh"
    script.write_text('#!/bin/sh\nset -e\ntest "$1" = --prompt-file\ngrep -q "Task G" "$2"\n'
                      'echo "$3" > generic.txt\necho working\n')
    script.chmod(0o755)
    repo = make_repo()
    write_prompt(repo, "g.md", "id: g", "# Task G\n")
    template = f"'{script}' --prompt-file {{prompt_file}} {{task_id}}"
    proc = run_cli(repo, path_with, "run", "g", "--agent-cmd", template, "--json")
    assert proc.returncode == 0, proc.stderr
    task = json.loads(proc.stdout)["tasks"][0]
    assert task["status"] == "completed" and len(task["commits"]) == 1
    assert git(repo, "show", f"{task['branch']}:generic.txt") == "g"


def test_keep_and_cleanup_worktrees(make_repo, path_with: str) -> None:
    repo = make_repo()
    write_prompt(repo, "ok.md", "id: ok", "# OK\nfake-claude: commit")
    write_prompt(repo, "bad.md", "id: bad", "# Bad\nfake-claude: fail")
    kept = json.loads(run_cli(repo, path_with, "run", "ok", "bad", "--keep-worktrees", "--json").stdout)
    assert all(Path(t["worktree"]).is_dir() for t in kept["tasks"])
    cleaned = json.loads(run_cli(repo, path_with, "run", "ok", "bad", "--cleanup-worktrees", "--json").stdout)
    assert all(t["worktree"] == "" for t in cleaned["tasks"])
    # The second run got fresh branch names; nothing of the first run was reused or deleted.
    assert {t["branch"] for t in cleaned["tasks"]} == {"gadugi/ok-2", "gadugi/bad-2"}
    assert git(repo, "rev-parse", "--verify", "gadugi/ok")
    listed = git(repo, "worktree", "list", "--porcelain")
    assert "prunable" not in listed


def test_run_budget_stops_new_launches(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo()
    for tid in ("b1", "b2", "b3", "b4"):
        write_prompt(repo, f"{tid}.md", f"id: {tid}", f"# {tid}\nfake-claude: commit")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "b1", "b2", "b3", "b4", "--max-parallel", "1", "--run-budget-usd", "0.1",
                   "--max-budget-usd", "2", "--json", log=log)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    statuses = [t["status"] for t in result["tasks"]]
    assert statuses == ["completed", "completed", "cancelled", "cancelled"], statuses
    assert "run budget of $0.10 spent" in result["abort_reason"]
    assert result["total_cost_usd"] >= 0.1
    request = json.loads(next((repo / ".gadugi" / "runs").iterdir()).joinpath("tasks", "b1", "request.json").read_text())
    assert float(request["agent_command"][request["agent_command"].index("--max-budget-usd") + 1]) == 2.0
    assert len(intervals(log)) == 2


def test_shared_context_and_predecessor_summary(make_repo, path_with: str) -> None:
    repo = make_repo()
    (repo / "prompts").mkdir()
    (repo / "prompts" / "_context.md").write_text("Stack: Python 3.11. Decision: no new dependencies.\n")
    write_prompt(repo, "first.md", "id: first", "# First\nfake-claude: commit write=src/first.py")
    write_prompt(repo, "second.md", "id: second\ndepends_on: [first]", "# Second\nfake-claude: commit")
    # A glob that picks up the context file too: it is context, not a task.
    names = sorted(str(p.relative_to(repo)) for p in (repo / "prompts").glob("*.md"))
    proc = run_cli(repo, path_with, "run", *names, "--json")
    assert proc.returncode == 0, proc.stderr
    assert {t["task_id"] for t in json.loads(proc.stdout)["tasks"]} == {"first", "second"}
    run_dir = next((repo / ".gadugi" / "runs").iterdir())
    first = (run_dir / "tasks" / "first" / "prompt.md").read_text()
    second = (run_dir / "tasks" / "second" / "prompt.md").read_text()
    assert "Decision: no new dependencies." in first and "Decision: no new dependencies." in second
    assert "## What the tasks before you did" in second and "src/first.py" in second
    assert "Committed src/first.py" in second  # the predecessor agent's final message
    assert "What the tasks before you did" not in first
