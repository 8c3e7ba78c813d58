"""What the markdown body of a prompt says: title, file scopes, `Depends on:` lines, done markers.

Inference is deliberately narrow. Gadugi matched words anywhere in prose as substrings and turned
"this depends on the database" into dependencies; here only explicit lines, a `## Files` section and
whole-token mentions of tracked paths count.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from orchestrator.plan.scopes import is_glob, normalize_path

MAX_TITLE_LENGTH = 60

_FENCE = re.compile(r"^\s*(```|~~~)")
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$")
_FILES_HEADING = re.compile(r"^(#{2,6})\s+(?:target\s+)?files\s*:?\s*$", re.IGNORECASE)
_REQUIREMENTS_HEADING = re.compile(r"^(#{2,6})\s+(?:requirements|acceptance\s+criteria)\s*:?\s*$", re.IGNORECASE)
_CHECKBOX = re.compile(r"^\s*[-*+]\s+\[[ xX]\]\s+(.*\S)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
_DEPENDS = re.compile(
    r"^\s*(?:(?:[-*+]|\d+[.)])\s+)?(?:\*\*|__)?depends[\s_-]*on(?:\*\*|__)?\s*:\s*(?:\*\*|__)?(.*)$",
    re.IGNORECASE,
)
_NO_DEPENDENCY = frozenset({"none", "n/a", "na", "-", "nothing", "and"})
# Only the uppercase words count: "Completed tasks are archived" is prose, not a marker.
_MARKER = re.compile(r"(?:(?i:status)\W*)?(IMPLEMENTED|COMPLETED)\b")
_LEADING_NOISE = re.compile(r"^[^A-Za-z0-9]+")
# Characters that cannot be part of a path mentioned in prose (markdown, quotes, links, `:line`).
_PATH_SEPARATORS = re.compile(r"[\s`'\"()\[\]{}<>,;|:=*#!?]+")


def prose_lines(body: str) -> Iterator[tuple[int, str]]:
    """`(0-based line number, line)` for lines outside fenced code blocks."""
    fence: str | None = None
    for number, line in enumerate(body.splitlines()):
        match = _FENCE.match(line)
        if match and (fence is None or match.group(1) == fence):
            fence = match.group(1) if fence is None else None
            continue
        if fence is None:
            yield number, line


def title_from(body: str) -> str | None:
    """The first H1, else the first non-empty line cut short."""
    first_line: str | None = None
    for _, line in prose_lines(body):
        match = _H1.match(line.strip())
        if match:
            return match.group(1)
        if first_line is None and line.strip():
            first_line = line.strip()[:MAX_TITLE_LENGTH].rstrip()
    return first_line


def done_marker(body: str) -> tuple[int, str] | None:
    """`(line number, line)` of an IMPLEMENTED/COMPLETED marker line, if there is one."""
    for number, line in prose_lines(body):
        if _MARKER.match(_LEADING_NOISE.sub("", line)):
            return number, line.strip()
    return None


def clean_token(token: str) -> str:
    """A name without the quotes, emphasis, brackets and punctuation markdown puts around it."""
    text, previous = token.strip(), ""
    while text != previous:
        previous, text = text, text.strip("`'\"*()[]<>").rstrip(".,;:!?").strip()
    return text


def files_section(body: str) -> list[str]:
    """Items of `## Files` / `## Target Files`: the backticked text or the first word of each."""
    found: list[str] = []
    level = 0
    for _, line in prose_lines(body):
        heading = _HEADING.match(line)
        if heading:
            section = _FILES_HEADING.match(line.strip())
            depth = len(heading.group(1))
            level = len(section.group(1)) if section else (0 if depth <= level else level)
            continue
        item = _ITEM.match(line) if level else None
        if item and item.group(1).strip():
            text = item.group(1).strip()
            quoted = re.match(r"`([^`]+)`", text)
            token = (quoted.group(1) if quoted else clean_token(text.split()[0])).strip()
            if token:
                found.append(token)
    return found


def requirements_section(body: str) -> list[str]:
    """The `- [ ]` items of `## Requirements` / `## Acceptance criteria` sections, in order. Only
    checkbox items count: prose bullets under such a heading are explanation, not a checklist."""
    found: list[str] = []
    level = 0
    for _, line in prose_lines(body):
        heading = _HEADING.match(line)
        if heading:
            section = _REQUIREMENTS_HEADING.match(line.strip())
            depth = len(heading.group(1))
            level = len(section.group(1)) if section else (0 if depth <= level else level)
            continue
        item = _CHECKBOX.match(line) if level else None
        if item:
            found.append(" ".join(item.group(1).split()))
    return found


def looks_like_path(token: str, tracked: frozenset[str] | set[str], dirs: frozenset[str]) -> bool:
    """Keeps prose bullets (`- Anything under src`) out of a Files section's scopes."""
    bare = token.rstrip("/")
    return "/" in token or "." in token or is_glob(token) or bare in tracked or bare in dirs


def declared_scope(raw: str, tracked_dirs: frozenset[str]) -> str | None:
    """A declared scope in canonical form: directories end in `/`; outside the repo → None."""
    normal = normalize_path(raw)
    if normal is None:
        return None
    scope, as_dir = normal
    if not is_glob(scope) and (as_dir or scope in tracked_dirs):
        return f"{scope}/" if scope else "./"
    return scope


def mentioned_paths(body: str, tracked_files: frozenset[str] | set[str]) -> Iterator[str]:
    """Tracked paths named in the text as whole tokens (`app.py` never matches `myapp.py`)."""
    for line in body.splitlines():
        if _DEPENDS.match(line):
            continue  # `Depends on: prompts/a.md` names a task, not a file this task edits
        for token in _PATH_SEPARATORS.split(line):
            candidate = token.rstrip(".")
            while candidate.startswith("./"):
                candidate = candidate[2:]
            if candidate in tracked_files:
                yield candidate


def depends_lines(body: str) -> list[str]:
    """Names from explicit `Depends on:` lines; never from prose."""
    names: list[str] = []
    for _, line in prose_lines(body):
        match = _DEPENDS.match(line)
        if not match:
            continue
        for part in re.split(r"[,;]|\s+and\s+", match.group(1)):
            for word in part.split():
                if word[:1] in "(-\u2013\u2014":
                    break  # `a.md (schema first)`: the rest of the part is a comment
                name = clean_token(word)
                if name and name.lower() not in _NO_DEPENDENCY:
                    names.append(name)
    return list(dict.fromkeys(names))
