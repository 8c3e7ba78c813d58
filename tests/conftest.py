"""Shared fixtures: real git repositories in tmp dirs, a fake `claude` on PATH, and guards that
fail a test which leaks into the real HOME, a real `.gadugi` or the process environment."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from orchestrator.backends.launcher import Launcher
from orchestrator.proctree import create_time_of, is_alive

TESTS_DIR = Path(__file__).resolve().parent
FAKE_CLAUDE = TESTS_DIR / "fake_claude.py"

# Git identity and config isolation for every git the tests (and the code under test) run.
os.environ.update(
    {
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "NO_COLOR": "1",
    }
)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(autouse=True, scope="session")
def _sigint_not_ignored() -> Iterator[None]:
    """A suite started in the background (`cmd &` in a script, as CI may) inherits SIGINT ignored,
    and so would every process a test starts: Ctrl-C tests would test nothing. A handler here
    (not an ignore) is reset to the default in each child at exec."""
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True, scope="session")
def _sandbox_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """HOME points at an empty tmp dir so nothing touches the developer's real home."""
    home = tmp_path_factory.mktemp("home")
    real = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    yield
    if real is not None:
        os.environ["HOME"] = real


@pytest.fixture(autouse=True)
def _environ_unchanged() -> Iterator[None]:
    # pytest itself rewrites PYTEST_CURRENT_TEST between setup and teardown.
    before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    yield
    after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    assert after == before, f"test changed os.environ: {set(after.items()) ^ set(before.items())}"


@pytest.fixture(autouse=True)
def _no_real_gadugi_state() -> Iterator[None]:
    """No test may write runtime state into the project checkout itself."""
    project = TESTS_DIR.parent
    marker = project / ".gadugi" / "runs"
    before = set(marker.iterdir()) if marker.exists() else set()
    yield
    after = set(marker.iterdir()) if marker.exists() else set()
    assert after == before, f"test wrote run state into the project checkout: {after - before}"


class _SharedLauncher:
    """One launcher per pytest worker, lent to every run the test process makes itself.

    A run starts its own launcher, which pays the WorkflowManager's imports (~0.3 s of CPU) so
    that its tasks do not; over a suite of many short in-process runs that is most of what the
    launchers cost. A launcher keeps nothing of a run: each fork gets the task's environment,
    working directory and descriptors in its request. So the runs this process makes borrow one,
    whose `close` keeps it for the next; runs in their own process (signals, kill -9) and traced
    runs start theirs as usual, and a test about the launcher itself opts out with
    `@pytest.mark.own_launcher`. If the shared one dies, the next test gets a new one.
    """

    def __init__(self) -> None:
        self.launcher: Launcher | None = None
        self.created = 0.0

    def get(self) -> Launcher | None:
        if self.launcher is None or not is_alive(self.launcher.pid, self.created):
            self.close()
            self.launcher = _REAL_LAUNCHER_START(sys.executable, os.environ)
            self.created = 0.0 if self.launcher is None else create_time_of(self.launcher.pid) or 0.0
        return self.launcher

    def close(self) -> None:
        if self.launcher is not None:
            self.launcher.close()
            self.launcher = None


class _Borrowed(Launcher):
    """The shared launcher, lent to one run: closing it gives it back."""

    def __init__(self, shared: Launcher) -> None:  # noqa: D107 - shares the lender's state
        self.__dict__ = shared.__dict__

    def close(self) -> None:
        pass


_REAL_LAUNCHER_START = Launcher.start


@pytest.fixture(scope="session")
def _shared_launcher() -> Iterator[_SharedLauncher]:
    shared = _SharedLauncher()
    yield shared
    shared.close()


