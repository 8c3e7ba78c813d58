"""What `resume` decides for each state a stopped run can leave (recovery.inspect_tasks/apply),
in process: a real git repository, real registry files and a real attempt lock held by a child."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from orchestrator.models import AgentOutcome, Plan, PlannedTask, TaskResult, TaskSpec, TaskStatus
from orchestrator.run.recovery import Recovery, apply, inspect_tasks
from orchestrator.state.journal import Journal
from orchestrator.state.registry import ProcessRegistry
from orchestrator.task import attempt_lock
from orchestrator.task.wire import TaskRequest

from conftest import git

RUN = "orchestration-20260101-000000-abcd"


@pytest.fixture
def setup(make_repo, tmp_path: Path):  # type: ignore[no-untyped-def]
    repo = make_repo()
    base = git(repo, "rev-parse", "HEAD")
    tasks = []
    for i, tid in enumerate(("a", "b")):
        spec = TaskSpec(id=tid, title=tid, prompt_file=repo / f"{tid}.md", prompt_text="x", index=i)
        tasks.append(PlannedTask(spec=spec, branch=f"gadugi/{tid}", worktree=repo / ".worktrees" / tid,
                                 agent_command=["claude"]))
    plan = Plan(tasks=tasks, edges=[], skipped=[], base_ref="HEAD", base_sha=base)
    run_dir = tmp_path / "run"
    journal = Journal(run_dir / "events.jsonl", run_id=RUN)
    registry = ProcessRegistry(tmp_path / "mon", RUN, journal=journal)
    for planned in tasks:
        registry.register(planned.spec.id, task_name=planned.spec.id, command=["claude"],
                          working_directory=str(planned.worktree), prompt_file=str(planned.spec.prompt_file),
                          branch=planned.branch, base_sha=base, worktree=str(planned.worktree), priority=5)
    return repo, plan, run_dir, registry


def task_dir(run_dir: Path, tid: str) -> Path:
    path = run_dir / "tasks" / tid
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_request(run_dir: Path, repo: Path, tid: str, attempt: int) -> None:
    request = TaskRequest(run_id=RUN, task_id=tid, attempt=attempt, project_root=repo, task_dir=task_dir(run_dir, tid),
                          prompt_path=repo / "p.md", branch=f"gadugi/{tid}", worktree=repo / ".worktrees" / tid,
                          base_sha="0" * 40, agent_command=["claude"], timeout_seconds=60)
    (task_dir(run_dir, tid) / "request.json").write_text(request.model_dump_json())


def write_result(run_dir: Path, tid: str, attempt: int, status: TaskStatus, *, success: bool = False,
                 start_sha: str = "") -> None:
    result = TaskResult(task_id=tid, status=status, attempt=attempt, branch=f"gadugi/{tid}", start_sha=start_sha,
                        outcome=AgentOutcome(success=success, session_id="sess-1"))
    (task_dir(run_dir, tid) / "result.json").write_text(result.model_dump_json())


def decide(setup) -> Recovery:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    return inspect_tasks(run_dir, plan, registry.snapshot(), repo)


def test_final_states_are_kept_and_unstarted_tasks_wait(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)
    registry.transition("a", TaskStatus.COMPLETED)
    write_result(run_dir, "a", 1, TaskStatus.COMPLETED, success=True)
    found = decide(setup)
    assert set(found.finished) == {"a"} and found.finished["a"].outcome.success
    assert not found.attached and not found.ended and not found.requeued  # b: queued, attempt 1: runs as usual


def test_a_user_cancel_is_final_an_interrupt_is_not(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.CANCELLED, cancelled_by="user")
    registry.transition("b", TaskStatus.CANCELLED, cancelled_by="interrupt")
    found = decide(setup)
    assert found.finished["a"].status == TaskStatus.CANCELLED and found.finished["a"].cancelled_by == "user"
    assert set(found.requeued) == {"b"}
    # b never started: the next attempt is its first, from scratch.
    assert found.requeued["b"].attempts_used == 0 and found.requeued["b"].previous is None


def test_an_interrupted_attempt_continues_where_it_was(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)
    registry.transition("a", TaskStatus.CANCELLED, cancelled_by="interrupt")
    write_request(run_dir, repo, "a", 1)
    write_result(run_dir, "a", 1, TaskStatus.CANCELLED, start_sha="abc")
    found = decide(setup)
    back = found.requeued["a"]
    assert back.attempts_used == 1 and back.previous is not None and back.previous.start_sha == "abc"
    apply(found, registry)
    entry = registry.get("a")
    assert entry is not None and entry.status == TaskStatus.QUEUED and entry.attempt == 2
    assert entry.cancelled_by is None
    last = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()][-1]
    assert last["reason"] == "resumed: the run was interrupted" and last["reopened"] is True
    assert "re-queue a as attempt 2 (continue on gadugi/a)" in found.describe()


def test_reopening_is_refused_for_any_other_cancel(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.CANCELLED, cancelled_by="budget")
    assert not registry.transition("a", TaskStatus.QUEUED, reopen=True)
    assert registry.get("a").status == TaskStatus.CANCELLED  # type: ignore[union-attr]
    registry.transition("b", TaskStatus.RUNNING)
    registry.transition("b", TaskStatus.COMPLETED)
    assert not registry.transition("b", TaskStatus.QUEUED, reopen=True)


def test_a_running_attempt_whose_lock_is_held_is_reattached(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)
    write_request(run_dir, repo, "a", 1)
    lock = attempt_lock.lock_path(task_dir(run_dir, "a"), 1)
    fd = attempt_lock.take(lock)
    # A child holds the attempt's lock, as a WorkflowManager does, and says who it is.
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                              pass_fds=(fd,))
    os.close(fd)
    try:
        (task_dir(run_dir, "a") / "wm.json").write_text(json.dumps(
            {"pid": holder.pid, "create_time": psutil.Process(holder.pid).create_time(), "attempt": 1}))
        assert attempt_lock.is_held(lock)
        found = decide(setup)
        assert set(found.attached) == {"a"} and found.attached["a"].wm_pid == holder.pid
        assert not found.requeued and not found.ended
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
    assert not attempt_lock.is_held(lock), "the lock goes with the process"


def test_a_running_attempt_that_ended_unwatched_is_judged(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)
    write_request(run_dir, repo, "a", 1)
    write_result(run_dir, "a", 1, TaskStatus.FAILED)
    found = decide(setup)
    request, result = found.ended["a"]
    assert request.attempt == 1 and result.status == TaskStatus.FAILED


def test_a_result_of_another_attempt_is_not_adopted(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)
    registry.transition("a", TaskStatus.QUEUED, attempt=2)
    registry.transition("a", TaskStatus.RUNNING, attempt=2)
    write_request(run_dir, repo, "a", 2)
    write_result(run_dir, "a", 1, TaskStatus.FAILED)  # attempt 1's; attempt 2 left nothing
    found = decide(setup)
    assert "a" not in found.ended and found.requeued["a"].attempts_used == 2


def test_a_lost_attempt_continues_on_the_branch_this_run_made(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    base = plan.base_sha
    git(repo, "branch", "gadugi/a", base)
    registry.transition("a", TaskStatus.RUNNING)
    registry.update("a", session_id="sess-9")
    write_request(run_dir, repo, "a", 1)
    found = decide(setup)
    back = found.requeued["a"]
    assert back.attempts_used == 1
    lost = back.previous
    assert lost is not None and lost.start_sha == base  # from the branch's reflog
    assert lost.outcome.session_id == "sess-9", "the retry resumes the agent's session"
    assert (lost.outcome.failure, lost.attempt, lost.base_sha) == ("lost", 1, base)
    assert lost.error_message == "lost when the orchestrator stopped"
    apply(found, registry)
    entry = registry.get("a")
    assert entry is not None and entry.status == TaskStatus.QUEUED and entry.attempt == 2
    assert back.attempts_used == 1
    last = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()][-1]
    assert last["reason"] == "resumed: the attempt was lost with the orchestrator" and not last.get("reopened")


def test_an_attempt_that_never_started_starts_afresh(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)  # recorded, then killed before the spawn
    found = decide(setup)
    back = found.requeued["a"]
    assert back.previous is None and back.attempts_used == 0
    apply(found, registry)
    # The registry moved on to attempt 2; the next launch must be that attempt.
    assert registry.get("a").attempt == 2 and back.attempts_used == 1  # type: ignore[union-attr]


def test_a_retry_waiting_when_the_run_stopped_keeps_its_session(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)
    registry.transition("a", TaskStatus.QUEUED, attempt=2)
    write_result(run_dir, "a", 1, TaskStatus.FAILED, start_sha="abc")
    found = decide(setup)
    back = found.requeued["a"]
    assert back.attempts_used == 1 and back.previous is not None and back.previous.outcome.session_id == "sess-1"


def test_an_interrupted_attempt_killed_without_a_result_continues_on_its_branch(setup) -> None:  # type: ignore[no-untyped-def]
    """The second Ctrl-C's SIGKILL leaves no result.json: the branch the attempt made is found."""
    repo, plan, run_dir, registry = setup
    git(repo, "branch", "gadugi/b", plan.base_sha)
    registry.transition("b", TaskStatus.RUNNING)
    registry.transition("b", TaskStatus.CANCELLED, cancelled_by="interrupt")
    write_request(run_dir, repo, "b", 1)
    found = decide(setup)
    back = found.requeued["b"]
    assert back.attempts_used == 1 and back.previous is not None and back.previous.start_sha == plan.base_sha
    assert back.previous.branch == "gadugi/b" and back.previous.cancelled_by == "interrupt"


