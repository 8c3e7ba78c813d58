"""File scopes (paths, directories, globs) and which tasks' scopes overlap.

Two tasks whose scopes overlap must not run side by side. Gadugi only compared exact strings; here a
file inside a directory, a directory inside another and a glob matching a file all count. Overlaps
are found as groups of tasks sharing one scope, through indexes (path -> tasks, directory ancestors,
each glob expanded once against the known files), so thousands of tasks are never compared pair by
pair and a thousand tasks on one file are one group, not half a million pairs.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

ScopeKind = Literal["file", "dir", "glob"]

GLOB_CHARS = frozenset("*?[")
# An edge reason only needs a hint of what is shared, not the full list.
MAX_SHARED = 3


@dataclass(frozen=True)
class Scope:
    """One normalised scope. `path` has no trailing `/`; the repository root is the dir `""`."""

    kind: ScopeKind
    path: str

    @property
    def label(self) -> str:
        if self.kind == "dir":
            return f"{self.path}/" if self.path else "./"
        return self.path


def is_glob(text: str) -> bool:
    return any(ch in GLOB_CHARS for ch in text)


def normalize_path(raw: str) -> tuple[str, bool] | None:
    """`(path, written_as_dir)` relative to the repo root, or None for paths outside it."""
    text = raw.strip().strip("`'\"").strip().replace("\\", "/")
    if not text or text.startswith("/") or text.startswith("~"):
        return None
    as_dir = text.endswith("/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts), as_dir or not parts


def _recursive_root(pattern: str) -> str | None:
    """`src/**`, `src/**/*` and `**` cover a whole directory; return it so it is indexed as one."""
    for suffix in ("/**/*", "/**"):
        if pattern.endswith(suffix) and not is_glob(pattern[: -len(suffix)]):
            return pattern[: -len(suffix)]
    return "" if pattern in ("**", "**/*") else None


def parse_scope(raw: str, tracked_dirs: frozenset[str] | set[str] = frozenset()) -> Scope | None:
    """Classify a declared scope; a name that is a tracked directory counts as that directory."""
    normal = normalize_path(raw)
    if normal is None:
        return None
    path, as_dir = normal
    if is_glob(path):
        root = _recursive_root(path)
        return Scope("dir", root) if root is not None else Scope("glob", path)
    if as_dir or path in tracked_dirs:
        return Scope("dir", path)
    return Scope("file", path)


def directories_of(files: Iterable[str]) -> set[str]:
    """Every directory that holds at least one of `files` (never the root `""`)."""
    dirs: set[str] = set()
    for path in files:
        cut = path.rfind("/")
        while cut > 0:
            parent = path[:cut]
            if parent in dirs:
                break
            dirs.add(parent)
            cut = parent.rfind("/")
    return dirs


def ancestors(path: str) -> list[str]:
    """The root `""` and every directory above `path`, nearest last."""
    out = [""]
    cut = path.find("/")
    while cut != -1:
        out.append(path[:cut])
        cut = path.find("/", cut + 1)
    return out


@lru_cache(maxsize=4096)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """fnmatch-like, but `*` and `?` stop at `/` and `**` crosses directories."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[" and (end := _class_end(pattern, i)) != -1:
            body = pattern[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            body = "".join("\\" + c if c in "\\[]^" else c for c in body)
            out.append(("[^/" if negate else "[") + body + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out))


