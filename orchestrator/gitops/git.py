"""Every git call the orchestrator makes, one small verb-named function each.

All functions take the repository or worktree path explicitly and run git with `-C <path>` and a
scrubbed environment, so neither the caller's cwd nor inherited `GIT_*` variables can redirect them.
Path lists are read from `-z` output, never from quoted text.
"""
from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.cmd import CommandError, run_cmd
from orchestrator.errors import GitError, InputError
from orchestrator.state.atomic import write_text_atomic

# Variables that describe *who* and *how*, never *which repository*: keeping them lets the user's
# identity, ssh setup and tracing through. Everything else (GIT_DIR, GIT_WORK_TREE,
# GIT_INDEX_FILE, GIT_OBJECT_DIRECTORY, ...) is set by hooks or by a parent git and would make our
# commands act on the wrong repository or index (pre-commit hit exactly this, pre-commit#300, #1849).
_KEEP_EXACT = frozenset(
    {
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_ASKPASS",
        "GIT_TERMINAL_PROMPT",
        "GIT_EXEC_PATH",
    }
)
_KEEP_PREFIXES = ("GIT_AUTHOR_", "GIT_COMMITTER_", "GIT_TRACE")

FALLBACK_NAME = "gadugi-orchestrator"
# Parallel-checkout writers of a fresh worktree: bound by filesystem latency rather than cores,
# so more than the CPU count pays off (measured: 4 halves the wall time on 2 cores).
CHECKOUT_WORKERS = max(4, os.cpu_count() or 1)
FALLBACK_EMAIL = "orchestrator@localhost"

# Another git (the user's editor, an agent) holding index.lock or a ref lock is transient.
# ("cannot lock ref ... is at X but expected Y" is a real refusal, not contention: not retried.)
# Another git process is mid-way: holding a lock, or writing a worktree's admin files (`worktree
# list` reads a half-made `.git/worktrees/<name>/` as "failed to read .../commondir").
_LOCK_BUSY = re.compile(r"Unable to create '.*\.lock': File exists|could not lock config file|"
                        r"failed to read .*/worktrees/[^/]+/(commondir|gitdir)")
_LOCK_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8)


def no_git_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default os.environ) without GIT_* variables outside the allowlist."""
    env = dict(os.environ if base is None else base)
    return {
        key: value
        for key, value in env.items()
        if not key.startswith("GIT_") or key in _KEEP_EXACT or key.startswith(_KEEP_PREFIXES)
    }


def _env() -> dict[str, str]:
    env = no_git_env()
    # We match a few stderr messages ("is not locked"); they must not be translated.
    env["LC_ALL"] = "C"
    return env


def _git(
    path: Path | str,
    *args: str,
    check: bool = True,
    retry_locked: bool = False,
    extra_env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> tuple[int, str, str]:
    argv = ["git", "-C", str(path), *args]
    env = _env()
    if extra_env:
        env.update(extra_env)
    delays = list(_LOCK_RETRY_DELAYS) if retry_locked else []
    while True:
        try:
            return run_cmd(argv, env=env, check=check, input_text=input_text)
        except CommandError as exc:
            if delays and _LOCK_BUSY.search(exc.stderr):
                time.sleep(delays.pop(0))
                continue
            raise GitError(str(exc)) from exc


def run_git(path: Path | str, *args: str, check: bool = True, retry_locked: bool = False) -> tuple[int, str, str]:
    """`git -C path ARGS` for the plumbing of modules built on this one (bundles, worker copies):
    the same scrubbed environment, `LC_ALL=C` and lock retry as every function here."""
    return _git(path, *args, check=check, retry_locked=retry_locked)


def _zsplit(text: str) -> list[str]:
    return [part for part in text.split("\0") if part]


# Where a directory's repository is does not change while we run, and every component asks
# (a run asked git the same two questions ~40 times for four tasks): answers are kept per
# process. Failures are not kept, so a directory that becomes a repository is seen as one.

def toplevel(path: Path) -> Path:
    """The root of the working tree containing `path`; InputError for non-repos and bare repos."""
    if not Path(path).is_dir():
        raise InputError(f"not a git repository: {path}")
    return _toplevel(str(path))


@functools.lru_cache(maxsize=256)
def _toplevel(path: str) -> Path:
    # One call: rev-parse prints --is-bare-repository before --show-toplevel dies in a bare repo.
    rc, out, _ = run_cmd(
        ["git", "-C", path, "rev-parse", "--is-bare-repository", "--show-toplevel"],
        env=_env(),
        check=False,
    )
    lines = out.splitlines()
    if lines and lines[0] == "true":
        raise InputError(f"bare repository: {path}")
    if rc != 0 or len(lines) < 2:
        raise InputError(f"not a git repository: {path}")
    return Path(lines[1])


def git_common_dir(repo: Path) -> Path:
    """The directory shared by all worktrees (`.git` of the main checkout)."""
    return _git_common_dir(str(repo))


@functools.lru_cache(maxsize=256)
def _git_common_dir(repo: str) -> Path:
    admin = _admin_dir_read(Path(repo))
    if admin is not None:
        # A linked worktree's admin directory names the shared one in `commondir` (relative to it);
        # any other's is the shared one itself (gitrepository-layout).
        try:
            common = (admin / "commondir").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return admin
        except OSError:
            common = ""
        if common:
            return Path(os.path.realpath(admin / common))
    out = _git(Path(repo), "rev-parse", "--path-format=absolute", "--git-common-dir")[1]
    return Path(out.strip())


def git_dir(worktree: Path) -> Path:
    """The worktree's own admin directory (`.git/worktrees/<id>` for a linked worktree)."""
    return _admin_dir_read(worktree) or Path(_git(worktree, "rev-parse", "--absolute-git-dir")[1].strip())


