"""Git bundles: how commits travel between the orchestrator's repository and remote workers.

A bundle carries only named refs, never bare SHAs, so the commits to ship get short-lived refs
under `refs/gadugi/outgoing/` while the bundle is written. Incoming bundles are verified
(`git bundle verify`, fsck on fetch) and fetched into a scratch ref first; a branch is then only
created, or fast-forwarded, never moved sideways.
"""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from orchestrator.errors import GitError
from orchestrator.gitops import git
from orchestrator.gitops.git import run_git

OUTGOING = "refs/gadugi/outgoing"
INCOMING = "refs/gadugi/incoming"
ZERO_SHA = "0" * 40
_EMPTY = "Refusing to create empty bundle"  # matched in English: run_git sets LC_ALL=C


def has_commit(repo: Path, sha: str) -> bool:
    return run_git(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False)[0] == 0


def create_bundle(repo: Path, path: Path, include: Sequence[str], exclude: Sequence[str] = ()) -> bool:
    """Write a bundle of the commits reachable from `include` but not from `exclude`.

    Entries of `include` are commit SHAs or full ref names; `exclude` entries are rev-list
    arguments (SHAs, or `--not --remotes=origin`). Returns False, writing nothing, when that set is
    empty (git refuses empty bundles)."""
    token = secrets.token_hex(4)
    temp: list[str] = []
    heads: list[str] = []
    for n, item in enumerate(dict.fromkeys(include)):
        if item.startswith("refs/"):
            heads.append(item)
            continue
        ref = f"{OUTGOING}/{token}/{n}"
        run_git(repo, "update-ref", ref, item)
        temp.append(ref)
        heads.append(ref)
    try:
        # `^sha` entries first: a `--not` among the options would flip them back.
        excluded = [f"^{x}" for x in exclude if not x.startswith("-")] + [x for x in exclude if x.startswith("-")]
        rc, _, err = run_git(repo, "bundle", "create", "--quiet", str(path), *heads, *excluded, check=False)
        if rc != 0:
            if _EMPTY in err:
                return False
            raise GitError(f"`git bundle create` exited {rc}: {err.strip().splitlines()[-1:] or ''}")
        return True
    finally:
        for ref in temp:
            run_git(repo, "update-ref", "-d", ref, check=False)


def prerequisites(path: Path) -> list[str]:
    """Commits the bundle assumes the receiving repository already has (its `-<sha>` header lines)."""
    found: list[str] = []
    with path.open("rb") as fh:
        fh.readline()  # signature line: "# v2 git bundle"
        for raw in fh:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line:
                break
            if line.startswith("-"):
                found.append(line[1:].split(" ", 1)[0])
    return found


def verify_bundle(repo: Path, path: Path) -> None:
    """GitError unless the bundle is intact and `repo` has all its prerequisites."""
    rc, out, err = run_git(repo, "bundle", "verify", "--quiet", str(path), check=False)
    if rc != 0:
        detail = (err.strip() or out.strip()).splitlines()
        raise GitError(f"bundle {path.name} failed verification: {' '.join(detail[-3:])}")


def fetch_bundle(repo: Path, path: Path, refspecs: Sequence[str]) -> None:
    """Fetch refs out of a verified bundle, checking every object it brings."""
    run_git(repo, "-c", "fetch.fsckObjects=true", "fetch", "--quiet", "--no-write-fetch-head",
            str(path), *refspecs)


def fetch_commits(repo: Path, url: str, shas: Sequence[str]) -> None:
    """Fetch commits by SHA from a remote (protocol v2 servers and local repositories allow it)."""
    if shas:
        run_git(repo, "fetch", "--quiet", "--no-write-fetch-head", "--no-tags", url, *shas)


def adopt_branch(repo: Path, branch: str, new_sha: str) -> str | None:
    """Point `branch` at `new_sha` if it is absent or behind it; otherwise refuse, returning why.

    The compare-and-swap form of update-ref makes a concurrent change of the branch fail too."""
    ref = f"refs/heads/{branch}"
    old = git.rev_parse(repo, ref)
    if old == new_sha:
        return None
    if old is not None and not git.is_ancestor(repo, old, new_sha):
        return f"branch {branch} already exists at {old[:10]}, which {new_sha[:10]} does not continue"
    run_git(repo, "update-ref", "-m", "gadugi: task result from a worker", ref, new_sha, old or ZERO_SHA)
    return None


def delete_ref(repo: Path, ref: str) -> None:
    run_git(repo, "update-ref", "-d", ref, check=False)
