"""Which prompt files the user meant: names from the command line or from free text on stdin.

Gadugi dropped backticked names, `prompts/x.md` and anything on its "Execute these prompts:" line,
and silently skipped missing files. Here every form is accepted and a missing name is an error that
lists each path that was tried.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from orchestrator.errors import InputError, closest

PROMPTS_DIR = "prompts"

_QUOTES = "`'\"\u201c\u201d\u2018\u2019"
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+(.*)$")
_SEPARATORS = re.compile(r"[\s,]+")
_NAME = re.compile(r"[^\s:]*[A-Za-z0-9][^\s:]*")
_FRONT_MATTER_ID = re.compile(r"\A---[ \t]*\n(?:.*\n)*?id:[ \t]*['\"]?([^'\"\n]+?)['\"]?[ \t]*\n(?:.*\n)*?---", re.MULTILINE)


def _unquote(name: str) -> str:
    text = name.strip()
    while len(text) >= 1 and (text[0] in _QUOTES or text[-1] in _QUOTES):
        text = text.strip(_QUOTES).strip()
    return text


def _candidates(name: str, cwd: Path, root: Path) -> list[Path]:
    """Every place `name` might be, in the order they are tried."""
    raw = Path(os.path.expanduser(name))
    bases = [raw] if raw.is_absolute() else [cwd / raw, root / PROMPTS_DIR / raw, root / raw]
    if not raw.is_absolute() and name.startswith(f"{PROMPTS_DIR}/"):
        bases.append(root / PROMPTS_DIR / name[len(PROMPTS_DIR) + 1 :])
    tried: list[Path] = []
    for base in bases:
        tried.append(base)
        if base.suffix.lower() != ".md":
            tried.append(base.with_name(base.name + ".md"))
    return list(dict.fromkeys(Path(os.path.normpath(p)) for p in tried))


def resolve_prompt_path(name: str, *, cwd: Path, project_root: Path) -> Path:
    """The prompt file `name` refers to, absolute; InputError says where it looked."""
    clean = _unquote(name)
    if not clean:
        raise InputError(f"empty prompt name {name!r}")
    candidates = _candidates(clean, cwd.resolve(), project_root.resolve())
    for path in candidates:
        if path.is_file():
            return path.resolve()
    for path in candidates:
        if path.is_dir():
            raise InputError(f"prompt '{clean}': {path} is a directory, not a prompt file")
    raise InputError(f"prompt '{clean}' not found{_hint(clean, cwd.resolve(), project_root.resolve())}")


def _hint(name: str, cwd: Path, root: Path) -> str:
    """Where the user probably meant: the prompt file whose task id is `name`, else the closest name."""
    known: dict[str, Path] = {}
    for folder in dict.fromkeys((cwd, root / PROMPTS_DIR, root)):
        for path in sorted(folder.glob("*.md")) if folder.is_dir() else ():
            if path.is_file():
                known.setdefault(path.stem, path)
    shown = {stem: _shown(path, cwd) for stem, path in known.items()}
    wanted = Path(name).name.removesuffix(".md")
    for stem, path in known.items():
        if _task_id(path) == wanted:
            return f": it is the id of the task in {shown[stem]}; pass that file"
    match = closest(wanted, known)
    if match is not None:
        return f" (did you mean {shown[match]!r}?)"
    places = ", ".join(dict.fromkeys(_shown(p, cwd) + "/" for p in (cwd, root / PROMPTS_DIR, root) if p.is_dir()))
    return f" in {places} ({len(known)} prompt files there)"


def _shown(path: Path, cwd: Path) -> str:
    """A path as the user would type it from where they are."""
    relative = os.path.relpath(path, cwd)
    return str(path) if relative.startswith("../..") else relative


def _task_id(path: Path) -> str | None:
    """The `id:` in a prompt's front matter, read leniently: only for a suggestion."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return None
    found = _FRONT_MATTER_ID.match(head)
    return found.group(1).strip() if found else None


def resolve_prompt_paths(names: Sequence[str], *, cwd: Path, project_root: Path) -> list[Path]:
    """Resolve every name (see `resolve_prompt_path`); the same file given twice is kept once."""
    found = [resolve_prompt_path(n, cwd=cwd, project_root=project_root) for n in names]
    return list(dict.fromkeys(found))


def _clean(token: str) -> str:
    """Drop what can wrap a name in chat text: quotes, emphasis, brackets, trailing punctuation."""
    text, previous = token.strip(), ""
    while text != previous:
        previous, text = text, text.strip(_QUOTES + "*()[]<>").rstrip(".,;:!?").strip()
    return text


def parse_prompt_list(text: str) -> list[str]:
    """Prompt names in free text: list items that are one name, and `*.md` names on any line."""
    names: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        item = _LIST_ITEM.match(stripped)
        # `- Overview:` is a label, not a name; `- Delegate each to ...` is an instruction.
        if item and not item.group(1).rstrip().endswith(":"):
            single = _clean(item.group(1))
            if single and _NAME.fullmatch(single):
                names.append(single)
                continue
        for token in _SEPARATORS.split(stripped):
            name = _clean(token)
            if name.lower().endswith(".md") and len(name) > 3 and ":" not in name:
                names.append(name)
    return list(dict.fromkeys(names))
