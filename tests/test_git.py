from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from orchestrator.errors import GitError, InputError
from orchestrator.gitops import git

MakeRepo = Callable[..., Path]


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit_file(repo: Path, name: str, content: str, message: str = "change") -> str:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(content)
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", message)
    return sh(repo, "rev-parse", "HEAD")


def test_no_git_env_keeps_only_allowlist() -> None:
    env = git.no_git_env(
        {
            "PATH": "/bin",
            "GIT_DIR": "/x",
            "GIT_INDEX_FILE": "/y",
            "GIT_WORK_TREE": "/z",
            "GIT_AUTHOR_NAME": "a",
            "GIT_COMMITTER_EMAIL": "c@d",
            "GIT_SSH_COMMAND": "ssh -i k",
            "GIT_TRACE2_EVENT": "/t",
            "GIT_CONFIG_GLOBAL": "/dev/null",
        }
    )
    assert env == {
        "PATH": "/bin",
        "GIT_AUTHOR_NAME": "a",
        "GIT_COMMITTER_EMAIL": "c@d",
        "GIT_SSH_COMMAND": "ssh -i k",
        "GIT_TRACE2_EVENT": "/t",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }


def test_toplevel_and_errors(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo({"a/b.txt": "x\n"})
    assert git.toplevel(repo / "a") == repo.resolve()
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InputError, match="not a git repository"):
        git.toplevel(plain)
    with pytest.raises(InputError, match="not a git repository"):
        git.toplevel(tmp_path / "missing")
    bare = tmp_path / "bare.git"
    sh(tmp_path, "init", "-q", "--bare", str(bare))
    with pytest.raises(InputError, match="bare repository"):
        git.toplevel(bare)
    assert git.git_common_dir(repo) == (repo / ".git").resolve()
    # Answers are kept per process, refusals are not: a directory that becomes a repository is one.
    sh(plain, "init", "-q")
    assert git.toplevel(plain) == plain.resolve()
    missing = tmp_path / "missing"
    missing.mkdir()
    sh(missing, "init", "-q")
    assert git.toplevel(missing) == missing.resolve()