def test_a_task_the_registry_lacks_does_not_hide_the_others(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("b", TaskStatus.CANCELLED, cancelled_by="interrupt")
    entries = registry.snapshot()
    del entries["a"]  # a kill during registration
    found = inspect_tasks(run_dir, plan, entries, repo)
    assert set(found.requeued) == {"b"}


def test_a_final_task_without_a_result_keeps_what_the_registry_says(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)
    registry.transition("a", TaskStatus.QUEUED, attempt=2)
    registry.transition("a", TaskStatus.RUNNING, attempt=2)
    registry.transition("a", TaskStatus.FAILED, error_message="boom")
    found = decide(setup)
    kept = found.finished["a"]
    assert (kept.status, kept.attempt, kept.error_message, kept.branch) == (TaskStatus.FAILED, 2, "boom", "gadugi/a")
    assert kept.base_sha == plan.base_sha and kept.worktree


def hold_lock(run_dir: Path, tid: str, attempt: int, script: str) -> subprocess.Popen[bytes]:
    """A child holding the attempt's lock, as its WorkflowManager does; it runs `script` once its
    stdin closes, then exits."""
    fd = attempt_lock.take(attempt_lock.lock_path(task_dir(run_dir, tid), attempt))
    try:
        return subprocess.Popen([sys.executable, "-c", f"import sys; sys.stdin.read()\n{script}"],
                                stdin=subprocess.PIPE, pass_fds=(fd,))
    finally:
        os.close(fd)


def test_an_attached_task_keeps_its_agents_identity(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)
    registry.update("a", pid=os.getpid())  # the registry's record of the agent
    write_request(run_dir, repo, "a", 1)
    holder = hold_lock(run_dir, "a", 1, "")
    try:
        (task_dir(run_dir, "a") / "wm.json").write_text(json.dumps(
            {"pid": holder.pid, "create_time": psutil.Process(holder.pid).create_time(), "attempt": 1}))
        attached = decide(setup).attached["a"]
        assert attached.request.attempt == 1 and attached.agent_pid == os.getpid()
        assert attached.agent_create_time == psutil.Process().create_time()
        assert attached.wm_create_time == psutil.Process(holder.pid).create_time()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()


def test_a_workflow_manager_that_ends_while_resume_looks_is_judged(setup) -> None:  # type: ignore[no-untyped-def]
    """Lock held, no wm.json yet: resume waits for the process to say who it is or to end; here
    it ends, leaving its result, and the attempt is judged (never started a second time)."""
    repo, plan, run_dir, registry = setup
    registry.transition("a", TaskStatus.RUNNING)
    write_request(run_dir, repo, "a", 1)
    result = TaskResult(task_id="a", status=TaskStatus.COMPLETED, attempt=1, branch="gadugi/a")
    target = task_dir(run_dir, "a") / "result.json"
    holder = hold_lock(run_dir, "a", 1, f"open({str(target)!r}, 'w').write({result.model_dump_json()!r})")
    assert holder.stdin is not None
    holder.stdin.close()  # it writes its result and exits, whenever; resume must not guess
    try:
        found = decide(setup)
    finally:
        holder.wait()
    assert set(found.ended) == {"a"} and found.ended["a"][1].status == TaskStatus.COMPLETED
    assert not found.requeued and not found.attached


def test_unreadable_task_files_count_as_absent(setup) -> None:  # type: ignore[no-untyped-def]
    repo, plan, run_dir, registry = setup
    git(repo, "branch", "gadugi/a", plan.base_sha)
    registry.transition("a", TaskStatus.RUNNING)
    write_request(run_dir, repo, "a", 1)
    for name, text in (("wm.json", '{"pid": 1, "attempt": 1'), ("setup.json", "[1, 2]")):
        (task_dir(run_dir, "a") / name).write_text(text)
    back = decide(setup).requeued["a"]
    assert back.previous is not None and back.previous.start_sha == plan.base_sha  # from the reflog instead


def test_a_lost_attempt_whose_agent_had_finished_is_not_run_again(setup) -> None:  # type: ignore[no-untyped-def]
    """Killed in verify or commit, after the agent's success was checkpointed: the next attempt
    gets that outcome and runs only the checks."""
    from orchestrator.task.wire import AGENT_CHECKPOINT, AgentCheckpoint

    repo, plan, run_dir, registry = setup
    git(repo, "branch", "gadugi/a", plan.base_sha)
    registry.transition("a", TaskStatus.RUNNING)
    registry.transition("a", TaskStatus.CANCELLED, cancelled_by="interrupt")
    write_request(run_dir, repo, "a", 1)
    done = AgentOutcome(success=True, session_id="sess-2", num_turns=3)
    (task_dir(run_dir, "a") / AGENT_CHECKPOINT).write_text(AgentCheckpoint(attempt=1, outcome=done).model_dump_json())
    back = decide(setup).requeued["a"]
    assert back.previous is not None and back.previous.outcome.success and back.previous.outcome.num_turns == 3
    # A checkpoint of another attempt says nothing about this one.
    (task_dir(run_dir, "a") / AGENT_CHECKPOINT).write_text(AgentCheckpoint(attempt=2, outcome=done).model_dump_json())
    back = decide(setup).requeued["a"]
    assert back.previous is not None and not back.previous.outcome.success