def linked_admin_dir(worktree: Path) -> Path | None:
    """The admin directory a `.git` file at the top of `worktree` names (a linked worktree's
    `.git/worktrees/<id>`), or None when there is no such file."""
    try:
        text = (worktree / ".git").read_text(encoding="utf-8")
    except OSError:  # absent, or a directory: not a linked worktree's top
        return None
    if not text.startswith("gitdir:"):
        return None
    # Absolute as git writes it, or relative to the worktree (worktree.useRelativePaths).
    return Path(os.path.realpath(worktree / text[len("gitdir:") :].strip()))


def _admin_dir_read(top: Path) -> Path | None:
    """What `git rev-parse --absolute-git-dir` answers at the top of a checkout (a real path),
    read from its `.git` instead of asked of a git process: most calls come from WorkflowManagers,
    each a new process, for a worktree whose layout git itself wrote. None where it is not that
    simple (a bare repository, a subdirectory), for git to answer."""
    dot_git = top / ".git"
    if dot_git.is_dir():
        return Path(os.path.realpath(dot_git))
    admin = linked_admin_dir(top)
    return admin if admin is not None and admin.is_dir() else None


def rev_parse(repo: Path, ref: str) -> str | None:
    """The commit SHA `ref` names, or None when it names no commit."""
    rc, out, _ = _git(
        repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False
    )
    return out.strip() if rc == 0 and out.strip() else None


def has_commits(repo: Path) -> bool:
    """False for a freshly initialised repository (unborn HEAD)."""
    return rev_parse(repo, "HEAD") is not None


def head_sha(worktree: Path) -> str:
    """The commit checked out in `worktree`; GitError on an unborn HEAD."""
    sha = rev_parse(worktree, "HEAD")
    if sha is None:
        raise GitError(f"HEAD of {worktree} points at no commit")
    return sha


