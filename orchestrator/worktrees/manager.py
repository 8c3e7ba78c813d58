"""One real git worktree and branch per task: naming, creation, removal and orphan listing.

Safety rules (each one a bug of the previous tool, reference/gadugi.md §1.4): a branch or
directory that already exists is never reused or deleted; a registered worktree is only ever removed
through `git worktree remove` (never rmtree), and never when dirty unless forced; branches are never
deleted here, except the one a failed `create` made itself while it still holds no new work.
"""
from __future__ import annotations

import logging
import os
import re
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.errors import GitError, InputError, OrchestratorError, WorktreeError
from orchestrator.gitops import git
from orchestrator.state.locks import file_lock
from orchestrator.worktrees.sparse import sparse_checkout_for

log = logging.getLogger(__name__)

MAX_SLUG = 50
RUNTIME_EXCLUDES = (
    # Everything the orchestrator writes under .gadugi/ is runtime state; only the user's own
    # config.toml there is meant to be committed.
    "/.gadugi/*",
    "!/.gadugi/config.toml",
)

_SLUG_JUNK = re.compile(r"[^a-z0-9._-]+")
_SLUG_DOTS = re.compile(r"\.{2,}")
_SLUG_DASHES = re.compile(r"-{2,}")
_SLUG_TRIM = "-._"
# git check-ref-format rules that a name built from our own pieces could still break.
_REF_BAD_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


@dataclass(frozen=True)
class CreatedWorktree:
    path: Path
    branch: str
    start_sha: str
    merged_from: tuple[str, ...]  # predecessor branches whose commits the start commit joins


@dataclass(frozen=True)
class Orphan:
    path: Path
    kind: Literal["missing", "unregistered"]  # registered without a directory / the reverse
    branch: str | None = None


def slugify(task_id: str) -> str:
    """A lowercase `[a-z0-9._-]` slug, safe as one ref component and one directory name."""
    ascii_text = unicodedata.normalize("NFKD", task_id).encode("ascii", "ignore").decode()
    slug = _SLUG_JUNK.sub("-", ascii_text.lower())
    slug = _SLUG_DASHES.sub("-", _SLUG_DOTS.sub(".", slug))
    return _trim(slug[:MAX_SLUG]) or "task"


def _trim(slug: str) -> str:
    while True:
        stripped = slug.strip(_SLUG_TRIM)
        if stripped.endswith(".lock"):
            stripped = stripped[: -len(".lock")]
        if stripped == slug:
            return slug
        slug = stripped


def _with_suffix(slug: str, n: int) -> str:
    if n == 1:
        return slug
    suffix = f"-{n}"
    return (_trim(slug[: MAX_SLUG - len(suffix)]) or "task") + suffix


def is_valid_branch_name(name: str) -> bool:
    """`git check-ref-format --branch` rules, in Python so 1000 names cost no processes."""
    if not name or name.startswith("-") or name == "@" or name.endswith(("/", ".")):
        return False
    if ".." in name or "@{" in name or "//" in name or _REF_BAD_CHARS.search(name):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))


