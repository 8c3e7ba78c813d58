#!/usr/bin/env python3
"""A fake `claude` CLI for tests: same flags and the same stream-json shapes as Claude Code 2.x in
print mode, with behaviour chosen per task.

The mode comes from the first prompt line `fake-claude: <mode> [key=value ...]`, else the env var
FAKE_CLAUDE_MODE, else `commit`. Modes: commit, edit, no-change, fail, wrong-subtype, no-result,
slow (seconds=N | until=FILE), hang, hang-once (times=K state=FILE), ignore-sigterm, crash, flood (mb=N), auth, rate-limited,
overloaded (times=K state=FILE), crash-once (times=K state=FILE [forget-session=1]), quiet-busy (seconds=N),
leak (var=NAME), grandchild (grandchild=FILE). `write=PATH` names the file written; `linger=1` (commit)
stays up after its success result.

Sloppy modes, for the validation checkpoint; each does the job right only when its prompt is a
fix-up message (`## Validation checkpoint`), unless `fix=never`: placeholder (write=PATH: a stub
that raises NotImplementedError), skip-output (write=PATH output=PATH: only the first is written),
requirements (ids=R1,R2 evidence=PATH [report=none|malformed]: only R1 is reported done);
`forget-session=1` loses the session, so a fix-up round has to start afresh.

Env: GADUGI_TASK_ID (task id; default the cwd's name), FAKE_CLAUDE_LOG (append start/end records as
JSON lines), FAKE_CLAUDE_MODE. Sessions are kept under $CLAUDE_CONFIG_DIR (else $HOME)/.fake-claude/sessions; `--resume` of one
that is not there fails as the real CLI does ("No conversation found with session ID"). Standard
library only.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn

DEFAULT_MODEL = "claude-sonnet-4-5-20250929"
VERSION = "2.0.0 (Claude Code)"
TOOLS = ["Task", "Bash", "Glob", "Grep", "Read", "Edit", "Write", "NotebookEdit", "WebFetch", "TodoWrite"]
DIRECTIVE = re.compile(r"^\s*fake-claude:\s*(\S+)(.*)$", re.M)
VALUE_FLAGS = {
    "--output-format",
    "--input-format",
    "--max-turns",
    "--model",
    "--fallback-model",
    "--permission-mode",
    "--max-budget-usd",
    "--resume",
    "-r",
    "--session-id",
    "--append-system-prompt",
    "--settings",
    "--mcp-config",
}
VARIADIC_FLAGS = {"--allowedTools", "--allowed-tools", "--disallowedTools", "--disallowed-tools"}
BOOL_FLAGS = {"-p", "--print", "--verbose", "--strict-mcp-config", "--dangerously-skip-permissions", "--no-session-persistence"}
PERMISSION_MODES = {"acceptEdits", "bypassPermissions", "default", "dontAsk", "plan"}
# Sonnet prices per million tokens: input, output, cache write, cache read.
PRICES = (3.0, 15.0, 3.75, 0.30)


def die(message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    sys.exit(code)


def parse_args(argv: list[str]) -> dict[str, Any]:
    """Commander-like parsing: the same error lines as the real CLI for unknown or bad options."""
    opts: dict[str, Any] = {"positional": []}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in BOOL_FLAGS:
            opts[name.lstrip("-")] = True
        elif name in VALUE_FLAGS:
            if eq:
                value = inline
            elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                i += 1
                value = argv[i]
            else:
                die(f"error: option '{name} <value>' argument missing")
            opts[name.lstrip("-")] = value
        elif name in VARIADIC_FLAGS:
            values = [inline] if eq else []
            while i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                i += 1
                values.append(argv[i])
            opts.setdefault(name.lstrip("-").replace("allowed-tools", "allowedTools"), []).extend(values)
        elif arg == "--version" or arg == "-v":
            print(VERSION)
            sys.exit(0)
        elif arg.startswith("-") and arg != "-":
            die(f"error: unknown option '{name}'")
        else:
            opts["positional"].append(arg)
        i += 1
    return opts


def check_args(opts: dict[str, Any]) -> None:
    printing = opts.get("p") or opts.get("print")
    if not printing:
        die("fake claude: only print mode (-p) is implemented", 2)
    fmt = opts.get("output-format", "text")
    if fmt not in ("text", "json", "stream-json"):
        die(f"error: option '--output-format <format>' argument '{fmt}' is invalid. "
            "Allowed choices are text, json, stream-json.")
    if fmt == "stream-json" and not opts.get("verbose"):
        die("Error: When using --print, --output-format=stream-json requires --verbose")
    mode = opts.get("permission-mode")
    if mode is not None and mode not in PERMISSION_MODES:
        die(f"error: option '--permission-mode <mode>' argument '{mode}' is invalid. "
            f"Allowed choices are {', '.join(sorted(PERMISSION_MODES))}.")
    for key in ("max-turns",):
        if key in opts and not str(opts[key]).isdigit():
            die(f"error: option '--{key} <turns>' argument '{opts[key]}' is invalid.")
    bypass = opts.get("dangerously-skip-permissions") or mode == "bypassPermissions"
    # The real CLI (2.x) exits 1 with this line as root unless it is told it runs in a sandbox.
    if bypass and os.geteuid() == 0 and os.environ.get("IS_SANDBOX") != "1":
        die("--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons")


class Stream:
    """Writes events in the chosen output format and keeps the running totals."""

    def __init__(self, opts: dict[str, Any], task_id: str) -> None:
        self.format = opts.get("output-format", "text")
        self.model = opts.get("model") or DEFAULT_MODEL
        self.session_id = opts.get("resume") or opts.get("session-id") or str(uuid.uuid4())
        self.permission_mode = opts.get("permission-mode") or (
            "bypassPermissions" if opts.get("dangerously-skip-permissions") else "default"
        )
        self.max_turns = int(opts["max-turns"]) if "max-turns" in opts else None
        self.task_id = task_id
        self.started = time.time()
        self.turns = 0
        self.usage = {"input_tokens": 0, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        self.cost = 0.0
        self.saved_session = Path(os.devnull)

    def emit(self, event: dict[str, Any]) -> None:
        if self.format != "stream-json":
            return
        event.setdefault("session_id", self.session_id)
        event.setdefault("uuid", str(uuid.uuid4()))
        try:
            line = json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n"
            sys.stdout.buffer.write(line.encode("utf-8"))
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            os._exit(141)

    def init(self, api_key_source: str = "none") -> None:
        self.emit({
            "type": "system", "subtype": "init", "cwd": os.getcwd(), "session_id": self.session_id,
            "tools": TOOLS, "mcp_servers": [], "model": self.model,
            "permissionMode": self.permission_mode, "slash_commands": ["compact", "review"],
            "apiKeySource": api_key_source, "claude_code_version": VERSION.split()[0],
            "output_style": "default",
        })

    def assistant(self, content: list[dict[str, Any]], *, counts: bool = True,
                  error: str | None = None, synthetic: bool = False) -> None:
        """One API message; a message with several blocks is written one line per block, each
        carrying the same id and usage, as the real CLI does."""
        if counts:
            self.turns += 1
        usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        if not synthetic:
            usage = {"input_tokens": 4 + self.turns, "output_tokens": 90 + 40 * len(content),
                     "cache_creation_input_tokens": 1800 if self.turns > 1 else 12450,
                     "cache_read_input_tokens": 14200 + 2100 * self.turns}
            self._add_usage(usage)
        msg_id = f"msg_{uuid.uuid4().hex[:24]}"
        for block in content:
            event: dict[str, Any] = {
                "type": "assistant",
                "message": {
                    "id": msg_id, "type": "message", "role": "assistant",
                    "model": "<synthetic>" if synthetic else self.model,
                    "content": [block], "stop_reason": None, "stop_sequence": None,
                    "usage": {**usage, "service_tier": "standard"},
                },
                "parent_tool_use_id": None,
            }
            if error is not None:
                event["error"] = error
                event["isApiErrorMessage"] = True
            self.emit(event)

    def tool_result(self, tool_id: str, content: str, is_error: bool = False) -> None:
        self.emit({"type": "user", "message": {"role": "user", "content": [
            {"tool_use_id": tool_id, "type": "tool_result", "content": content, "is_error": is_error}
        ]}, "parent_tool_use_id": None})

    def _add_usage(self, usage: dict[str, int]) -> None:
        for key in self.usage:
            self.usage[key] += usage[key]
        self.cost += sum(usage[key] * price / 1e6 for key, price in zip(
            ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"),
            PRICES, strict=True))

    def result(self, *, subtype: str = "success", is_error: bool = False, text: str = "",
               api_error_status: int | None = None) -> None:
        event = {
            "type": "result", "subtype": subtype, "is_error": is_error,
            "duration_ms": int((time.time() - self.started) * 1000) + 1200,
            "duration_api_ms": int((time.time() - self.started) * 1000) + 900,
            "num_turns": self.turns, "result": text, "session_id": self.session_id,
            "total_cost_usd": round(self.cost, 6), "usage": {**self.usage, "service_tier": "standard"},
            "modelUsage": {self.model: {"inputTokens": self.usage["input_tokens"],
                                        "outputTokens": self.usage["output_tokens"],
                                        "costUSD": round(self.cost, 6)}},
            "permission_denials": [], "api_error_status": api_error_status,
            "stop_reason": "end_turn" if not is_error else None,
        }
        if self.format == "json":
            print(json.dumps(event), flush=True)
        elif self.format == "text":
            print(text, flush=True)
        else:
            self.emit(event)

    def out_of_turns(self) -> bool:
        return self.max_turns is not None and self.turns >= self.max_turns


def tool_use(name: str, **args: Any) -> tuple[str, dict[str, Any]]:
    tool_id = f"toolu_{uuid.uuid4().hex[:24]}"
    return tool_id, {"type": "tool_use", "id": tool_id, "name": name, "input": args}


def text(body: str) -> dict[str, Any]:
    return {"type": "text", "text": body}


def log_record(task_id: str, event: str, **extra: Any) -> None:
    path = os.environ.get("FAKE_CLAUDE_LOG")
    if not path:
        return
    record = {"task": task_id, "event": event, "ts": time.time(), "pid": os.getpid(),
              "cwd": os.getcwd(), **extra}
    # One write on an O_APPEND descriptor, so lines from parallel fakes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def finish(stream: Stream, code: int) -> NoReturn:
    log_record(stream.task_id, "end", exit_code=code)
    sys.stdout.flush()
    sys.exit(code)


def git(*args: str) -> tuple[int, str]:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def write_file(stream: Stream, params: dict[str, str]) -> str:
    rel = params.get("write") or f"fake/{stream.task_id}.txt"
    target = Path(os.getcwd()) / rel
    tool_id, block = tool_use("Write", file_path=str(target), content=f"{stream.task_id}\n")
    stream.assistant([text(f"I'll record the task in {rel}."), block])
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a") as handle:
        handle.write(f"{stream.task_id}: fake change\n")
    stream.tool_result(tool_id, f"File created successfully at: {target}")
    return rel


def do_commit(stream: Stream, params: dict[str, str]) -> NoReturn:
    rel = write_file(stream, params)
    if stream.out_of_turns():
        stream.result(subtype="error_max_turns", is_error=True)
        finish(stream, 1)
    message = f"{stream.task_id}: fake change"
    tool_id, block = tool_use("Bash", command=f"git add {shlex.quote(rel)} && git commit -m {shlex.quote(message)}",
                              description="Commit the change")
    stream.assistant([block])
    code, out = git("add", "--", rel)
    if code == 0:
        code, out = git("commit", "-q", "-m", message)
    stream.tool_result(tool_id, out or "(no output)", is_error=code != 0)
    if code != 0:
        stream.result(subtype="error_during_execution", is_error=True, text=f"git failed: {out}")
        finish(stream, 1)
    done = f"Committed {rel}."
    stream.assistant([text(done)], counts=False)
    stream.result(text=done)
    if params.get("linger"):
        # Its work done and said so, it does not exit until stopped (a CLI hanging on shutdown).
        log_record(stream.task_id, "declared", result="success")
        sleep_forever()
    finish(stream, 0)


FIXUP_MARK = "## Validation checkpoint"


def commit_content(stream: Stream, rel: str, content: str) -> None:
    """Write `rel` (replacing it) and commit it, as tool calls in the stream."""
    target = Path(os.getcwd()) / rel
    tool_id, block = tool_use("Write", file_path=str(target), content=content)
    stream.assistant([block])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    stream.tool_result(tool_id, f"File written: {target}")
    tool_id, block = tool_use("Bash", command=f"git add {shlex.quote(rel)} && git commit", description="Commit")
    stream.assistant([block])
    code, out = git("add", "--", rel)
    if code == 0:
        code, out = git("commit", "-q", "-m", f"{stream.task_id}: {rel}")
    stream.tool_result(tool_id, out or "(no output)", is_error=code != 0)


def sloppy(mode: str, params: dict[str, str], stream: Stream, fixing: bool) -> NoReturn:
    """Work that looks done and is not; done right when told what is wrong (a fix-up round)."""
    fixes = fixing and params.get("fix") != "never"
    said = "Fixed what the checkpoint found." if fixing else "Done."
    if mode == "placeholder":
        rel = params.get("write") or "service.py"
        body = "    return 42\n" if fixes else "    raise NotImplementedError\n"
        commit_content(stream, rel, f"def handler():\n{body}")
    elif mode == "skip-output":
        if not fixing:
            commit_content(stream, params.get("write") or "main.txt", f"{stream.task_id}\n")
        if fixes:
            commit_content(stream, params.get("output") or "output.txt", f"{stream.task_id} output\n")
    else:  # requirements
        evidence = params.get("evidence") or "evidence.txt"
        commit_content(stream, evidence, f"{stream.task_id} {'fixed' if fixing else 'first'}\n")
        ids = [i for i in params.get("ids", "R1").split(",") if i]
        items = [{"id": rid, "status": "done" if fixes or n == 0 else "not_done",
                  "evidence": evidence if fixes or n == 0 else ""} for n, rid in enumerate(ids)]
        report = params.get("report")
        if report == "malformed":
            said += "\n\n```json\n{\"requirements\": [oops\n```"
        elif report != "none":
            said += "\n\n```json\n" + json.dumps({"requirements": items}) + "\n```"
    stream.assistant([text(said)], counts=False)
    stream.result(text=said)
    if params.get("forget-session"):
        stream.saved_session.unlink(missing_ok=True)  # a fix-up round cannot resume it
    finish(stream, 0)


def sleep_forever() -> NoReturn:
    while True:
        time.sleep(3600)


def count_invocation(state: Path) -> int:
    state.parent.mkdir(parents=True, exist_ok=True)
    with open(state, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        raw = handle.read().strip()
        count = (int(raw) if raw.isdigit() else 0) + 1
        handle.seek(0)
        handle.truncate()
        handle.write(str(count))
    return count


def run_mode(mode: str, params: dict[str, str], stream: Stream) -> NoReturn:
    if mode == "ignore-sigterm":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stream.init()
        sleep_forever()
    if mode == "auth":
        # What 2.x prints when not logged in: init, one synthetic assistant message flagged
        # authentication_failed, then a result whose subtype says success while is_error is true.
        stream.init()
        said = "Not logged in · Please run /login"
        stream.assistant([text(said)], error="authentication_failed", synthetic=True)
        stream.result(is_error=True, text=said)
        finish(stream, 1)
    stream.init()
    if mode in ("placeholder", "skip-output", "requirements"):
        sloppy(mode, params, stream, fixing=FIXUP_MARK in params.get("_new_prompt", ""))
    if mode == "commit":
        do_commit(stream, params)
    if mode == "edit":
        rel = write_file(stream, params)
        stream.assistant([text(f"Edited {rel}; not committing.")], counts=False)
        stream.result(text=f"Edited {rel}.")
        finish(stream, 0)
    if mode == "no-change":
        stream.assistant([text("Nothing needs to change.")])
        stream.result(text="Nothing needs to change.")
        finish(stream, 0)
    if mode == "fail":
        tool_id, block = tool_use("Bash", command="make test", description="Run the tests")
        stream.assistant([block])
        stream.tool_result(tool_id, "make: *** [test] Error 2", is_error=True)
        stream.result(subtype="error_during_execution", is_error=True)
        finish(stream, 1)
    if mode == "wrong-subtype":
        stream.assistant([text("Working on it.")])
        stream.result(subtype="error_max_turns", is_error=True)
        finish(stream, 0)
    if mode == "no-result":
        stream.assistant([text("Working on it.")])
        finish(stream, 0)
    if mode == "crash":
        stream.assistant([text("Starting.")])
        log_record(stream.task_id, "end", exit_code=3)
        os._exit(3)
    if mode == "hang":
        sleep_forever()
    if mode == "slow":
        deadline = time.monotonic() + float(params.get("seconds", "2"))
        until = Path(params["until"]) if params.get("until") else None  # works until this file exists

        def working() -> bool:
            return not until.exists() if until is not None else time.monotonic() < deadline

        while working():
            stream.assistant([{"type": "thinking", "thinking": "Still working…", "signature": "sig"}],
                             counts=False)
            # Waiting for a file has no deadline: capping the nap by one would spin (and flood the
            # stream) once the default `seconds` had passed.
            time.sleep(0.2 if until is not None else min(0.2, max(0.0, deadline - time.monotonic())))
        do_commit(stream, params)
    if mode == "flood":
        remaining = int(float(params.get("mb", "1")) * 1024 * 1024)
        chunk = "x" * 65536
        while remaining > 0:
            stream.assistant([text(chunk)], counts=False)
            remaining -= len(chunk) + 400
        stream.assistant([text("Flood done.")])
        stream.result(text="Flood done.")
        finish(stream, 0)
    if mode == "rate-limited":
        resets = int(time.time()) + 3600
        stream.emit({"type": "rate_limit_event", "rate_limit_info": {
            "status": "rejected", "resetsAt": resets, "rateLimitType": "five_hour",
            "overageStatus": "rejected", "isUsingOverage": False}})
        said = "Claude AI usage limit reached"
        stream.assistant([text(said)], error="rate_limit", synthetic=True)
        stream.result(is_error=True, text=said, api_error_status=429)
        finish(stream, 1)
    if mode == "quiet-busy":
        # Silent on stdout while a child burns CPU (a long test run): not a stall.
        seconds = float(params.get("seconds", "2"))
        subprocess.run([sys.executable, "-c",
                        f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"], check=True)
        do_commit(stream, params)
    if mode == "leak":
        secret = os.environ.get(params.get("var", "ANTHROPIC_API_KEY"), "")
        print(f"debug: key is {secret}", file=sys.stderr, flush=True)
        stream.assistant([text(f"The key in my environment is {secret}.")])
        do_commit(stream, params)
    if mode == "hang-once":
        # Hangs the first time (until stopped), does the work when run again (a resumed run).
        default_state = Path(tempfile.gettempdir()) / f"fake-claude-hang-{stream.task_id}"
        if count_invocation(Path(params.get("state") or default_state)) <= int(params.get("times", "1")):
            stream.init()
            stream.assistant([text("Working on it…")])
            sleep_forever()
        do_commit(stream, params)
    if mode == "crash-once":
        default_state = Path(tempfile.gettempdir()) / f"fake-claude-crash-{stream.task_id}"
        if count_invocation(Path(params.get("state") or default_state)) <= int(params.get("times", "1")):
            stream.assistant([text("Working on it…")])
            if params.get("forget-session"):
                # Died before its transcript was saved: a later --resume finds no session.
                stream.saved_session.unlink(missing_ok=True)
            os._exit(3)
        do_commit(stream, params)
    if mode == "overloaded":
        default_state = Path(tempfile.gettempdir()) / f"fake-claude-overloaded-{stream.task_id}"
        count = count_invocation(Path(params.get("state") or default_state))
        if count <= int(params.get("times", "1")):
            said = ('API Error: 529 {"type":"error","error":{"type":"overloaded_error",'
                    '"message":"Overloaded"}}')
            stream.assistant([text(said)], error="server_error", synthetic=True)
            stream.result(is_error=True, text=said, api_error_status=529)
            finish(stream, 1)
        do_commit(stream, params)
    if mode == "grandchild":
        child = subprocess.Popen(["sleep", "1000"], start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        marker = Path(params.get("grandchild") or "grandchild.pid")
        marker.write_text(str(child.pid))
        sleep_forever()
    stream.result(subtype="error_during_execution", is_error=True, text=f"fake claude: unknown mode {mode!r}")
    finish(stream, 1)


def directive(prompt: str) -> tuple[str, dict[str, str]]:
    match = DIRECTIVE.search(prompt)
    if match is not None:
        mode, rest = match.group(1), match.group(2)
    else:
        mode, rest = os.environ.get("FAKE_CLAUDE_MODE", "commit"), ""
    params = {}
    for item in shlex.split(rest):
        key, _, value = item.partition("=")
        params[key] = value
    return mode, params


def main() -> None:
    opts = parse_args(sys.argv[1:])
    check_args(opts)
    prompt = " ".join(opts["positional"]) if opts["positional"] else sys.stdin.read()
    if not prompt.strip():
        die("Error: Input must be provided either through stdin or as a prompt argument when using --print")
    task_id = os.environ.get("GADUGI_TASK_ID") or Path(os.getcwd()).name
    stream = Stream(opts, task_id)
    # Like the real CLI, a resumed session continues the same conversation: it keeps the task
    # (and so the directive) it was first given, whatever the new prompt says.
    # The real CLI keeps sessions in $CLAUDE_CONFIG_DIR when set, else under HOME.
    state = os.environ.get("CLAUDE_CONFIG_DIR") or os.environ.get("HOME", tempfile.gettempdir())
    sessions = Path(state) / ".fake-claude" / "sessions"
    saved = sessions / f"{stream.session_id}.txt"
    if opts.get("resume") and not saved.exists():
        # What Claude Code 2.x answers for a session this HOME does not have: no init, one
        # error_during_execution result naming it, the same line on stderr, exit 1.
        missing = f"No conversation found with session ID: {stream.session_id}"
        log_record(task_id, "start", mode="resume-missing")
        stream.emit({"type": "result", "subtype": "error_during_execution", "is_error": True, "duration_ms": 0,
                     "duration_api_ms": 0, "num_turns": 0, "stop_reason": None, "session_id": stream.session_id,
                     "total_cost_usd": 0, "usage": dict(stream.usage), "modelUsage": {}, "permission_denials": [],
                     "errors": [missing]})
        sys.stderr.write(missing + "\n")
        finish(stream, 1)
    new_prompt = prompt
    if opts.get("resume"):
        prompt = saved.read_text() + "\n" + prompt
    else:
        sessions.mkdir(parents=True, exist_ok=True)
        saved.write_text(prompt)
    stream.saved_session = saved
    mode, params = directive(prompt)
    params["_new_prompt"] = new_prompt
    log_record(task_id, "start", mode=mode, resumed=bool(opts.get("resume")))
    try:
        run_mode(mode, params, stream)
    except KeyboardInterrupt:
        log_record(task_id, "end", exit_code=130, interrupted=True)
        os._exit(130)


if __name__ == "__main__":
    main()