def current_branch(worktree: Path) -> str | None:
    """The checked-out branch's short name, or None on a detached HEAD."""
    rc, out, _ = _git(worktree, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return out.strip() if rc == 0 else None


def tree_of(repo: Path, commit: str) -> str:
    """The tree object of `commit`."""
    return _git(repo, "rev-parse", f"{commit}^{{tree}}")[1].strip()


def ignored_files(repo: Path, *, patterns_file: Path | None = None) -> list[str]:
    """Untracked files ignored by `patterns_file`'s patterns, or by the repository's own ignore
    rules (.gitignore, info/exclude, core.excludesFile) when None."""
    exclude = f"--exclude-from={patterns_file}" if patterns_file is not None else "--exclude-standard"
    return _zsplit(_git(repo, "ls-files", "-z", "--others", "--ignored", exclude)[1])


def ls_files(repo: Path) -> list[str]:
    """Tracked paths, relative to the repository root."""
    return _zsplit(_git(repo, "ls-files", "-z")[1])


def list_branches(repo: Path) -> set[str]:
    """Short names of all local branches, in one call."""
    # Ref names cannot contain newlines, so line splitting is exact here.
    out = _git(repo, "for-each-ref", "--format=%(refname:strip=2)", "refs/heads/")[1]
    return {line for line in out.splitlines() if line}


def branch_exists(repo: Path, branch: str) -> bool:
    """True when refs/heads/<branch> exists."""
    rc = _git(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False)[0]
    return rc == 0


def clear_stale_index_lock(worktree: Path) -> bool:
    """Remove the worktree's `index.lock` that a killed git process left behind. Only for a
    worktree no git process can be using: the caller owns it and its previous user is dead.
    True when there was one."""
    rc, out, _ = _git(worktree, "rev-parse", "--git-dir", check=False)
    if rc != 0:
        return False
    git_dir = Path(out.strip())
    lock = (git_dir if git_dir.is_absolute() else worktree / git_dir) / "index.lock"
    try:
        lock.unlink()
    except FileNotFoundError:
        return False
    return True


def branch_created_at(repo: Path, branch: str) -> str | None:
    """The commit `branch` was created at, from its reflog's oldest entry; None without a reflog
    (core.logAllRefUpdates off) or branch. `worktree add -b` writes that entry, so for a task
    branch this is its start commit even when nothing else recorded it."""
    rc, out, _ = _git(repo, "reflog", "show", "--format=%H", f"refs/heads/{branch}", "--", check=False)
    shas = out.split()
    return shas[-1] if rc == 0 and shas else None


def check_ref_format_branch(name: str) -> bool:
    """git's own verdict on `name` as a new branch name."""
    # Run from / so an `@{-1}`-style name can never be expanded against some repository.
    rc = run_cmd(["git", "check-ref-format", "--branch", name], cwd="/", env=_env(), check=False)[0]
    return rc == 0


def delete_branch_if_at(repo: Path, branch: str, sha: str) -> bool:
    """Delete `branch` only if it still points at `sha` (atomic compare-and-delete).

    `update-ref -d <ref> <old>` instead of `branch -D`: it refuses when the branch moved, i.e. when
    it holds work, and it does not rewrite .git/config (`branch -D` races there).
    """
    rc = _git(
        repo, "update-ref", "-d", f"refs/heads/{branch}", sha, check=False, retry_locked=True
    )[0]
    return rc == 0


def create_branch(repo: Path, branch: str, sha: str, *, reflog_message: str) -> None:
    """Create `branch` at `sha`; GitError when it exists, even if it appeared a moment ago.

    `update-ref <ref> <new> ""`: the empty old value makes git refuse an existing ref, so an
    existing branch is never moved."""
    rc, _, err = _git(
        repo, "update-ref", "-m", reflog_message, f"refs/heads/{branch}", sha, "", check=False, retry_locked=True
    )
    if rc != 0:
        raise GitError(f"could not create branch {branch!r}: {err.strip()}")


def keep_ref(repo: Path, ref: str, sha: str, *, reflog_message: str) -> None:
    """Create `ref` (outside refs/heads) at `sha`, so those commits stay reachable; GitError
    when it exists."""
    rc, _, err = _git(repo, "update-ref", "-m", reflog_message, ref, sha, "", check=False, retry_locked=True)
    if rc != 0:
        raise GitError(f"could not create {ref!r}: {err.strip()}")


def set_orig_head(worktree: Path, sha: str) -> None:
    """Point the worktree's ORIG_HEAD at `sha`."""
    _git(worktree, "update-ref", "--no-deref", "ORIG_HEAD", sha, retry_locked=True)


def status_paths(worktree: Path) -> list[str]:
    """Paths with staged, unstaged or untracked changes (ignored files excluded)."""
    # Optional locks off: we poll worktrees where an agent may be committing at the same moment.
    out = _git(
        worktree,
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--ignore-submodules=none",
        extra_env={"GIT_OPTIONAL_LOCKS": "0"},
    )[1]
    fields = out.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # renames and copies carry the source path as the next field
            i += 1
    return paths


def is_dirty(worktree: Path) -> bool:
    """True when `worktree` has anything `git worktree remove` would refuse to drop."""
    return bool(status_paths(worktree))


def add_worktree(
    repo: Path, path: Path, branch: str | None, commit: str, *, checkout: bool = True,
    lock_reason: str | None = None,
) -> None:
    """Register a worktree at `path` on a new `branch` (or detached when None) at `commit`,
    locked with `lock_reason` from the moment git registers it when one is given.

    `commit` should be a SHA: a remote-tracking base makes git write upstream config, and parallel
    adds then fail on .git/config.lock (perf-limits §2). `--no-track` makes sure of it.
    """
    args = ["worktree", "add", "--quiet"]
    if not checkout:
        args.append("--no-checkout")
    if lock_reason is not None:
        # git writes this lock before anything else of the new worktree exists, so a kill at any
        # point leaves a registration locked with our reason, never an unlocked half-made one.
        args += ["--lock", "--reason", lock_reason]
    args += ["--detach"] if branch is None else ["--no-track", "-b", branch]
    args += [str(path), commit]
    _git(repo, *args)


def add_worktree_for_branch(repo: Path, path: Path, branch: str) -> None:
    """Register a worktree at `path` checking out the existing `branch` (a retry or resume whose
    worktree went missing continues on the branch that holds the earlier attempt's work)."""
    _git(repo, "worktree", "add", "--quiet", str(path), branch)


def checkout_worktree(path: Path) -> None:
    """Fill the index and files of a worktree created with `--no-checkout`."""
    # What `worktree add` itself runs to check out (the new directory holds nothing to lose), with
    # parallel checkout: writing many small files waits on the filesystem far more than on the
    # CPU, so several writers finish sooner even on few cores; git keeps it sequential below
    # checkout.thresholdForParallelism (100) files. This is what makes a create cheaper than a plain
    # `git worktree add` (docs/benchmarks.md, "Worktree setup by repository size").
    _git(path, "-c", f"checkout.workers={CHECKOUT_WORKERS}", "reset", "--hard", "--quiet", retry_locked=True)


def set_sparse_checkout(worktree: Path, patterns: Sequence[str], *, cone: bool) -> None:
    """Make `worktree` (made with `--no-checkout`, so nothing is written yet) sparse: its next
    checkout writes only what `patterns` select. The settings are the worktree's own
    (config.worktree, info/sparse-checkout); the first call turns on extensions.worktreeConfig in
    the shared config, so callers hold the repository lock."""
    _git(worktree, "sparse-checkout", "set", "--cone" if cone else "--no-cone", "--stdin",
         input_text="".join(f"{p}\n" for p in patterns))


def is_sparse(worktree: Path) -> bool:
    rc, out, _ = _git(worktree, "config", "--bool", "--get", "core.sparseCheckout", check=False)
    return rc == 0 and out.strip() == "true"


def directories_among(repo: Path, commit: str, paths: Sequence[str]) -> set[str]:
    """Which of `paths` are directories (trees) at `commit`; one ls-tree for all of them."""
    if not paths:
        return set()
    _, out, _ = _git(repo, "ls-tree", "-z", commit, "--", *paths)
    found: set[str] = set()
    for record in _zsplit(out):
        meta, _, name = record.partition("\t")
        if meta.split(" ")[1:2] == ["tree"]:
            found.add(name)
    return found


def reset_hard(worktree: Path, commit: str) -> None:
    """Put index and tracked files of `worktree` at `commit`, rewriting only the files that differ."""
    _git(worktree, "reset", "--hard", "--quiet", commit, retry_locked=True)


def clean_untracked(worktree: Path, *, ignored: bool, keep: Sequence[str] = ()) -> None:
    """Delete untracked files and directories, nested repositories included (`-ff`); with
    `ignored` also the ignored ones except those matching a pattern of `keep`."""
    flags = "-ffdxq" if ignored else "-ffdq"
    _git(worktree, "clean", flags, *(arg for pattern in keep for arg in ("-e", pattern)))


def detach_head(worktree: Path) -> None:
    """Leave the worktree's branch: HEAD at the same commit, no branch checked out."""
    _git(worktree, "switch", "--quiet", "--detach", retry_locked=True)


def move_worktree(repo: Path, source: Path, target: Path) -> None:
    """`git worktree move`, a rename on one filesystem, with its lock: a locked worktree stays
    locked with the same reason throughout (`--force` twice is git's consent to move one), so a
    kill mid-way never leaves it unlocked for `prune` or `remove`."""
    _git(repo, "worktree", "move", "--force", "--force", str(source), str(target), retry_locked=True)


def relock_worktree(worktree: Path, reason: str) -> None:
    """Give the locked linked worktree a new lock reason in one step.

    git has no command for it: `lock` refuses a locked worktree, and `unlock` then `lock` leaves a
    moment with no lock at all. The reason lives in the admin file `locked`
    (gitrepository-layout: `worktrees/<id>/locked`), written the way `git worktree lock` writes it,
    so replacing that file atomically changes the owner without that moment."""
    write_text_atomic(git_dir(worktree) / "locked", reason + "\n")


def lock_worktree(repo: Path, path: Path, reason: str) -> None:
    """`git worktree lock`: remove then refuses and prune skips it while a task runs."""
    _git(repo, "worktree", "lock", "--reason", reason, str(path))


def unlock_worktree(repo: Path, path: Path) -> bool:
    """Unlock `path`; False when it was not locked."""
    rc, _, err = _git(repo, "worktree", "unlock", str(path), check=False)
    if rc == 0:
        return True
    if "is not locked" in err:
        return False
    raise GitError(f"`git worktree unlock {path}` exited {rc}: {err.strip()}")


def remove_worktree(repo: Path, path: Path, *, force: bool = False) -> None:
    """`git worktree remove`: without force git itself refuses modified or untracked files."""
    args = ["worktree", "remove"]
    if force:
        args.append("--force")
    _git(repo, *args, str(path), retry_locked=True)


def prune_worktrees(repo: Path) -> None:
    """Drop registrations whose directory is gone (locked ones are kept by git)."""
    _git(repo, "worktree", "prune", retry_locked=True)


@dataclass(frozen=True)
class WorktreeEntry:
    """One record of `git worktree list --porcelain -z`."""

    path: Path
    head: str | None = None
    branch: str | None = None  # short name, without refs/heads/
    bare: bool = False
    detached: bool = False
    locked: bool = False
    lock_reason: str | None = None
    prunable: bool = False
    prunable_reason: str | None = None


def _parse_worktree_record(fields: list[str]) -> WorktreeEntry:
    attrs: dict[str, str] = {}
    for field in fields:
        key, _, value = field.partition(" ")
        attrs[key] = value
    branch = attrs.get("branch")
    return WorktreeEntry(
        path=Path(attrs.get("worktree", "")),
        head=attrs.get("HEAD"),
        branch=branch.removeprefix("refs/heads/") if branch is not None else None,
        bare="bare" in attrs,
        detached="detached" in attrs,
        locked="locked" in attrs,
        lock_reason=attrs.get("locked") or None,
        prunable="prunable" in attrs,
        prunable_reason=attrs.get("prunable") or None,
    )


def list_worktrees(repo: Path) -> list[WorktreeEntry]:
    out = _git(repo, "worktree", "list", "--porcelain", "-z", retry_locked=True)[1]
    entries: list[WorktreeEntry] = []
    record: list[str] = []
    # Fields end with NUL; an empty field (two NULs in a row) ends a record.
    for field in out.split("\0"):
        if field:
            record.append(field)
        elif record:
            entries.append(_parse_worktree_record(record))
            record = []
    if record:
        entries.append(_parse_worktree_record(record))
    return entries


def _identity_args(repo: Path) -> list[str]:
    """`-c user.*` fallbacks for whatever identity config is missing.

    Environment GIT_AUTHOR_*/GIT_COMMITTER_* still win over `-c`, and a configured user.* is left
    alone; only a repository with no identity at all gets ours, so committing never fails on it.
    """
    rc, out, _ = _git(repo, "config", "--get-regexp", r"^user\.(name|email)$", check=False)
    have = {line.split(" ", 1)[0].lower() for line in out.splitlines()} if rc == 0 else set()
    args: list[str] = []
    if "user.name" not in have:
        args += ["-c", f"user.name={FALLBACK_NAME}"]
    if "user.email" not in have:
        args += ["-c", f"user.email={FALLBACK_EMAIL}"]
    return args


def commit_all(worktree: Path, message: str) -> str | None:
    """Stage everything (untracked included) and commit it; the new SHA, or None if nothing changed."""
    # In a sparse worktree, --sparse lets a file written outside the checked-out scopes be staged
    # (plain `add -A` refuses it and fails); files absent because they are outside are
    # skip-worktree entries, which `add` never records as deleted either way.
    _git(worktree, "add", "-A", *(["--sparse"] if is_sparse(worktree) else []), retry_locked=True)
    if _git(worktree, "diff", "--cached", "--quiet", check=False)[0] == 0:
        return None
    # --no-verify: this commit only preserves what the agent left behind. A user's pre-commit or
    # commit-msg hook failing (or rewriting files) here would leave the work uncommitted, and it is
    # then lost when the worktree is cleaned up; the user reviews the branch before merging anyway.
    _git(
        worktree,
        *_identity_args(worktree),
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        message,
        retry_locked=True,
    )
    return head_sha(worktree)


def commits_between(repo: Path, base: str, head: str) -> list[str]:
    """Commits reachable from `head` but not `base`, oldest first."""
    out = _git(repo, "rev-list", "--reverse", f"{base}..{head}", "--")[1]
    return out.split()


def changed_files(repo: Path, base: str, head: str) -> set[str]:
    """Paths that differ between `base` and `head`; a rename counts as its two paths."""
    return set(_zsplit(_git(repo, "diff", "--name-only", "-z", "--no-renames", base, head)[1]))


def diffstat(repo: Path, base: str, head: str) -> tuple[list[str], int, int]:
    """(changed files, insertions, deletions) from `base` to `head`; binary files count as 0/0."""
    out = _git(repo, "diff", "--numstat", "-z", "--no-ext-diff", base, head, "--")[1]
    fields = out.split("\0")
    files: list[str] = []
    insertions = deletions = 0
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if not entry:
            continue
        added, deleted, path = entry.split("\t", 2)
        if not path:  # a rename: the old and new paths follow as separate fields
            path = fields[i + 1]
            i += 2
        files.append(path)
        insertions += int(added) if added.isdigit() else 0
        deletions += int(deleted) if deleted.isdigit() else 0
    return files, insertions, deletions


@dataclass(frozen=True)
class MergeTreeResult:
    clean: bool
    tree: str
    conflicted_files: tuple[str, ...]


def merge_tree(repo: Path, a: str, b: str) -> MergeTreeResult:
    """Merge `a` and `b` in memory (`merge-tree --write-tree`); touches no ref, index or file."""
    rc, out, err = _git(
        repo,
        "merge-tree",
        "--write-tree",
        "--name-only",
        "--no-messages",
        "-z",
        a,
        b,
        check=False,
    )
    if rc not in (0, 1):
        raise GitError(f"`git merge-tree {a} {b}` exited {rc}: {err.strip()}")
    fields = _zsplit(out)
    if not fields:
        raise GitError(f"`git merge-tree {a} {b}` printed no tree")
    return MergeTreeResult(clean=rc == 0, tree=fields[0], conflicted_files=tuple(fields[1:]))


def commit_tree(repo: Path, tree: str, parents: Sequence[str], message: str) -> str:
    """Create a commit object for `tree`; no ref is moved."""
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    return _git(repo, *_identity_args(repo), *args, "-m", message)[1].strip()


def independent_commits(repo: Path, commits: Sequence[str]) -> list[str]:
    """The commits of `commits` not reachable from another one, in input order."""
    if len(commits) < 2:
        return list(commits)
    out = set(_git(repo, "merge-base", "--independent", *commits)[1].split())
    seen: set[str] = set()
    result = []
    for sha in commits:
        if sha in out and sha not in seen:
            seen.add(sha)
            result.append(sha)
    return result


def is_ancestor(repo: Path, a: str, b: str) -> bool:
    """True when `a` is reachable from `b` (or equal to it)."""
    rc, _, err = _git(repo, "merge-base", "--is-ancestor", a, b, check=False)
    if rc not in (0, 1):
        raise GitError(f"`git merge-base --is-ancestor {a} {b}` exited {rc}: {err.strip()}")
    return rc == 0


def switch_new_branch(worktree: Path, branch: str, commit: str) -> None:
    """Create `branch` at `commit` and check it out (sequential mode in the main checkout)."""
    _git(worktree, "switch", "--quiet", "--no-track", "-c", branch, commit, retry_locked=True)


def switch_branch(worktree: Path, branch: str) -> None:
    """Check out an existing local branch (sequential mode)."""
    # --no-guess: never silently create a tracking branch from a remote of the same name.
    _git(worktree, "switch", "--quiet", "--no-guess", branch, retry_locked=True)


def push_branch(repo: Path, remote: str, branch: str, *, path: str | None = None) -> str | None:
    """Push `branch` to `remote` and make it the upstream; None on success, else git's stderr.
    `path` replaces PATH (where git finds ssh and credential helpers)."""
    rc, _, err = _git(repo, "push", "--quiet", "--set-upstream", remote, branch, check=False,
                      extra_env={"PATH": path} if path is not None else None)
    return None if rc == 0 else err


def info_exclude_add(repo: Path, patterns: Iterable[str]) -> list[str]:
    """Append the missing `patterns` to `<git-common-dir>/info/exclude`; returns what was added.

    info/exclude rather than .gitignore: it is shared by every worktree and never shows up as a
    change in the user's repository. Callers serialize concurrent calls (the repo lock).
    """
    exclude = git_common_dir(repo) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text(encoding="utf-8", errors="replace") if exclude.exists() else ""
    present = {line.strip() for line in existing.splitlines()}
    missing = [p for p in dict.fromkeys(patterns) if p.strip() not in present]
    if missing:
        prefix = "" if not existing or existing.endswith("\n") else "\n"
        with exclude.open("a", encoding="utf-8") as fh:
            fh.write(prefix + "".join(f"{p}\n" for p in missing))
    return missing


def added_lines_diff(repo: Path, base: str, head: str) -> str:
    """`git diff -U0` from `base` to `head`: only the added and removed lines, each hunk's header
    naming where the added lines start. New files are compared with nothing, so all of them count."""
    return _git(repo, "diff", "-U0", "--no-color", "--no-ext-diff", "--no-renames", "--src-prefix=a/",
                "--dst-prefix=b/", base, head, "--")[1]


def added_files(repo: Path, base: str, head: str) -> list[str]:
    """Files that exist at `head` and not at `base`."""
    out = _git(repo, "diff", "--name-only", "--diff-filter=A", "--no-renames", "-z", base, head, "--")[1]
    return _zsplit(out)


def blob_sizes(repo: Path, ref: str, paths: Sequence[str]) -> dict[str, int]:
    """Size in bytes of each of `paths` that is a file at `ref`; missing paths (and directories,
    given as `-`) are left out. Paths are taken literally, never as patterns."""
    if not paths:
        return {}
    out = _git(repo, "--literal-pathspecs", "ls-tree", "-r", "-l", "-z", "--full-tree", ref, "--", *paths)[1]
    sizes: dict[str, int] = {}
    for record in _zsplit(out):
        meta, _, path = record.partition("\t")
        size = meta.split()[-1]
        if size.isdigit():
            sizes[path] = int(size)
    return sizes
