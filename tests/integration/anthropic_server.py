"""A scripted Anthropic Messages API server on 127.0.0.1 for driving the real `claude` CLI offline.

The "model" follows a script per conversation: a list of turns, each either a tool call (the CLI's
own Write/Bash tools, which then act on the real worktree) or a final text answer. The script is
picked by a `scripted-model: <key>` line anywhere in the conversation's text (the orchestrator puts
the prompt file's body into the prompt it sends), and the turn by how many assistant messages the
request already carries, so the server keeps no per-conversation state and parallel CLIs cannot
disturb each other.

Failure modes answer `POST /v1/messages` with an API error (529 overloaded, 429 rate limited with
`retry-after`, 401...) a set number of times or forever. Every request is recorded for inspection.
Standard library only.
"""
from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

SCRIPT_MARKER = re.compile(r"scripted-model:\s*([\w.-]+)")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ERROR_TEXT = {429: "Number of request tokens has exceeded your per-minute rate limit", 529: "Overloaded"}


@dataclass(frozen=True)
class ToolCall:
    """One assistant turn that calls a tool, e.g. ToolCall("Bash", {"command": "git status"})."""

    name: str
    input: Mapping[str, Any]
    text: str = ""


@dataclass(frozen=True)
class Answer:
    """The last assistant turn: plain text, stop_reason end_turn."""

    text: str


Turn = ToolCall | Answer


@dataclass(frozen=True)
class Failure:
    """Answer the next `times` message requests (None: every one) with HTTP `status`."""

    status: int
    times: int | None = None
    retry_after: float | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    script: str | None = None
    turn: int | None = None


@dataclass
class _State:
    scripts: dict[str, list[Turn]] = field(default_factory=dict)
    default: list[Turn] = field(default_factory=list)
    failure: Failure | None = None
    failures_sent: int = 0
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def write_and_commit(path: str, content: str, message: str) -> list[Turn]:
    """The usual task: Write a file (relative to the CLI's cwd), commit it with Bash, then answer."""
    return [
        ToolCall("Write", {"file_path": path, "content": content}, text=f"I'll create {path}."),
        ToolCall(
            "Bash",
            {"command": f"git add -A && git commit -q -m {_sh_quote(message)}", "description": "Commit the change"},
        ),
        Answer(f"Created {path} and committed it."),
    ]


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


class AnthropicServer:
    """Start with `with AnthropicServer() as server:`; point ANTHROPIC_BASE_URL at `server.url`."""

    def __init__(self, scripts: Mapping[str, Sequence[Turn]] | None = None, *, default: Sequence[Turn] = ()) -> None:
        self._state = _State(
            scripts={k: list(v) for k, v in (scripts or {}).items()},
            default=list(default) or [Answer("Done.")],
        )
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self._state))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="anthropic-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_script(self, key: str, turns: Sequence[Turn]) -> None:
        with self._state.lock:
            self._state.scripts[key] = list(turns)

    def fail(self, status: int, *, times: int | None = None, retry_after: float | None = None) -> None:
        """From now on answer message requests with `status` (`times` of them, or all)."""
        with self._state.lock:
            self._state.failure = Failure(status, times, retry_after)
            self._state.failures_sent = 0

    @property
    def requests(self) -> list[Recorded]:
        with self._state.lock:
            return list(self._state.requests)

    def message_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]


def _make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    ids = itertools.count(1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests are recorded in `state.requests`; stderr noise would only clutter pytest

        def _record(self, body: Any) -> Recorded:
            parts = urlsplit(self.path)
            rec = Recorded(self.command, parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}, body)
            with state.lock:
                state.requests.append(rec)
            return rec

        def _send(self, rec: Recorded, status: int, payload: bytes, content_type: str, extra: Mapping[str, str] = {}) -> None:
            rec.status = status
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            self.send_header("request-id", f"req_scripted_{next(ids):06d}")
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _json(self, rec: Recorded, status: int, obj: Any, extra: Mapping[str, str] = {}) -> None:
            self._send(rec, status, json.dumps(obj).encode(), "application/json", extra)

        def do_HEAD(self) -> None:
            self._json(self._record(None), 200, {})

        def do_GET(self) -> None:
            rec = self._record(None)
            if rec.path.rstrip("/") in ("", "/v1"):
                self._json(rec, 200, {})
            elif rec.path == "/v1/models":
                self._json(rec, 200, {"data": [], "has_more": False, "first_id": None, "last_id": None})
            else:
                self._json(rec, 404, _error(404, f"no route {rec.path}"))

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            rec = self._record(body)
            if rec.path == "/v1/messages/count_tokens":
                self._json(rec, 200, {"input_tokens": _estimate_tokens(body)})
                return
            if rec.path != "/v1/messages" or not isinstance(body, dict):
                self._json(rec, 404, _error(404, f"no route {rec.path}"))
                return
            failure = _take_failure(state)
            if failure is not None:
                extra: dict[str, str] = {}
                if failure.retry_after is not None:
                    extra["retry-after"] = f"{failure.retry_after:g}"
                self._json(rec, failure.status, _error(failure.status), extra)
                return
            message = _reply(state, body, rec)
            if body.get("stream"):
                self._send(rec, 200, _sse(message), "text/event-stream; charset=utf-8", {"cache-control": "no-cache"})
            else:
                self._json(rec, 200, message)

    return Handler


