"""Shared helpers: timing, git without a shell, generated repositories (cached), the machine."""
from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable  # the venv interpreter that imports the package under test
GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "LC_ALL": "C",
}


def git(cwd: Path, *args: str, input_bytes: bytes | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], input=input_bytes, capture_output=True,
                          env=GIT_ENV, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode(errors="replace").strip()


@contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    t0 = time.perf_counter()
    yield box
    box.append(time.perf_counter() - t0)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def make_small_repo(path: Path) -> Path:
    """A few files, one commit on `main`."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# bench\n")
    (path / "src").mkdir()
    for i in range(5):
        (path / "src" / f"m{i}.py").write_text(f"X = {i}\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def generated_repo(cache_dir: Path, files: int) -> tuple[Path, str, str]:
    """A repository of `files` small files (100 per directory) with two commits, built with
    `git fast-import` and cached; returns (path, first commit, second commit touching 20 files)."""
    repo = cache_dir / f"repo-{files}"
    marker = repo / ".git" / "bench-commits"
    if marker.exists():
        first, second = marker.read_text().split()
        return repo, first, second
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    chunks: list[bytes] = []

    def blob_file(rel: str, body: bytes) -> None:
        chunks.append(b"M 100644 inline " + rel.encode() + b"\n" + f"data {len(body)}\n".encode() + body + b"\n")

    pad = b"# padding line to give each file a realistic few hundred bytes of content\n" * 3
    stamp = int(time.time())
    chunks.append(f"commit refs/heads/main\nmark :1\ncommitter bench <b@example.com> {stamp} +0000\n"
                  "data 7\ninitial\n".encode())
    blob_file(".gitignore", b"node_modules/\nbuild/\n")
    for i in range(files):
        blob_file(f"d{i // 100:04d}/f{i:06d}.txt", f"file {i}\n".encode() + pad)
    chunks.append(f"\ncommit refs/heads/main\nmark :2\ncommitter bench <b@example.com> {stamp + 1} +0000\n"
                  "data 7\nchanges\nfrom :1\n".encode())
    for i in range(0, min(files, 20 * 37), 37):
        blob_file(f"d{i // 100:04d}/f{i:06d}.txt", f"file {i} changed\n".encode() + pad)
    chunks.append(b"\n")
    git(repo, "fast-import", "--quiet", input_bytes=b"".join(chunks))
    git(repo, "read-tree", "main")  # index of the main checkout; its files are never needed
    first = git(repo, "rev-parse", "main~1")
    second = git(repo, "rev-parse", "main")
    marker.write_text(f"{first} {second}\n")
    return repo, first, second


@dataclass
class Machine:
    rows: list[tuple[str, str]]


def describe_machine(path: Path) -> Machine:
    rows: list[tuple[str, str]] = [("nproc", str(os.cpu_count()))]
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total = next(line for line in meminfo if line.startswith("MemTotal")).split()[1]
        rows.append(("memory", f"{int(total) / 2**20:.1f} GiB"))
    except (OSError, StopIteration):
        pass
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rows.append(("cpu", cpu or platform.processor()))
    rows.append(("kernel", platform.release()))
    fs = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=False).stdout.splitlines()
    if len(fs) > 1:
        parts = fs[1].split()
        rows.append(("filesystem of the benchmark dirs", f"{parts[1]} ({parts[0]})"))
    journal = Path("/proc/fs/jbd2")
    if journal.is_dir():
        rows.append(("ext4 journals active", ", ".join(sorted(p.name for p in journal.iterdir())) or "none"))
    rows.append(("git", git(Path("/"), "--version").removeprefix("git version ")))
    rows.append(("python", platform.python_version() + f" ({sys.executable})"))
    try:
        load = os.getloadavg()
        rows.append(("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load)))
    except OSError:
        pass
    return Machine(rows)
