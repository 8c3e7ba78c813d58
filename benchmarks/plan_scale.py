"""`python -m benchmarks.plan_scale [--repeat N]`: planning time and conflict edges where many
prompts share scopes (not part of `python -m benchmarks`, whose batch table has the first two rows).

Shapes (benchmarks/batch.py): `all-share-one-file` (every prompt names src/shared.py), `scopes`
(two of 50 files in 5 directories per prompt, every 10th a directory glob, every 50th a whole
directory, every 7th depends on the one before) and `mixed` (every 10th prompt shares a file).
Each measurement is a fresh process: `git ls-files` + `TaskAnalyzer.analyze` + `plan_names`;
the table shows the median of the repeats, wall and this process's CPU time (which a shared,
loaded machine moves less). Floor: the 0.5 s target for 1000 prompts on one file.
"""
from __future__ import annotations

import argparse
import sys

from benchmarks.batch import run_planning
from benchmarks.common import median

CASES = [(1000, "all-share-one-file"), (200, "scopes"), (1000, "scopes"), (1000, "mixed")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_scale")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is shown")
    args = parser.parse_args(argv)
    print("| prompts | shape | planning (median) | CPU (median) | runs (s) | edges | conflict edges |\n"
          "|---|---|---|---|---|---|---|")
    for n, shape in CASES:
        runs = [run_planning([n], [shape], 0)[0] for _ in range(args.repeat)]
        seconds = [r.seconds or 0.0 for r in runs]
        cpu = median([r.cpu_seconds or 0.0 for r in runs])
        samples = ", ".join(f"{s:.3f}" for s in seconds)
        print(f"| {n} | {shape} | {median(seconds):.3f} s | {cpu:.3f} s | {samples} | {runs[0].edges} | "
              f"{runs[0].conflict_edges} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