def _take_failure(state: _State) -> Failure | None:
    with state.lock:
        failure = state.failure
        if failure is None:
            return None
        if failure.times is not None and state.failures_sent >= failure.times:
            state.failure = None
            return None
        state.failures_sent += 1
        return failure


def _error(status: int, message: str | None = None) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message or ERROR_TEXT.get(status, kind)}}


def _texts(value: Any) -> Iterator[str]:
    """Every string in a request body's messages/system, however deeply nested in blocks."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)


# Claude Code's sandbox binds /dev/null over protected paths of the shared git directory that do
# not exist (`.git/config.lock`), and bubblewrap creates each mount point in the real directory;
# a concurrent session that lists one just before its owner removes it fails to start its command
# with this (orchestrator/agents/sandbox.py). Nothing of the command ran.
SANDBOX_SETUP_FAILED = "bwrap: Can't get type of source"


def _sandbox_setup_failed(message: Any) -> bool:
    """A user turn whose tool result says the sandbox failed before the command ran."""
    if not isinstance(message, dict) or message.get("role") != "user" or not isinstance(message.get("content"), list):
        return False
    return any(isinstance(block, dict) and block.get("type") == "tool_result" and block.get("is_error")
               and any(SANDBOX_SETUP_FAILED in text for text in _texts(block.get("content")))
               for block in message["content"])


def _estimate_tokens(body: Any) -> int:
    return max(1, sum(len(t) for t in _texts(body)) // 4)


def _reply(state: _State, body: dict[str, Any], rec: Recorded) -> dict[str, Any]:
    raw = body.get("messages")
    messages: list[Any] = raw if isinstance(raw, list) else []
    model = str(body.get("model") or "claude-sonnet-4-5")
    usage = {"input_tokens": _estimate_tokens(messages), "output_tokens": 0,
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    if not body.get("tools"):
        # A side request (title, topic, summary...): no tools means it is not the agent loop.
        return _message(model, [{"type": "text", "text": "Scripted task"}], "end_turn", usage)
    key = next((m.group(1) for t in _texts(messages) for m in SCRIPT_MARKER.finditer(t)), None)
    with state.lock:
        script = state.scripts.get(key, state.default) if key else state.default
    # A call the CLI's sandbox could not even set up is made again, as a model would: the step
    # it was does not count as taken.
    turn = (sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
            - sum(1 for m in messages if _sandbox_setup_failed(m)))
    rec.script, rec.turn = key, turn
    step = script[min(turn, len(script) - 1)]
    if isinstance(step, Answer):
        return _message(model, [{"type": "text", "text": step.text}], "end_turn", usage)
    blocks: list[dict[str, Any]] = []
    if step.text:
        blocks.append({"type": "text", "text": step.text})
    tool_id = f"toolu_scripted_{key or 'default'}_{turn}".replace("-", "_")
    blocks.append({"type": "tool_use", "id": tool_id, "name": step.name, "input": dict(step.input)})
    return _message(model, blocks, "tool_use", usage)


_message_ids = itertools.count(1)


def _message(model: str, content: list[dict[str, Any]], stop_reason: str, usage: dict[str, int]) -> dict[str, Any]:
    usage = dict(usage, output_tokens=max(1, sum(len(json.dumps(b)) for b in content) // 4))
    return {
        "id": f"msg_scripted_{next(_message_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(dict(data, type=kind))}\n\n"


def _sse(message: dict[str, Any]) -> bytes:
    """The message as the streaming API sends it: start, one block at a time in deltas, stop."""
    usage = message["usage"]
    start = dict(message, content=[], stop_reason=None, stop_sequence=None, usage=dict(usage, output_tokens=1))
    out = [_event("message_start", {"message": start}), _event("ping", {})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            out.append(_event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}))
            text = block["text"]
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                delta = {"type": "text_delta", "text": piece}
                out.append(_event("content_block_delta", {"index": index, "delta": delta}))
        else:
            head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            out.append(_event("content_block_start", {"index": index, "content_block": head}))
            args = json.dumps(block["input"])
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                out.append(_event("content_block_delta", {"index": index, "delta": delta}))
        out.append(_event("content_block_stop", {"index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    out.append(_event("message_delta", {"delta": delta, "usage": {"output_tokens": usage["output_tokens"]}}))
    out.append(_event("message_stop", {}))
    return "".join(out).encode()
