"""What a remote task needs of the local repository, and how it gets there.

A worker fetches commits the shared remote already has by SHA from that remote; everything else
(an unpushed base, predecessors' result branches, a retried task's own branch, which all exist
only here) travels as git bundles. The base history is bundled once per base commit and handed
to Dask with `scatter`, so it crosses the network once per worker rather than once per task;
the small per-task bundle holds only what the task adds on top of the base.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.gitops import git
from orchestrator.gitops.bundles import create_bundle
from orchestrator.gitops.git import run_git
from orchestrator.task.wire import TaskRequest

DEFAULT_REMOTE = "origin"
_NETWORK_URL = re.compile(r"^[a-z][a-z0-9+.-]*://(?!/)|^[^/:]+@[^/:]+:")  # scheme://host or user@host:path


@dataclass
class Shipment:
    url: str | None
    need: list[str]
    from_remote: list[str]
    branch_tip: str | None
    known: list[str]
    base_bundle: Any  # a Dask future of the base bundle's bytes, or None
    delta_bundle: bytes | None


class RepoShipper:
    def __init__(self, repo: Path, client: Any, *, remote: str | None, local: bool) -> None:
        self.repo = repo
        self.client = client
        self.remote, self.url = remote_for_workers(repo, remote, same_machine=local)
        self._bases: dict[str, Any] = {}

    def prepare(self, request: TaskRequest) -> Shipment:
        repo = self.repo
        base = request.base_sha
        preds = [p.head_sha for p in request.predecessors]
        tip = git.rev_parse(repo, f"refs/heads/{request.branch}") if request.reuse_worktree else None
        wanted = [c for c in dict.fromkeys([base, *preds, tip or ""]) if c]
        from_remote = [c for c in wanted if self._on_remote(c)]
        not_remote = ["--not", f"--remotes={self.remote}"] if self.url else []
        cached = self._bases.get(base)
        if base not in self._bases or (cached is not None and cached.status != "finished"):
            # (Again) when the only workers holding it died: scattered data cannot be recomputed.
            self._bases[base] = None if base in from_remote else self._scatter(self._bundle([base], not_remote))
        extra = [c for c in wanted if c != base and c not in from_remote]
        delta = self._bundle(extra, [base, *not_remote]) if extra else None
        return Shipment(
            url=self.url, need=[base, *preds], from_remote=from_remote, branch_tip=tip,
            known=wanted, base_bundle=self._bases[base], delta_bundle=delta,
        )

    def _on_remote(self, sha: str) -> bool:
        if not self.url:
            return False
        out = run_git(self.repo, "for-each-ref", "--count=1", "--contains", sha, "--format=%(refname)",
                      f"refs/remotes/{self.remote}/")[1]
        return bool(out.strip())

    def _bundle(self, include: list[str], exclude: list[str]) -> bytes | None:
        with tempfile.TemporaryDirectory(prefix="gadugi-bundle-") as tmp:
            path = Path(tmp) / "in.bundle"
            if not create_bundle(self.repo, path, include, exclude):
                return None
            return path.read_bytes()

    def _scatter(self, data: bytes | None) -> Any:
        return None if data is None else self.client.scatter(data, hash=False)

    def close(self) -> None:
        self._bases.clear()  # dropping the futures lets the cluster forget the data


def remote_for_workers(repo: Path, name: str | None, *, same_machine: bool) -> tuple[str, str | None]:
    """The remote workers may fetch from, and its URL; no URL when there is none they can reach.

    A local path only works for workers on this machine; a remote cluster gets bundles instead."""
    remote = name or DEFAULT_REMOTE
    rc, out, _ = run_git(repo, "remote", "get-url", remote, check=False)
    url = out.strip()
    if rc != 0 or not url:
        return remote, None
    if _NETWORK_URL.match(url):
        return remote, url
    if not same_machine:
        return remote, None
    path = url.removeprefix("file://")
    return remote, path if os.path.isabs(path) else os.path.normpath(os.path.join(repo, path))