def _class_end(pattern: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start`, or -1 (then `[` is literal)."""
    i = start + 1
    if i < len(pattern) and pattern[i] in "!^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    end = pattern.find("]", i)
    return -1 if end == -1 or "/" in pattern[start:end] else end


def glob_fixed_dir(pattern: str) -> str:
    """The directory every match of `pattern` lives in: its segments before the first wildcard."""
    fixed: list[str] = []
    for segment in pattern.split("/")[:-1]:
        if is_glob(segment):
            break
        fixed.append(segment)
    return "/".join(fixed)


def _literal_prefix(pattern: str) -> str:
    cut = min((pattern.find(ch) for ch in GLOB_CHARS if ch in pattern), default=len(pattern))
    return pattern[:cut]


def _under(path: str, directory: str) -> bool:
    return not directory or path == directory or path.startswith(directory + "/")


def scopes_overlap(a: Scope, b: Scope, universe: Iterable[str] = ()) -> bool:
    """The pairwise rule that `find_overlaps` implements with indexes (kept for tests and tools)."""
    if a.kind == "glob" and b.kind != "glob":
        a, b = b, a
    if b.kind != "glob":
        if a.kind == "file" and b.kind == "file":
            return a.path == b.path
        if a.kind == "file":
            return _under(a.path, b.path)
        if b.kind == "file":
            return _under(b.path, a.path)
        return _under(a.path, b.path) or _under(b.path, a.path)
    regex = glob_to_regex(b.path)
    if a.kind == "file":
        return regex.fullmatch(a.path) is not None
    if a.kind == "dir":
        if _under(glob_fixed_dir(b.path), a.path):
            return True
        return any(_under(p, a.path) and regex.fullmatch(p) for p in universe)
    if a.path == b.path:
        return True
    other = glob_to_regex(a.path)
    return any(regex.fullmatch(p) and other.fullmatch(p) for p in universe)


Claims = dict[str, str]  # task -> the label it claims a key under (first claim wins)


def _add_pair(shared: dict[tuple[str, str], list[str]], order: Mapping[str, int], x: str, y: str, label: str) -> None:
    key = (x, y) if order[x] < order[y] else (y, x)
    labels = shared.setdefault(key, [])
    if len(labels) < MAX_SHARED and label not in labels:
        labels.append(label)


def _expand(pattern: str, universe: Sequence[str]) -> Iterable[str]:
    """The paths of the sorted `universe` that `pattern` matches, scanning only its literal prefix."""
    regex, prefix = glob_to_regex(pattern), _literal_prefix(pattern)
    for path in universe[bisect.bisect_left(universe, prefix) :]:
        if not path.startswith(prefix):
            break
        if regex.fullmatch(path):
            yield path


def shared_scopes(scopes_by_task: Mapping[str, Sequence[str]], tracked_files: Iterable[str]) -> dict[str, list[str]]:
    """Each scope two or more tasks touch, labelled, with those tasks in the order of `scopes_by_task`.

    Every two tasks of one group overlap, and every two overlapping tasks share a group, so "one
    task of each group at a time" is exactly "no two overlapping tasks together". A group is a path
    (the tasks naming it, a glob matching it or a directory above it), a directory (it and the
    directories above) or a glob pattern (its text and the directories above its fixed part). The
    groups are found through indexes (path -> tasks, directory ancestors, each glob expanded once
    against the known files), never by comparing tasks pair by pair; their total size is the size
    of the claims plus, per path, the tasks claiming a directory above it.
    """
    tracked = set(tracked_files)
    tracked_dirs = frozenset(directories_of(tracked))
    files: dict[str, Claims] = {}  # a path -> tasks naming it, or naming a glob that matches it
    dirs: dict[str, Claims] = {}
    globs: dict[str, Claims] = {}
    for task, raw_scopes in scopes_by_task.items():
        for raw in raw_scopes:
            scope = parse_scope(raw, tracked_dirs)
            if scope is not None:
                index = {"file": files, "dir": dirs, "glob": globs}[scope.kind]
                index.setdefault(scope.path, {}).setdefault(task, scope.label)
    order = {task: i for i, task in enumerate(scopes_by_task)}
    groups: dict[str, set[str]] = {}

    def group(label: str, claims: Claims, above: Iterable[str]) -> None:
        members = set(claims).union(*(dirs.get(directory, {}) for directory in above))
        if len(members) > 1:
            groups.setdefault(label, set()).update(members)

    universe = sorted(tracked | files.keys())
    for pattern, claims in globs.items():
        fixed = glob_fixed_dir(pattern)
        group(pattern, claims, ancestors(fixed) + [fixed] if fixed else [""])
        for path in _expand(pattern, universe):
            for task in claims:
                files.setdefault(path, {}).setdefault(task, path)
    for path, claims in files.items():
        group(path, claims, ancestors(path))
    for directory, claims in dirs.items():
        group(Scope("dir", directory).label, claims, ancestors(directory) if directory else [])
    return {label: sorted(members, key=order.__getitem__) for label, members in groups.items()}


def find_overlaps(
    scopes_by_task: Mapping[str, Sequence[str]], tracked_files: Iterable[str]
) -> dict[tuple[str, str], list[str]]:
    """Every pair of tasks whose scopes overlap, with up to three shared paths or patterns: the
    pairwise view of `shared_scopes` (quadratic by nature; kept for tests and tools).

    Keys are `(earlier, later)` in the order tasks appear in `scopes_by_task`.
    """
    order = {task: i for i, task in enumerate(scopes_by_task)}
    shared: dict[tuple[str, str], list[str]] = {}
    for label, tasks in shared_scopes(scopes_by_task, tracked_files).items():
        for i, x in enumerate(tasks):
            for y in tasks[i + 1 :]:
                _add_pair(shared, order, x, y, label)
    return dict(sorted(shared.items(), key=lambda item: (order[item[0][0]], order[item[0][1]])))