@pytest.fixture(autouse=True)
def _borrowed_launcher(request: pytest.FixtureRequest, _shared_launcher: _SharedLauncher) -> Iterator[None]:
    if request.node.get_closest_marker("own_launcher"):
        yield
        return

    def start(python: str, env: Mapping[str, str], *, home: Path | None = None,
              traced: bool = False) -> Launcher | None:
        if traced or python != sys.executable:
            return _REAL_LAUNCHER_START(python, env, home=home, traced=traced)
        shared = _shared_launcher.get()
        return None if shared is None else _Borrowed(shared)

    # Not through `monkeypatch`: this fixture would then set that up before the test's own, and
    # the test's environment changes would be undone only after _environ_unchanged checks them.
    original = Launcher.__dict__["start"]
    Launcher.start = staticmethod(start)  # type: ignore[method-assign]
    try:
        yield
    finally:
        Launcher.start = original  # type: ignore[method-assign]


MakeRepo = Callable[..., Path]


def build_repo(repo: Path, files: dict[str, str] | None = None, *, branch: str = "main") -> Path:
    """A git repository at `repo` holding {path: content}, committed on `branch`."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", branch)
    for rel, content in (files or {"README.md": "# demo\n"}).items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Build a git repository from a dict of {path: content}, committed on branch `main`."""
    counter = {"n": 0}

    def _make(files: dict[str, str] | None = None, *, name: str | None = None, branch: str = "main") -> Path:
        counter["n"] += 1
        return build_repo(tmp_path / (name or f"repo{counter['n']}"), files, branch=branch)

    return _make


def fake_claude_dir(bindir: Path) -> Path:
    """`bindir`, made to hold an executable `claude` that runs tests/fake_claude.py."""
    bindir.mkdir()
    shim = bindir / "claude"
    shim.write_text(f"#!/bin/sh\nexec {shlex_quote(sys.executable)} {shlex_quote(str(FAKE_CLAUDE))} \"$@\"\n")
    shim.chmod(0o755)
    return bindir


@pytest.fixture
def fake_claude_bin(tmp_path: Path) -> Path:
    """A directory holding an executable `claude` that runs tests/fake_claude.py."""
    return fake_claude_dir(tmp_path / "fakebin")


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def path_with_fake_claude(bindir: Path) -> str:
    """A PATH with `bindir` (see fake_claude_dir) first."""
    return f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture
def path_with(fake_claude_bin: Path) -> str:
    """A PATH with the fake `claude` first, for passing explicitly to code under test."""
    return path_with_fake_claude(fake_claude_bin)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


# A wait is for an event (a file, a line, a process gone); this bound only keeps a broken test
# from hanging, so it is generous enough for a machine running the suite on every core.
HANG_GUARD = 180.0
POLL = 0.02


def wait_until(predicate: Callable[[], object], what: str = "condition", timeout: float = HANG_GUARD) -> None:
    """Return once `predicate()` is true; fail naming `what` if it never becomes so."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached"
        time.sleep(POLL)


# The longest tests, by measured wall time (mean per test, longest first), go first. With
# `--dist worksteal` each worker starts on half of the collected list and an idle one takes from
# the end of the other's, so whatever ends a half is what a worker may be left running alone at
# the end of the suite: that must be the quick unit tests, not a run of multi-second kill and
# resume tests (three of those ending one half left the other worker idle for 6 s).
_LONGEST_FIRST = (
    "tests/test_vscode_extension.py",
    "tests/test_torture.py",
    "tests/test_dask_backend.py",
    "tests/integration/",
    "tests/test_cli.py::test_every_module_imports_alone",
    "tests/test_dead_run.py",
    "tests/test_tracing.py",
    "tests/test_resume.py",
    "tests/test_reliability.py",
    "tests/test_maintenance.py",
    "tests/test_launcher.py",
    "tests/test_schema.py",
    "tests/test_e2e.py",
    "tests/test_notify.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid
        return next((i for i, prefix in enumerate(_LONGEST_FIRST) if path.startswith(prefix)), len(_LONGEST_FIRST))

    items.sort(key=rank)  # stable: the order within each group is kept
