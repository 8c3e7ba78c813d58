"""The per-task subprocess: `python -m orchestrator.task --request FILE`.

It carries one task through setup → agent → verify → commit → report, in its own session so it
outlives an orchestrator crash, and always leaves a `result.json` behind. Events go to stdout as
NDJSON for the orchestrator; when nobody reads them any more the task still runs to the end.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from orchestrator.agents import claude_config, get_agent
from orchestrator.agents.sandbox import confine
from orchestrator.errors import OrchestratorError, WorktreeError
from orchestrator.gitops import git
from orchestrator.models import AgentOutcome, Phase, TaskResult, TaskStatus, iso, sum_costs, utcnow
from orchestrator.process import AgentProcess, accept_stops, stop_group
from orchestrator.state.atomic import write_bytes_atomic, write_json_atomic
from orchestrator.state.secrets import Redactor
from orchestrator.task import attempt_lock
from orchestrator.task.checkpoint import CheckpointSpec, describe, fixup_message, run_checkpoint
from orchestrator.task.spans import PhaseSpans
from orchestrator.task.stall import StallWatch
from orchestrator.task.verify import run_verify
from orchestrator.task.wire import (
    AGENT_ARGV_ENV,
    AGENT_CHECKPOINT,
    FIXUP_ARGV_ENV,
    FRESH_ARGV_ENV,
    SESSION_TOKEN,
    AgentCheckpoint,
    TaskRequest,
)
from orchestrator.worktrees.manager import WorktreeManager
from orchestrator.worktrees.pool import WorktreePool
from orchestrator.worktrees.provision import WorktreeSetupError, prepare_worktree

HEARTBEAT_INTERVAL = 0.25  # seconds between heartbeat events sent upstream (every event counts)


class Emitter:
    """Writes events to stdout; once the reader is gone it goes quiet instead of failing the task."""

    def __init__(self, task_id: str, log_path: Path, redactor: Redactor) -> None:
        self.task_id = task_id
        self.redactor = redactor
        self.alive = True
        self._lock = threading.Lock()
        self._log = log_path.open("a", encoding="utf-8")

    def emit(self, event: str, **data: Any) -> None:
        line = self.redactor.text(json.dumps({"event": event, "task_id": self.task_id, "ts": iso(), "data": data}))
        with self._lock:
            if event in ("phase", "log", "agent_started", "result"):
                self._log.write(line + "\n")
                self._log.flush()
            if not self.alive:
                return
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, OSError):
                self.alive = False

    def log(self, message: str) -> None:
        self.emit("log", message=message)


class WorkflowManager:
    def __init__(self, request: TaskRequest, emitter: Emitter, spans: PhaseSpans | None = None) -> None:
        self.request = request
        self.emitter = emitter
        self.spans = spans  # set when the run is traced
        self.env = git.no_git_env(os.environ)
        self.env.update(
            {
                "GADUGI_RUN_ID": request.run_id,
                "GADUGI_TASK_ID": request.task_id,
                "GADUGI_BRANCH": request.branch,
                "GADUGI_WORKTREE": str(request.worktree),
                "GADUGI_BASE_SHA": request.base_sha,
                "GADUGI_ATTEMPT": str(request.attempt),
                "NO_COLOR": "1",
            }
        )
        self.process: AgentProcess | None = None
        self.hook: subprocess.Popen[bytes] | None = None  # the setup hook or verify command running now
        self.stop_reason: str | None = None  # "timeout", "cancelled" or "stalled"
        self.stop_detail = ""
        self.phase = Phase.QUEUED
        self.stop_phase: Phase | None = None  # where we were when the stop came
        self._stop_lock = threading.Lock()
        self._last_event = time.monotonic()

    # -- control -------------------------------------------------------------------------------

    def request_stop(self, reason: str, why: str) -> None:
        """Stop the agent (timeout, cancel or stall); the escalation runs on a thread, never in a
        signal handler, and the first reason wins."""
        with self._stop_lock:
            if self.stop_reason is not None:
                return
            self.stop_reason = reason
            self.stop_detail = why
            self.stop_phase = self.phase
        self.emitter.log(f"stopping: {why}")
        proc, hook = self.process, self.hook
        if proc is not None:
            threading.Thread(target=self._escalate, args=(proc, why), daemon=True).start()
        if hook is not None:
            threading.Thread(target=self._stop_hook, args=(hook, why), daemon=True).start()

    def _escalate(self, proc: AgentProcess, why: str) -> None:
        proc.stop(
            why,
            interrupt_timeout=self.request.interrupt_timeout,
            terminate_timeout=self.request.terminate_timeout,
            log=self.emitter.log,
        )

    def _stop_hook(self, hook: subprocess.Popen[bytes], why: str) -> None:
        stop_group(hook, why, interrupt_timeout=self.request.interrupt_timeout,
                   terminate_timeout=self.request.terminate_timeout, log=self.emitter.log)

    def _hook_started(self, hook: subprocess.Popen[bytes]) -> None:
        """A setup hook or verify command exists: a stop (cancel, deadline) now reaches it too,
        and one that came while it was being spawned is applied at once."""
        with self._stop_lock:
            self.hook = hook
            why = self.stop_detail if self.stop_reason is not None else None
        if why is not None:
            threading.Thread(target=self._stop_hook, args=(hook, why), daemon=True).start()

    # -- phases --------------------------------------------------------------------------------

    def run(self) -> TaskResult:
        req = self.request
        started = utcnow()
        t0 = time.monotonic()
        result = TaskResult(
            task_id=req.task_id,
            status=TaskStatus.FAILED,
            attempt=req.attempt,
            branch=req.branch,
            worktree=str(req.worktree),
            base_sha=req.base_sha,
            started_at=iso(started),
        )
        start_sha = ""
        # The task's deadline runs from our start and covers every phase: setup, agent, verify.
        deadline = threading.Timer(req.timeout_seconds, self.request_stop,
                                   args=("timeout", f"task timeout of {req.timeout_seconds:g}s reached"))
        deadline.daemon = True
        deadline.start()
        try:
            self._phase(Phase.SETUP)
            if req.claude_config_dir is not None:
                # Every later `claude` of this task (agent, resumed session, fix-up rounds) uses it.
                claude_config.seed(req.claude_config_dir, self.env)
                self.env[claude_config.CONFIG_DIR_ENV] = str(req.claude_config_dir)
            start_sha = self._setup()
            result.head_sha = result.start_sha = start_sha
            # Written before the agent starts, so a resume can continue this branch if we die.
            write_json_atomic(req.task_dir / "setup.json", {"attempt": req.attempt, "start_sha": start_sha})
            if req.agent_outcome is not None:
                # An interrupted attempt's agent had already succeeded: its work is on the branch,
                # only the checks after it were cut short. The agent does not run twice.
                self.emitter.log("the agent finished in an earlier attempt; running the checks after it")
                result.outcome = req.agent_outcome.model_copy()
                self._checkpoint(result.outcome)
            elif self.stop_reason is None:
                self._phase(Phase.AGENT)
                result.outcome = self._run_agent()
                if not result.outcome.success and self.spans is not None:
                    self.spans.fail(result.outcome.message or result.outcome.failure)
                self._checkpoint(result.outcome)
            else:
                result.outcome = AgentOutcome(failure="cancelled", message="stopped before the agent started")
            self._verify_and_commit(result, t0)
            if result.outcome.success and self.stop_reason is None:
                self._validate(result, start_sha, t0)
            self._phase(Phase.REPORT)
            self._describe_work(result, start_sha)
        except OrchestratorError as exc:
            result.outcome.failure = result.outcome.failure if result.outcome.failure != "none" else "setup_failed"
            result.error_message = str(exc)
            self.emitter.log(f"error: {exc}")
            if self.spans is not None:
                self.spans.fail(str(exc))
        finally:
            deadline.cancel()
            if start_sha and not req.in_place:
                try:
                    self._worktrees().finish(req.worktree)
                except OrchestratorError as exc:
                    self.emitter.log(f"could not unlock worktree: {exc}")
        result.status, message = self._final_status(result)
        if result.error_message is None and result.status != TaskStatus.COMPLETED:
            result.error_message = message
        result.completed_at = iso()
        result.duration_seconds = round(time.monotonic() - t0, 3)
        self._phase(Phase.DONE)
        return result

    def _verify_and_commit(self, result: TaskResult, t0: float) -> None:
        req = self.request
        if result.outcome.success and self.stop_reason is None and req.verify:
            self._phase(Phase.VERIFY)
            remaining = max(0.1, req.timeout_seconds - (time.monotonic() - t0))
            result.verify = run_verify(req.verify, req.worktree, self.env, timeout=remaining,
                                       log_path=req.task_dir / "workflow_manager.log", on_start=self._hook_started)
            self.hook = None
        self._phase(Phase.COMMIT)
        sha = git.commit_all(
            req.worktree, f"{req.task_id}: work left uncommitted by the agent\n\nGadugi-Task: {req.task_id}"
        )
        result.auto_committed = result.auto_committed or sha is not None

    def _validate(self, result: TaskResult, start_sha: str, t0: float) -> None:
        """The checkpoint on the committed work; while it fails and rounds are left, the agent is
        given the evidence and one more turn, and everything is checked again. A stop (timeout,
        cancel) ends the rounds like it ends the agent."""
        val = self.request.validation
        spec = CheckpointSpec(placeholder_check=val.placeholder_check, placeholder_patterns=val.placeholder_patterns,
                              prompt_text=val.prompt_text, outputs=val.outputs, requirements=val.requirements)
        rounds = 0
        while True:
            self._phase(Phase.VERIFY)
            validation = run_checkpoint(self.request.worktree, start_sha, spec, final_message=result.outcome.final_message,
                                        verify=result.verify, fix_rounds=rounds)
            result.validation = validation
            if validation.passed or rounds >= val.fix_rounds or self.stop_reason is not None:
                return
            if val.budget_usd is not None and (result.outcome.cost_usd or 0.0) >= val.budget_usd:
                self.emitter.log(f"no fix-up round: the run budget left at launch (${val.budget_usd:.2f}) is spent")
                return
            rounds += 1
            why = describe(validation)
            self.emitter.log(f"fixing {rounds}/{val.fix_rounds}: {why}")
            self.emitter.emit("fixup", round=rounds, rounds=val.fix_rounds, reason=why)
            if self.spans is not None:
                self.spans.fixup(rounds, why)
            message = fixup_message(validation, result.verify, round_number=rounds, rounds=val.fix_rounds,
                                    requirements_block=bool(val.requirements))
            self._phase(Phase.AGENT)
            fixed = self._run_fix_round(result.outcome, message, rounds)
            if fixed is None:
                self.emitter.log("no way to give the agent another turn: the task fails with its findings")
                result.validation.fix_rounds = rounds - 1
                return
            result.outcome = _summed(result.outcome, fixed)
            if not fixed.success:
                result.validation.fix_rounds = rounds
                return
            self._checkpoint(result.outcome)
            result.verify = None
            self._verify_and_commit(result, t0)

    def _run_fix_round(self, previous: AgentOutcome, message: str, number: int) -> AgentOutcome | None:
        """Resume the agent's session with the fix-up message, else start it afresh with the whole
        task and the message; None when neither is possible."""
        req = self.request
        val = req.validation
        prompt_path = val.prompt_path or req.task_dir / "fixup-prompt.md"
        write_bytes_atomic(req.task_dir / f"fixup-{number}.md", message.encode())
        lost: AgentOutcome | None = None
        if val.resume_command and previous.session_id:
            write_bytes_atomic(prompt_path, message.encode())
            command = [previous.session_id if arg == SESSION_TOKEN else arg for arg in val.resume_command]
            outcome = self._run_agent_once(command, prompt_path)
            if outcome.failure != "session_lost" or not val.fresh_command or self.stop_reason is not None:
                return outcome
            self.emitter.log(f"session {previous.session_id} cannot be resumed ({outcome.message}); "
                             "starting the agent afresh with the full prompt and the findings")
            lost = outcome
        if not val.fresh_command:
            return lost
        full_prompt = (req.fresh_prompt_path or req.prompt_path).read_text(encoding="utf-8", errors="replace")
        write_bytes_atomic(prompt_path, f"{message}\n{full_prompt}".encode())
        outcome = self._run_agent_once(val.fresh_command, prompt_path)
        return outcome if lost is None else _summed(lost, outcome)

    def _checkpoint(self, outcome: AgentOutcome) -> None:
        req = self.request
        write_bytes_atomic(req.task_dir / AGENT_CHECKPOINT,
                           AgentCheckpoint(attempt=req.attempt, outcome=outcome).model_dump_json().encode())

    def _phase(self, phase: Phase) -> None:
        self.phase = phase
        self.emitter.emit("phase", phase=phase.value)
        if self.spans is not None:
            self.spans.phase(phase.value)

    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        """A traced step inside a phase; nothing when the run is not traced."""
        if self.spans is None:
            yield
            return
        with self.spans.step(name):
            yield

    def _worktrees(self) -> WorktreeManager:
        req = self.request
        return WorktreeManager(req.project_root, worktrees_dir=req.worktrees_dir, branch_prefix=req.branch_prefix)

    def _setup(self) -> str:
        req = self.request
        manager = self._worktrees()
        # Lock reasons of this task in this run start with `owner`; what an earlier attempt killed
        # while setting up left locked with it holds no work and is cleared, never refused.
        owner = f"gadugi run={req.run_id} task={req.task_id} "
        reason = f"{owner}pid={os.getpid()}"
        if req.reuse_worktree and req.start_sha:
            # A retry continues in the worktree (and on the branch) of the earlier attempt, whose
            # leftovers were committed, so nothing done so far is lost or redone from scratch.
            if req.in_place:
                git.switch_branch(req.worktree, req.branch)
            else:
                with self._step("worktree"):
                    manager.reattach(req.task_id, req.branch, req.worktree, lock_reason=reason)
            self.emitter.log(f"attempt {req.attempt}: continuing on {req.branch} in {req.worktree}")
            return req.start_sha
        preds = [(p.branch, p.head_sha) for p in req.predecessors]
        if req.in_place:
            start = manager.start_commit(req.task_id, base_sha=req.base_sha, predecessors=preds)
            git.switch_new_branch(req.worktree, req.branch, start)
            return start
        created = None
        with self._step("worktree"):
            # A sparse task never takes a pooled full checkout (nor returns its sparse one, pool.py).
            if req.pool_size and not req.sparse_scopes:
                start = manager.start_commit(req.task_id, base_sha=req.base_sha, predecessors=preds)
                created = WorktreePool(manager, size=req.pool_size).acquire(
                    req.task_id, req.branch, req.worktree, start_sha=start, lock_reason=reason, leftover_of=owner)
                if created is not None:
                    self.emitter.log(f"recycled a pooled worktree into {req.worktree}")
            if created is None:
                created = manager.create(req.task_id, req.branch, req.worktree, base_sha=req.base_sha,
                                         predecessors=preds, lock_reason=reason, sparse_scopes=req.sparse_scopes,
                                         leftover_of=owner)
        if created.merged_from:
            self.emitter.log(f"started from the merge of {', '.join(created.merged_from)}")
        with self._step("setup_hook"):
            self._prepare(created.start_sha)
        return created.start_sha

    def _prepare(self, start_sha: str) -> None:
        """.worktreeinclude copies, $PORT and the setup hook; a failing setup fails the task."""
        req = self.request
        try:
            prepared = prepare_worktree(
                req.project_root, req.worktree, task_id=req.task_id, branch=req.branch, base_sha=start_sha,
                setup=req.setup, port_range=req.port_range, log_path=req.task_dir / "workflow_manager.log",
                include_file=req.worktree_include, env=self.env, on_start=self._hook_started,
            )
        except WorktreeSetupError as exc:
            raise WorktreeError(f"{exc}\n{exc.output_tail[-2000:]}".rstrip()) from exc
        if prepared.copied:
            self.emitter.log(f"copied {len(prepared.copied)} ignored file(s) listed in {req.worktree_include}")
        if prepared.port is not None:
            self.env["PORT"] = str(prepared.port)

    def _run_agent(self) -> AgentOutcome:
        req = self.request
        outcome = self._run_agent_once(req.agent_command, req.prompt_path)
        if (outcome.failure == "session_lost" and req.fresh_agent_command and req.fresh_prompt_path
                and self.stop_reason is None):
            # The session to continue is gone (another machine, a HOME without it, cleaned up, or
            # never saved): start afresh on the same branch, with the whole task and a note.
            self.emitter.log(f"session {req.resume_session} cannot be resumed ({outcome.message}); "
                             "starting the agent afresh with the full prompt on the same branch")
            lost = outcome
            outcome = self._run_agent_once(req.fresh_agent_command, req.fresh_prompt_path)
            if lost.cost_usd:
                outcome.cost_usd = sum_costs([outcome.cost_usd, lost.cost_usd])
        return outcome

    def _run_agent_once(self, command: list[str], prompt_path: Path) -> AgentOutcome:
        req = self.request
        agent = get_agent(req.agent)
        parser = agent.parser(model=req.model)
        # Wrapped only now: the worktree's git paths exist once setup has made the worktree.
        confined = confine(command, req.sandbox, agent=req.agent, worktree=req.worktree, branch=req.branch,
                           project_root=req.project_root, env=self.env, extra_writable=req.sandbox_write,
                           allowed_domains=req.allowed_domains, home_state=agent.home_state,
                           trust_project=req.trust_project)
        command = confined.argv
        proc = AgentProcess(
            command,
            cwd=req.worktree,
            env={**self.env, **confined.env},
            # An agent that reads its prompt from a file named on its command line gets no stdin,
            # so it can never block reading one.
            stdin_path=prompt_path if agent.prompt_on_stdin else None,
            stdout_log=req.task_dir / "agent.jsonl",
            stderr_log=req.task_dir / "agent.stderr.log",
            redact=self.emitter.redactor.raw,
        )
        try:
            proc.start()
        except OSError as exc:
            confined.cleanup()
            return AgentOutcome(failure="agent_error", message=f"could not start agent: {exc}")
        with self._stop_lock:
            self.process = proc
            stopping = self.stop_reason is not None
        self.emitter.emit("agent_started", pid=proc.pid, create_time=proc.create_time, command=command)
        if stopping:  # a stop arrived while we were starting
            threading.Thread(target=self._escalate, args=(proc, self.stop_detail or "cancelled"), daemon=True).start()
        watchdog = self._start_stall_watch(proc)
        last_sent = 0.0
        declared: AgentOutcome | None = None
        try:
            for line in proc.lines():
                self._last_event = time.monotonic()
                event = parser.feed(line)
                if event is None:
                    continue
                if event.type == "result" and (said := parser.outcome(0)).success:
                    # The agent declared its work done: recorded now, so a kill of this process
                    # from here on does not cost a second run of a finished agent.
                    declared = said
                    self._checkpoint(declared)
                now = time.monotonic()
                if now - last_sent >= HEARTBEAT_INTERVAL or event.type in ("system", "result"):
                    last_sent = now
                    self._heartbeat(parser, event.summary)
            exit_code = proc.wait()
        finally:
            if watchdog is not None:
                watchdog.set()
            # Whatever the agent left running in its group (a dev server, a watcher) goes with it,
            # and then its private temp dir, also when reading its stream raised.
            proc.stop("agent finished", interrupt_timeout=0.5, terminate_timeout=0.5, log=self.emitter.log)
            confined.cleanup()
        self._heartbeat(parser, "agent exited")
        _redact_file(req.task_dir / "agent.stderr.log", self.emitter.redactor)
        outcome = parser.outcome(exit_code, stderr=_tail(req.task_dir / "agent.stderr.log"))
        if declared is not None and not outcome.success and self.stop_reason is not None:
            # It had declared success and our own stop (a cancel, Ctrl-C) then cut its exit short:
            # the exit code is ours, the work is its; running it again would do it twice.
            return declared
        return outcome

    def _start_stall_watch(self, proc: AgentProcess) -> threading.Event | None:
        stall_timeout = self.request.stall_timeout
        if not stall_timeout:
            return None
        done = threading.Event()
        watch = StallWatch(proc.pid, self.request.worktree, stall_timeout, last_event=lambda: self._last_event)
        interval = max(0.05, min(30.0, stall_timeout / 4))

        def loop() -> None:
            while not done.wait(interval):
                reason = watch.check()
                if reason is not None:
                    self.request_stop("stalled", reason)
                    if self.stop_reason == "stalled":  # not when a timeout or cancel came first
                        self.emitter.emit("stalled", reason=reason)
                    return

        threading.Thread(target=loop, daemon=True, name="stall-watch").start()
        return done

    def _heartbeat(self, parser: Any, summary: str) -> None:
        self.emitter.emit(
            "heartbeat",
            summary=summary,
            session_id=parser.session_id,
            turns=parser.turns,
            cost_usd=parser.cost_usd,
            tokens=parser.tokens.model_dump(),
            events=parser.events,
        )

    def _describe_work(self, result: TaskResult, start_sha: str) -> None:
        req = self.request
        head = git.head_sha(req.worktree)
        result.head_sha = head
        result.commits = git.commits_between(req.worktree, start_sha, head)
        files, insertions, deletions = git.diffstat(req.worktree, start_sha, head)
        result.changed_files, result.insertions, result.deletions = files, insertions, deletions
        result.no_changes = not result.commits

    def _final_status(self, result: TaskResult) -> tuple[TaskStatus, str]:
        if self.stop_phase in (Phase.COMMIT, Phase.REPORT, Phase.DONE):
            # The stop came after the agent and the checks had ended: nothing was cut short, the
            # outcome stands (and a resume will not run a finished agent again).
            self.stop_reason = None
        if self.stop_reason == "timeout":
            result.outcome.failure = "timeout"
            return TaskStatus.TIMEOUT, self.stop_detail or f"timed out after {self.request.timeout_seconds:g}s"
        if self.stop_reason == "cancelled":
            result.outcome.failure = "cancelled"
            return TaskStatus.CANCELLED, self.stop_detail or "cancelled"
        if self.stop_reason == "stalled":
            result.outcome.success = False
            result.outcome.failure = "stalled"
            return TaskStatus.FAILED, self.stop_detail
        if result.error_message:
            return TaskStatus.FAILED, result.error_message
        outcome = result.outcome
        if not outcome.success:
            return TaskStatus.FAILED, outcome.message or f"agent failed ({outcome.failure})"
        validation = result.validation
        after = f" (after {validation.fix_rounds} fix-up round(s))" if validation and validation.fix_rounds else ""
        findings = validation.findings() if validation is not None else []
        if result.verify is not None and not result.verify.passed:
            # verify alone keeps its own class; with other findings it is one of them.
            result.outcome.failure = "validation" if findings else "verify_failed"
            verify = result.verify
            return TaskStatus.FAILED, (f"verify failed: `{verify.command}` exited {verify.exit_code}: "
                                       f"{verify.telling_line()}" + "".join(f"; {f}" for f in findings) + after)
        if findings:
            result.outcome.failure = "validation"
            return TaskStatus.FAILED, f"validation failed: {'; '.join(findings)}{after}"
        return TaskStatus.COMPLETED, ""


def _summed(first: AgentOutcome, then: AgentOutcome) -> AgentOutcome:
    """The later run's outcome carrying the turns, tokens, cost and events of both."""
    return then.model_copy(update={
        "num_turns": first.num_turns + then.num_turns,
        "tokens": first.tokens + then.tokens,
        "cost_usd": sum_costs([first.cost_usd, then.cost_usd]),
        "events": first.events + then.events,
        "session_id": then.session_id or first.session_id,
    })


