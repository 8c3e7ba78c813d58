"""What the validation checkpoint costs a clean task: `run_checkpoint` on a branch whose diff adds
1,000 lines (20 files of 50), with two declared outputs and three requirements, against the git
calls alone (`git diff -U0`) that it cannot avoid.

`python -m benchmarks.checkpoint [--lines 1000] [--reps 20]`; prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

FILES = 20


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_branch(root: Path, lines: int) -> tuple[Path, str]:
    """A repository whose HEAD adds `lines` lines of ordinary Python in FILES files."""
    repo = root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "bench@example.com")
    _git(repo, "config", "user.name", "bench")
    (repo / "README.md").write_text("# bench\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    start = _git(repo, "rev-parse", "HEAD").strip()
    per_file = lines // FILES
    for n in range(FILES):
        body = []
        for i in range(per_file // 5):
            body += [f"def handler_{n}_{i}(order, count=1):", f'    """Handle order {i} of file {n}."""',
                     "    total = order.price * count", "    return round(total, 2)", ""]
        path = repo / "src" / f"module_{n}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n".join(body[:per_file]) + "\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "work")
    return repo, start


def main(argv: list[str] | None = None) -> int:
    from orchestrator.task.checkpoint import CheckpointSpec, run_checkpoint, scan_placeholders

    parser = argparse.ArgumentParser(prog="python -m benchmarks.checkpoint", description=__doc__)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        repo, start = make_branch(Path(tmp), args.lines)
        added = int(_git(repo, "diff", "--shortstat", start, "HEAD").split()[3])
        spec = CheckpointSpec(placeholder_check=True, placeholder_patterns=(), prompt_text="# Task\n" * 50,
                              outputs=("src/module_0.py", "src/module_1.py"), requirements=("a", "b", "c"))
        claims = {"requirements": [{"id": f"R{i}", "status": "done", "evidence": f"src/module_{i}.py:1"}
                                   for i in (1, 2, 3)]}
        message = f"Done.\n```json\n{json.dumps(claims)}\n```\n"
        full, diff_only, scan_only = [], [], []
        diff = _git(repo, "diff", "-U0", start, "HEAD")
        for _ in range(args.reps):
            t0 = time.perf_counter()
            result = run_checkpoint(repo, start, spec, final_message=message, verify=None, fix_rounds=0)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _git(repo, "diff", "-U0", start, "HEAD")
            diff_only.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            scan_placeholders(diff, prompt_text=spec.prompt_text)
            scan_only.append(time.perf_counter() - t0)
        assert result.passed, result.findings()
    ms = [statistics.median(x) * 1000 for x in (full, diff_only, scan_only)]
    print("| added lines | checkpoint (all checks, 7 git calls) | `git diff -U0` alone | placeholder scan alone |")
    print("|---|---|---|---|")
    print(f"| {added} | {ms[0]:.1f} ms | {ms[1]:.1f} ms | {ms[2]:.1f} ms |")
    print(f"\nmedian of {args.reps}; max checkpoint {max(full) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
