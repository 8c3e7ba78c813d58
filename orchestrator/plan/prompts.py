"""Load one prompt file into a `TaskSpec`: front matter first, then what the markdown says.

Front matter is authoritative (its keys and their types: `front_matter`). The body adds a
`## Files` section, explicit `Depends on:` lines, tracked paths it mentions and IMPLEMENTED/COMPLETED
markers (see `prompt_text`). Bad input raises InputError with a one-line message naming the file.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import orchestrator.plan.prompt_text as prompt_text
from orchestrator.errors import InputError
from orchestrator.models import TaskSpec
from orchestrator.plan.front_matter import check_front_matter
from orchestrator.plan.scopes import directories_of

MAX_PROMPT_BYTES = 1024 * 1024
MAX_ID_LENGTH = 60
DONE_STATUSES = frozenset({"done", "completed", "implemented"})

FRONT_MATTER = "front matter depends_on"
DEPENDS_LINE = "Depends on: line"

# yaml.safe_load's loader, in C when libyaml is there (several times faster on many prompts).
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class LoadedPrompt:
    """A parsed prompt plus what the analyzer needs to explain its edges."""

    spec: TaskSpec
    dependency_sources: dict[str, str] = field(default_factory=dict)


def sanitize_id(raw: str) -> str:
    """An id safe in branch and directory names: `[A-Za-z0-9._-]`, readable, never empty."""
    ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    text = _ID_UNSAFE.sub("-", ascii_text)
    text = re.sub(r"\.{2,}", ".", text)  # `..` is not allowed in git refs
    text = re.sub(r"-{2,}", "-", text).strip(".-")
    return text[:MAX_ID_LENGTH].strip(".-") or "task"


def parse_prompt(
    path: Path,
    index: int,
    tracked_files: frozenset[str] | set[str],
    *,
    tracked_dirs: frozenset[str] | None = None,
) -> LoadedPrompt:
    """Parse `path` (input position `index`) into its task and where each dependency was declared;
    InputError naming the file on bad input.

    Pass `tracked_dirs` (`scopes.directories_of(tracked_files)`) when loading many prompts, so it is
    computed once rather than once per file.
    """
    if tracked_dirs is None:
        tracked_dirs = frozenset(directories_of(tracked_files))
    text = read_prompt_text(path)
    meta, body, body_start = split_front_matter(text, path)
    if not body.strip():
        raise InputError(f"{path}: prompt has no text after its front matter")
    front = check_front_matter(meta, path)
    task_id = sanitize_id(front.id if front.id is not None else path.stem)
    title = front.title or prompt_text.title_from(body) or task_id
    sources = {name: FRONT_MATTER for name in front.depends_on}
    for name in prompt_text.depends_lines(body):
        sources.setdefault(name, DEPENDS_LINE)
    spec = TaskSpec(
        id=task_id,
        title=title,
        prompt_file=path,
        prompt_text=text,
        index=index,
        depends_on=list(sources),
        files=_scopes(front.files, body, tracked_files, tracked_dirs),
        conflicts_with=_dedupe(front.conflicts_with),
        priority=front.priority,
        agent=front.agent,
        model=front.model,
        timeout_seconds=front.timeout,
        max_turns=front.max_turns,
        verify=front.verify,
        allow_placeholders=front.allow_placeholders,
        outputs=_dedupe(front.outputs),
        requirements=front.requirements or prompt_text.requirements_section(body),
        fix_rounds=front.fix_rounds,
        skip_reason=_done_reason(front.status, body, body_start),
    )
    return LoadedPrompt(spec=spec, dependency_sources=sources)


def read_prompt_text(path: Path) -> str:
    """The file as text, refusing directories, missing, huge, binary and empty files."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a prompt file")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{path}: prompt file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read prompt file ({exc.strerror})") from None
    if size > MAX_PROMPT_BYTES:
        raise InputError(f"{path}: prompt file is {size} bytes; the limit is {MAX_PROMPT_BYTES}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read prompt file ({exc.strerror})") from None
    if b"\0" in data:
        raise InputError(f"{path}: looks binary (contains NUL bytes), not a markdown prompt")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 (byte {exc.start}); is it a binary file?") from None
    if not text.strip():
        raise InputError(f"{path}: prompt file is empty")
    return text


def split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str, int]:
    """`(front matter, body, 0-based line where the body starts)`; no front matter gives `{}`."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        return {}, text, 0
    for end in range(1, len(lines)):
        if lines[end].rstrip() in ("---", "..."):
            break
    else:
        raise InputError(f"{path}: front matter opened by '---' on line 1 is never closed")
    try:
        meta = yaml.load("".join(lines[1:end]), Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None and mark.line >= end - 1:
            # Hit the end of the block (an unclosed `[` or quote): where it was opened says more.
            mark = getattr(exc, "context_mark", None) or mark
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}: malformed YAML front matter{where}: {problem}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise InputError(f"{path}: front matter must be a mapping of keys, got {type(meta).__name__}")
    return meta, "".join(lines[end + 1 :]), end + 1


def _done_reason(status: str | None, body: str, body_start: int) -> str | None:
    if status is not None and status.lower() in DONE_STATUSES:
        return f"marked done in front matter (status: {status})"
    marker = prompt_text.done_marker(body)
    if marker is not None:
        return f"marked done on line {body_start + marker[0] + 1}: {marker[1][:60]}"
    return None


def _scopes(
    declared: list[str], body: str, tracked_files: frozenset[str] | set[str], tracked_dirs: frozenset[str]
) -> list[str]:
    """Front matter `files`, then a `## Files` section, then tracked paths the text mentions."""
    section = [
        raw for raw in prompt_text.files_section(body)
        if prompt_text.looks_like_path(raw, tracked_files, tracked_dirs)
    ]
    scopes = [s for raw in declared + section if (s := prompt_text.declared_scope(raw, tracked_dirs))]
    return _dedupe(scopes + list(prompt_text.mentioned_paths(body, tracked_files)))


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