class WorktreeManager:
    """Creates, locks and removes the per-task worktrees of one repository."""

    def __init__(
        self,
        project_root: Path,
        *,
        worktrees_dir: str = ".worktrees",
        branch_prefix: str = "gadugi/",
        lock_path: Path | None = None,
    ) -> None:
        self.project_root = git.toplevel(Path(project_root))
        self.worktrees_dir = worktrees_dir
        self.worktrees_root = self.project_root / worktrees_dir
        self.branch_prefix = branch_prefix
        self.lock_path = lock_path or git.git_common_dir(self.project_root) / "gadugi-git.lock"

    @contextmanager
    def _repo_lock(self) -> Iterator[None]:
        # Serializes our mutations of the shared .git (worktree add/remove/prune, ref deletes)
        # across threads and processes; flock on separate opens conflicts within a process too.
        with file_lock(self.lock_path):
            yield

    def ensure_ignored(self) -> None:
        """Keep the worktrees dir and runtime `.gadugi/` files out of the user's `git status`."""
        patterns = list(RUNTIME_EXCLUDES)
        try:
            rel = Path(os.path.normpath(self.worktrees_root)).relative_to(self.project_root)
        except ValueError:
            rel = None  # worktrees live outside the checkout: nothing to hide
        if rel is not None and rel.parts:
            patterns.insert(0, f"/{rel.as_posix()}/")
        with self._repo_lock():
            git.info_exclude_add(self.project_root, patterns)

    def first_choice(self, task_id: str) -> str:
        """The branch a task gets when nothing by that name exists yet."""
        return self.branch_prefix + slugify(task_id)

    def plan_names(self, task_ids: Sequence[str]) -> dict[str, tuple[str, Path]]:
        """A new, valid, unique (branch, worktree path) for each task id.

        Suffixes `-2`, `-3`, ... avoid existing branches (one for-each-ref for all tasks), existing
        or registered paths, and names taken earlier in this plan.
        """
        if len(set(task_ids)) != len(task_ids):
            raise InputError("duplicate task ids in plan_names")
        existing = {b.lower() for b in git.list_branches(self.project_root)}
        self._check_prefix(existing)
        # An existing `a/b` makes a new `a` impossible (refs are files and directories); the
        # reverse, an existing `a` blocking `a/...`, can only come from the prefix: see above.
        ref_dirs = {b.rsplit("/", k)[0] for b in existing for k in range(1, b.count("/") + 1)}
        registered = {os.path.realpath(e.path) for e in git.list_worktrees(self.project_root)}
        taken_slugs: set[str] = set()
        plan: dict[str, tuple[str, Path]] = {}
        for task_id in task_ids:
            base = slugify(task_id)
            n = 1
            while True:
                slug = _with_suffix(base, n)
                branch = self.branch_prefix + slug
                path = self.worktrees_root / slug
                if not (
                    slug in taken_slugs
                    or branch.lower() in existing
                    or branch.lower() in ref_dirs
                    or os.path.lexists(path)
                    or os.path.realpath(path) in registered
                ):
                    break
                n += 1
            if not is_valid_branch_name(branch):  # pragma: no cover - slugs are safe by construction
                raise InputError(f"cannot build a valid branch name for task {task_id!r}: {branch!r}")
            taken_slugs.add(slug)
            plan[task_id] = (branch, path)
        return plan

    def _check_prefix(self, existing: set[str]) -> None:
        # The slug alphabet is safe on its own, so git's verdict on the prefix (plus a sample slug)
        # covers every name without one process per task.
        sample = self.branch_prefix + "task"
        if not is_valid_branch_name(sample) or not git.check_ref_format_branch(sample):
            raise InputError(f"branch prefix {self.branch_prefix!r} does not form valid branch names")
        parts = sample.split("/")
        for k in range(1, len(parts)):
            blocker = "/".join(parts[:k])
            if blocker.lower() in existing:
                raise InputError(
                    f"branch {blocker!r} exists, so no branch can be created under {self.branch_prefix!r}"
                )

    def start_commit(
        self, task_id: str, *, base_sha: str, predecessors: Sequence[tuple[str, str]] = ()
    ) -> str:
        """The commit a task starts from (base, its predecessor's result, or their merge)."""
        return self._start_commit(task_id, base_sha, predecessors)[0]

    def _start_commit(
        self, task_id: str, base_sha: str, predecessors: Sequence[tuple[str, str]]
    ) -> tuple[str, tuple[str, ...]]:
        repo = self.project_root
        if not predecessors:
            start = git.rev_parse(repo, base_sha)
            if start is None:
                raise WorktreeError(f"base {base_sha!r} of task {task_id} is not a commit")
            return start, ()
        named: dict[str, str] = {}  # sha -> first branch that brought it
        for branch, sha in predecessors:
            resolved = git.rev_parse(repo, sha)
            if resolved is None:
                raise WorktreeError(f"predecessor {branch} of task {task_id}: {sha!r} is not a commit")
            named.setdefault(resolved, branch)
        # Predecessors already contained in another (no new commits, or stacked) add nothing.
        heads = git.independent_commits(repo, list(named))
        branches = tuple(named[sha] for sha in heads)
        if len(heads) == 1:
            return heads[0], branches
        current, tree = heads[0], ""
        for i, sha in enumerate(heads[1:], start=1):
            result = git.merge_tree(repo, current, sha)
            if not result.clean:
                raise WorktreeError(
                    f"predecessors of task {task_id} conflict: {', '.join(branches[:i])} and "
                    f"{branches[i]} both change {', '.join(result.conflicted_files)}"
                )
            # Intermediate commits are unreferenced objects: only the final one is ever used.
            tree = result.tree
            current = git.commit_tree(repo, tree, [current, sha], "intermediate merge")
        message = f"Merge predecessors {', '.join(branches)} for task {task_id}"
        return git.commit_tree(repo, tree, heads, message), branches

    def create(
        self,
        task_id: str,
        branch: str,
        path: Path,
        *,
        base_sha: str,
        predecessors: Sequence[tuple[str, str]] = (),
        lock_reason: str,
        leftover_of: str | None = None,
        sparse_scopes: Sequence[str] = (),
    ) -> CreatedWorktree:
        """Create `branch` and a locked worktree at `path`, starting at `base_sha` or at the
        (merged) result commits of `predecessors`, given as (branch, commit) pairs.

        `leftover_of`: the lock-reason prefix of this task in this run. A worktree locked with it
        and on no branch, at `path` or still in the pool, is what an attempt killed while setting
        up left: it holds no work and is cleared instead of refused (clear_leftover).

        `sparse_scopes`: the task's declared `files:` scopes, for a sparse checkout of them
        (worktrees/sparse.py); empty for a full checkout."""
        path = Path(os.path.abspath(path))
        start, merged_from = self._start_commit(task_id, base_sha, predecessors)
        sparse = sparse_checkout_for(self.project_root, start, sparse_scopes) if sparse_scopes else None
        attempted = False
        try:
            with self._repo_lock():
                if leftover_of is not None:
                    self.clear_leftover(branch, leftover_of)
                # Re-checked under the lock: a concurrent run may have taken the name since
                # plan_names; we fail rather than reuse or delete what is not ours.
                if git.branch_exists(self.project_root, branch):
                    raise WorktreeError(f"branch {branch} already exists; not reusing it for task {task_id}")
                if os.path.lexists(path) or self._entry(path) is not None:
                    raise WorktreeError(f"{path} already exists; not reusing it for task {task_id}")
                path.parent.mkdir(parents=True, exist_ok=True)
                # `worktree add -b` creates the branch before it checks the path, so from here a
                # failure may leave a branch that this call made.
                attempted = True
                git.add_worktree(self.project_root, path, branch, start, checkout=False, lock_reason=lock_reason)
                if sparse is not None:
                    git.set_sparse_checkout(path, sparse.patterns, cone=sparse.cone)
            # The checkout is the slow part (perf-limits §1); outside the lock it runs in parallel
            # with other tasks' set-up, while the worktree is already locked with our reason.
            git.checkout_worktree(path)
        except BaseException as exc:
            if attempted:
                self._roll_back(path, branch, start)
            if isinstance(exc, (GitError, OSError)):
                raise WorktreeError(f"could not create worktree for task {task_id}: {exc}") from exc
            raise
        return CreatedWorktree(path=path, branch=branch, start_sha=start, merged_from=merged_from)

    def clear_leftover(self, branch: str, owner: str) -> None:
        """Remove what an attempt of the task that locks with the prefix `owner` left half set up
        when it was killed before its branch existed (call it under the repository lock)."""
        # A `git worktree add -b` killed mid-way leaves the lock of the branch ref it was creating;
        # the name is this task's own (planned unique for this run), so no one else can hold it.
        ref_lock = git.git_common_dir(self.project_root) / "refs" / "heads" / f"{branch}.lock"
        if ref_lock.is_file():
            log.warning("removing %s, left by an attempt killed while creating the branch", ref_lock)
            ref_lock.unlink(missing_ok=True)
        # With the task's branch made, an agent may have worked: nothing is cleared, create refuses.
        if git.branch_exists(self.project_root, branch):
            return
        # Locked for this task of this run and on no branch: a fresh checkout, or a pooled one
        # taken for it (at `path`, or still in the pool if the kill came before the move), never
        # handed to an agent. Wherever it is, it holds no work.
        for entry in git.list_worktrees(self.project_root):
            if entry.branch is None and (entry.lock_reason or "").startswith(owner):
                log.warning("clearing %s: left half set up by an earlier attempt of the same task", entry.path)
                self.remove_fresh(Path(entry.path))

    def _roll_back(self, path: Path, branch: str, start: str) -> None:
        """Undo what a failed create made: its registration, and its branch if still at `start`."""
        repo = self.project_root
        try:
            with self._repo_lock():
                # Nothing was registered at `path` before create's check under the lock, so an
                # entry there now is ours, even when `worktree add` itself failed after making it.
                if self._entry(path) is not None:
                    self.remove_fresh(path)
                if not git.delete_branch_if_at(repo, branch, start) and git.branch_exists(repo, branch):
                    log.warning("kept branch %s after failed create: it moved from %s", branch, start)
        except OrchestratorError as exc:
            log.warning("rollback of %s incomplete: %s", path, exc)

    def remove_fresh(self, path: Path) -> None:
        """Unregister and delete a worktree that holds no work, forced: one no agent has run in, or
        a pooled one (call it under the repository lock)."""
        git.unlock_worktree(self.project_root, path)
        if path.exists():
            # --force: the files are a checkout of a commit and nothing else.
            git.remove_worktree(self.project_root, path, force=True)
        git.prune_worktrees(self.project_root)

    def reattach(self, task_id: str, branch: str, path: Path, *, lock_reason: str) -> None:
        """Make `path` the locked worktree of `branch` again, for a retry or a resumed run: reuse
        it when it is still there on that branch, otherwise check the branch out there anew."""
        path = Path(os.path.abspath(path))
        with self._repo_lock():
            entry = self._entry(path)
            if entry is not None and not path.is_dir():
                git.prune_worktrees(self.project_root)
                entry = None
            if entry is None:
                if os.path.lexists(path):
                    raise WorktreeError(f"{path} exists but is not a worktree; not reusing it for task {task_id}")
                git.add_worktree_for_branch(self.project_root, path, branch)
            elif entry.branch is None and not git.is_dirty(path):
                # Detached and clean: an attempt killed while handing its finished worktree to
                # the pool had just let go of the branch. Take it back.
                git.switch_branch(path, branch)
            elif entry.branch != branch:
                raise WorktreeError(f"{path} has {entry.branch or 'a detached HEAD'} checked out, not {branch}")
            if entry is not None and entry.locked:
                git.unlock_worktree(self.project_root, path)
            git.lock_worktree(self.project_root, path, lock_reason)
        # The previous attempt may have been killed inside a git command; its index.lock would
        # fail every git command of this one. Nobody else uses this worktree now.
        if git.clear_stale_index_lock(path):
            log.warning("removed a stale index.lock in %s", path)

    def finish(self, path: Path) -> None:
        """The task stopped running: lift the lock so the worktree can be removed or pruned."""
        git.unlock_worktree(self.project_root, Path(path))

    def remove(self, path: Path, *, force: bool = False) -> bool:
        """Remove the worktree at `path`, keeping its branch.

        Returns False (and changes nothing) when it has uncommitted or untracked changes and
        `force` is not given; True once removed. WorktreeError for a path git does not know.
        """
        repo = self.project_root
        path = Path(os.path.abspath(path))
        entry = self._entry(path)
        if entry is None:
            raise WorktreeError(f"{path} is not a registered worktree; leaving it alone")
        if os.path.realpath(entry.path) == os.path.realpath(self.project_root) or entry.bare:
            raise WorktreeError(f"{path} is the main checkout; refusing to remove it")
        if entry.prunable or not path.exists():
            with self._repo_lock():
                git.unlock_worktree(repo, path)
                git.prune_worktrees(repo)
            return True
        if not force and git.is_dirty(path):
            return False
        with self._repo_lock():
            git.unlock_worktree(repo, path)
            try:
                git.remove_worktree(repo, path, force=force)
            except GitError as exc:
                # Changes appeared since our check; git refused, so put the lock back and keep it.
                if entry.locked:
                    git.lock_worktree(repo, path, entry.lock_reason or "gadugi-orchestrator")
                if "modified or untracked" in str(exc):
                    return False
                raise WorktreeError(f"could not remove worktree {path}: {exc}") from exc
            git.prune_worktrees(repo)
        return True

    def _entry(self, path: Path) -> git.WorktreeEntry | None:
        real = os.path.realpath(path)
        for entry in git.list_worktrees(self.project_root):
            if os.path.realpath(entry.path) == real:
                return entry
        return None

    def probe(self) -> str | None:
        """None when worktrees can be created here, else a one-line reason (for the fallback)."""
        root = self.worktrees_root
        if os.path.lexists(root) and not root.is_dir():
            return f"{root} exists and is not a directory"
        head = git.rev_parse(self.project_root, "HEAD")
        if head is None:
            return "the repository has no commits yet"
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"cannot create {root}: {exc.strerror or exc}"
        if not os.access(root, os.W_OK | os.X_OK):
            return f"{root} is not writable"
        probe = root / f".probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with self._repo_lock():
                git.add_worktree(self.project_root, probe, None, head, checkout=False)
                git.remove_worktree(self.project_root, probe, force=True)
                git.prune_worktrees(self.project_root)
        except OrchestratorError as exc:
            return f"git worktree add failed in {root}: {str(exc).splitlines()[-1]}"
        except OSError as exc:
            return f"cannot use {root}: {exc.strerror or exc}"
        return None

    def orphans(self) -> list[Orphan]:
        """Worktrees under worktrees_dir whose directory is gone, and directories git does not know."""
        root = os.path.realpath(self.worktrees_root)
        found: list[Orphan] = []
        registered: set[str] = set()
        for entry in git.list_worktrees(self.project_root):
            real = os.path.realpath(entry.path)
            registered.add(real)
            inside = os.path.dirname(real) == root
            if inside and (entry.prunable or not os.path.isdir(real)):
                found.append(Orphan(path=entry.path, kind="missing", branch=entry.branch))
        if os.path.isdir(root):
            for child in sorted(Path(root).iterdir()):
                if child.is_dir() and not child.is_symlink() and str(child) not in registered:
                    found.append(Orphan(path=child, kind="unregistered"))
        return found