def _redact_file(path: Path, redactor: Redactor) -> None:
    """The agent wrote its stderr straight to the file; mask secrets in it once it is done."""
    if not redactor.secrets or not path.exists():
        return
    raw = path.read_bytes()
    cleaned = redactor.raw(raw)
    if cleaned != raw:
        write_bytes_atomic(path, cleaned)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _install_signal_handlers(manager: WorkflowManager) -> None:
    """Stop requests by signal, acted on by a thread of their own. The handler itself takes no
    lock: it runs between two bytecodes of whatever the main thread was doing, which may be
    holding the very lock stopping needs (writing an event line), and would wait on it forever."""
    pending: list[tuple[str, str]] = []
    wake_r, wake_w = os.pipe()

    def act() -> None:
        while os.read(wake_r, 1):
            while pending:
                manager.request_stop(*pending.pop(0))

    threading.Thread(target=act, daemon=True, name="stop-signals").start()

    def stop(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:  # the orchestrator's run timeout: the task ends `timeout`
            pending.append(("timeout", "run timeout reached"))
        else:
            pending.append(("cancelled", f"cancelled ({signal.Signals(signum).name})"))
        os.write(wake_w, b"\0")

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, stop)
    accept_stops()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.task")
    parser.add_argument("--request", required=True, type=Path, help="request.json written by the orchestrator")
    args = parser.parse_args(argv)
    attempt_lock.keep_inherited()
    request = TaskRequest.model_validate_json(args.request.read_text(encoding="utf-8"))
    if AGENT_ARGV_ENV in os.environ:
        request.agent_command = json.loads(os.environ.pop(AGENT_ARGV_ENV))
    if FRESH_ARGV_ENV in os.environ:
        request.fresh_agent_command = json.loads(os.environ.pop(FRESH_ARGV_ENV))
    if FIXUP_ARGV_ENV in os.environ:
        request.validation = request.validation.model_copy(update=json.loads(os.environ.pop(FIXUP_ARGV_ENV)))
    request.task_dir.mkdir(parents=True, exist_ok=True)
    # First thing: who we are, so a resumed orchestrator can find us even if it died before it
    # recorded our pid.
    write_json_atomic(request.task_dir / "wm.json", {
        "pid": os.getpid(), "create_time": psutil.Process().create_time(), "attempt": request.attempt,
    })
    redactor = Redactor.from_env(os.environ)
    emitter = Emitter(request.task_id, request.task_dir / "workflow_manager.log", redactor)
    spans = PhaseSpans.from_environ(os.environ, {"gadugi.task_id": request.task_id, "gadugi.attempt": request.attempt})
    manager = WorkflowManager(request, emitter, spans)
    _install_signal_handlers(manager)
    try:
        result = manager.run()
        if request.pool_size and not request.in_place and result.status == TaskStatus.COMPLETED:
            # Released before the result is written: the next task launches on our exit and can
            # already recycle this worktree within the same run.
            try:
                WorktreePool(manager._worktrees(), size=request.pool_size).release(request.worktree)
            except OrchestratorError as exc:
                emitter.log(f"worktree not pooled: {exc}")
        write_bytes_atomic(request.result_path, redactor.text(result.model_dump_json()).encode())
        emitter.emit("result", result=result.model_dump(mode="json"))
    finally:
        if spans is not None:  # before the process goes, on every way out (a stop by signal included)
            spans.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