def test_rev_parse_and_commits(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    head = sh(repo, "rev-parse", "HEAD")
    assert git.rev_parse(repo, "main") == head
    assert git.rev_parse(repo, "nope") is None
    assert git.rev_parse(repo, "-rf") is None
    assert git.rev_parse(repo, "HEAD^{tree}") is None
    sh(repo, "tag", "-a", "-m", "annotated", "v1")
    assert git.rev_parse(repo, "v1") == head
    assert git.has_commits(repo)
    empty = tmp_path / "empty"
    sh(tmp_path, "init", "-q", str(empty))
    assert not git.has_commits(empty)
    assert git.head_sha(repo) == head
    with pytest.raises(GitError):
        git.head_sha(empty)
    assert git.current_branch(repo) == "main"
    sh(repo, "checkout", "-q", "--detach")
    assert git.current_branch(repo) is None


def test_ls_files_and_branches(make_repo: MakeRepo) -> None:
    repo = make_repo({"a b.txt": "1", "ü/ñ.txt": "2", 'q"uote.txt': "3", "nl\nname": "4"})
    assert sorted(git.ls_files(repo)) == sorted(["a b.txt", "ü/ñ.txt", 'q"uote.txt', "nl\nname"])
    sh(repo, "branch", "feature/x")
    assert git.list_branches(repo) == {"main", "feature/x"}
    assert git.branch_exists(repo, "feature/x")
    assert not git.branch_exists(repo, "feature")


@pytest.mark.parametrize(
    ("name", "ok"),
    [("gadugi/task-1", True), ("a..b", False), ("x.lock", False), ("-x", False), ("a b", False), ("a/", False)],
)
def test_check_ref_format_branch(name: str, ok: bool) -> None:
    assert git.check_ref_format_branch(name) is ok


def test_status_paths_and_dirty(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.txt": "a\n", "old.txt": "o\n"})
    assert not git.is_dirty(repo)
    (repo / "a.txt").write_text("changed\n")
    (repo / "new dir").mkdir()
    (repo / "new dir" / "ü.txt").write_text("n\n")
    sh(repo, "mv", "old.txt", "renamed.txt")
    assert sorted(git.status_paths(repo)) == ["a.txt", "new dir/ü.txt", "renamed.txt"]
    assert git.is_dirty(repo)


def test_worktree_add_lock_list_remove(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo = make_repo()
    head = sh(repo, "rev-parse", "HEAD")
    wt = tmp_path / "wt one"
    git.add_worktree(repo, wt, "feat/one", head, checkout=False)
    assert not (wt / "README.md").exists()
    git.checkout_worktree(wt)
    assert (wt / "README.md").read_text() == "# demo\n"
    assert not git.is_dirty(wt)
    git.lock_worktree(repo, wt, "gadugi run=r1 pid=42")
    entries = {e.path: e for e in git.list_worktrees(repo)}
    entry = entries[wt]
    assert entry.branch == "feat/one" and entry.head == head and entry.locked
    assert entry.lock_reason == "gadugi run=r1 pid=42"
    assert entries[repo.resolve()].branch == "main"
    assert git.unlock_worktree(repo, wt) is True
    assert git.unlock_worktree(repo, wt) is False
    # No upstream was configured for the new branch.
    assert "branch.feat/one" not in (repo / ".git" / "config").read_text()
    (wt / "dirt.txt").write_text("x")
    with pytest.raises(GitError):
        git.remove_worktree(repo, wt)
    git.remove_worktree(repo, wt, force=True)
    assert not wt.exists()
    assert git.branch_exists(repo, "feat/one")

    gone = tmp_path / "gone"
    git.add_worktree(repo, gone, None, head, checkout=False)
    subprocess.run(["rm", "-rf", str(gone)], check=True)
    detached = [e for e in git.list_worktrees(repo) if e.path == gone][0]
    assert detached.detached and detached.prunable and detached.branch is None
    git.prune_worktrees(repo)
    assert [e.path for e in git.list_worktrees(repo)] == [repo.resolve()]


def test_commit_all_and_history(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.txt": "1\n2\n3\n"})
    base = sh(repo, "rev-parse", "HEAD")
    assert git.commit_all(repo, "nothing") is None
    (repo / "a.txt").write_text("1\nTWO\n3\n4\n")
    (repo / "bin.dat").write_bytes(b"\x00\x01\x02")
    (repo / "sp ace.txt").write_text("x\n")
    sha = git.commit_all(repo, "agent work")
    assert sha is not None and sha == sh(repo, "rev-parse", "HEAD")
    assert not git.is_dirty(repo)
    second = commit_file(repo, "c.txt", "c\n")
    assert git.commits_between(repo, base, second) == [sha, second]
    files, ins, dels = git.diffstat(repo, base, sha)
    assert sorted(files) == ["a.txt", "bin.dat", "sp ace.txt"]
    assert (ins, dels) == (3, 1)
    sh(repo, "mv", "c.txt", "d.txt")
    moved = git.commit_all(repo, "rename")
    assert moved is not None
    assert git.diffstat(repo, second, moved) == (["d.txt"], 0, 0)


def test_commit_all_skips_hooks(make_repo: MakeRepo) -> None:
    repo = make_repo()
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    (repo / "x.txt").write_text("x")
    assert git.commit_all(repo, "work") is not None


def test_commit_all_without_identity(make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo()
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("EMAIL", "")
    (repo / "x.txt").write_text("x")
    sha = git.commit_all(repo, "work")
    assert sha is not None
    author = sh(repo, "log", "-1", "--format=%an <%ae>")
    assert author == f"{git.FALLBACK_NAME} <{git.FALLBACK_EMAIL}>"


def test_commit_all_respects_configured_identity(make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo()
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    sh(repo, "config", "user.name", "Repo User")
    sh(repo, "config", "user.email", "repo@example.com")
    (repo / "x.txt").write_text("x")
    assert git.commit_all(repo, "work") is not None
    assert sh(repo, "log", "-1", "--format=%an <%ae>") == "Repo User <repo@example.com>"


def test_merge_tree_and_commit_tree(make_repo: MakeRepo) -> None:
    repo = make_repo({"shared.txt": "base\n", "other.txt": "o\n"})
    base = sh(repo, "rev-parse", "HEAD")
    sh(repo, "switch", "-q", "-c", "a")
    a = commit_file(repo, "a.txt", "a\n")
    sh(repo, "switch", "-q", "-c", "b", base)
    b = commit_file(repo, "b.txt", "b\n")
    sh(repo, "switch", "-q", "-c", "c", base)
    c = commit_file(repo, "a.txt", "conflicting\n")
    refs_before = sh(repo, "for-each-ref")

    clean = git.merge_tree(repo, a, b)
    assert clean.clean and clean.conflicted_files == ()
    merged = git.commit_tree(repo, clean.tree, [a, b], "merge a b")
    assert sh(repo, "rev-list", "--parents", "-1", merged).split() == [merged, a, b]
    assert sorted(sh(repo, "ls-tree", "--name-only", merged).split()) == ["a.txt", "b.txt", "other.txt", "shared.txt"]

    conflict = git.merge_tree(repo, a, c)
    assert not conflict.clean and conflict.conflicted_files == ("a.txt",)
    assert sh(repo, "for-each-ref") == refs_before
    assert git.is_ancestor(repo, base, a) and not git.is_ancestor(repo, a, b)
    assert git.independent_commits(repo, [base, a, b, a]) == [a, b]


def test_switch_branches(make_repo: MakeRepo) -> None:
    repo = make_repo()
    head = sh(repo, "rev-parse", "HEAD")
    git.switch_new_branch(repo, "gadugi/seq", head)
    assert git.current_branch(repo) == "gadugi/seq"
    git.switch_branch(repo, "main")
    assert git.current_branch(repo) == "main"
    with pytest.raises(GitError):
        git.switch_branch(repo, "does-not-exist")


def test_plumbing_verbs_of_merge_and_pool(make_repo: MakeRepo) -> None:
    repo = make_repo({"keep/x.txt": "x\n", ".gitignore": "*.log\nnode_modules/\n"})
    base = sh(repo, "rev-parse", "HEAD")
    sh(repo, "mv", "keep/x.txt", "keep/y.txt")
    head = commit_file(repo, "new.txt", "n\n")
    assert git.changed_files(repo, base, head) == {"keep/x.txt", "keep/y.txt", "new.txt"}
    assert git.tree_of(repo, head) == sh(repo, "rev-parse", "HEAD^{tree}")

    git.create_branch(repo, "made", base, reflog_message="test")
    assert git.rev_parse(repo, "refs/heads/made") == base
    with pytest.raises(GitError, match="could not create branch 'made'"):
        git.create_branch(repo, "made", head, reflog_message="test")  # never moves an existing branch
    assert git.rev_parse(repo, "refs/heads/made") == base

    (repo / "node_modules").mkdir()
    (repo / "node_modules" / "dep.js").write_text("d\n")
    (repo / "debug.log").write_text("l\n")
    (repo / "stray.txt").write_text("s\n")
    assert sorted(git.ignored_files(repo)) == ["debug.log", "node_modules/dep.js"]
    git.clean_untracked(repo, ignored=True, keep=["node_modules"])
    assert sorted(p.name for p in repo.iterdir()) == [".git", ".gitignore", "keep", "new.txt", "node_modules"]
    git.reset_hard(repo, base)
    assert (repo / "keep" / "x.txt").exists() and not (repo / "new.txt").exists()
    git.set_orig_head(repo, head)
    assert git.rev_parse(repo, "ORIG_HEAD") == head


def test_info_exclude_add_is_idempotent(make_repo: MakeRepo) -> None:
    repo = make_repo()
    exclude = repo / ".git" / "info" / "exclude"
    exclude.write_text("# comment\n*.tmp")  # no trailing newline
    assert git.info_exclude_add(repo, ["/.worktrees/", "*.tmp", "/.gadugi/runs/"]) == [
        "/.worktrees/",
        "/.gadugi/runs/",
    ]
    assert git.info_exclude_add(repo, ["/.worktrees/", "/.gadugi/runs/"]) == []
    assert exclude.read_text() == "# comment\n*.tmp\n/.worktrees/\n/.gadugi/runs/\n"


def test_inherited_git_env_does_not_leak(make_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    repo = make_repo({"real.txt": "r\n"})
    decoy = make_repo({"decoy.txt": "d\n"}, name="decoy")
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(decoy))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "bogus-index"))
    assert git.toplevel(repo) == repo.resolve()
    assert git.ls_files(repo) == ["real.txt"]
    assert git.run_git(repo, "ls-files")[1].split() == ["real.txt"]  # the plumbing runner scrubs them too
    (repo / "new.txt").write_text("n\n")
    sha = git.commit_all(repo, "work")
    assert sha is not None
    assert not (tmp_path / "bogus-index").exists()
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert sh(repo, "log", "-1", "--format=%s") == "work"
    assert sh(decoy, "log", "-1", "--format=%s") == "initial"


def test_worktree_list_waits_out_a_worktree_being_made(make_repo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Another git process writing a worktree's admin files makes `worktree list` fail for a moment
    ('failed to read .../commondir'); that is retried like a held lock, not a failure."""
    from orchestrator import cmd
    from orchestrator.gitops import git as gitmod

    repo = make_repo()
    real = gitmod.run_cmd
    calls: list[list[str]] = []

    def half_made_once(argv, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(argv))
        if len(calls) == 1:
            raise cmd.CommandError(argv, 128, "", "fatal: failed to read .git/worktrees/t03/commondir: Success")
        return real(argv, **kwargs)

    monkeypatch.setattr(gitmod, "run_cmd", half_made_once)
    entries = gitmod.list_worktrees(repo)
    assert len(calls) == 2 and [e.path for e in entries] == [repo]


def test_relock_changes_the_reason_and_a_move_keeps_the_lock(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    sh(tmp_path, "init", "-q", str(repo))
    sh(repo, "commit", "-q", "--allow-empty", "-m", "c")
    wt = tmp_path / "wt"
    sh(repo, "worktree", "add", "-q", "--detach", "--lock", "--reason", "first owner", str(wt))
    git.relock_worktree(wt, "second owner")
    moved = tmp_path / "moved"
    git.move_worktree(repo, wt, moved)
    [_, entry] = git.list_worktrees(repo)
    assert (entry.path, entry.locked, entry.lock_reason) == (moved, True, "second owner")
    # The file as `git worktree lock` writes it, so git's unlock and lock work on it as usual.
    assert git.unlock_worktree(repo, moved) is True
    git.lock_worktree(repo, moved, "third")
    assert git.list_worktrees(repo)[1].lock_reason == "third"


def test_admin_dirs_read_from_dot_git_are_what_git_answers(tmp_path: Path) -> None:
    """git_dir and git_common_dir read `.git` where they can; the answers must be git's own, for
    a main checkout, a linked worktree (absolute or relative `gitdir:`), through a symlink, and
    from where git must be asked (a subdirectory, a bare repository)."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    repo = tmp_path / "link" / "r"
    sh(tmp_path, "init", "-q", str(repo))
    sh(repo, "commit", "-q", "--allow-empty", "-m", "c")
    (repo / "sub").mkdir()
    linked, relative = tmp_path / "link" / "wt", tmp_path / "link" / "rel"
    sh(repo, "worktree", "add", "-q", "--detach", str(linked))
    sh(repo, "worktree", "add", "-q", "--detach", str(relative))
    target = (relative / ".git").read_text().split(":", 1)[1].strip()
    (relative / ".git").write_text(f"gitdir: {os.path.relpath(target, os.path.realpath(relative))}\n")
    bare = tmp_path / "bare.git"
    sh(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    for place in (repo, repo / "sub", linked, relative, bare):
        asked = sh(place, "rev-parse", "--absolute-git-dir")
        assert git.git_dir(place) == Path(asked), place
        common = sh(place, "rev-parse", "--path-format=absolute", "--git-common-dir")
        assert git.git_common_dir(place) == Path(common), place
