#!/usr/bin/env bash
# Mutation score of one module against the tests that exercise it, in process (mutmut 3).
#
#   tools/mutation.sh orchestrator/plan/scopes.py tests/test_scopes.py
#
# Works in a scratch copy (default /tmp/gadugi-mutation/<module>): the [mutmut] config and the
# mutants/ tree never touch the checkout. Needs mutmut in .venv (`.venv/bin/pip install mutmut`).
# Prints the counts and the score; the full list is in <scratch>/results.txt, and
# `cd <scratch> && ../.venv/bin/mutmut show NAME` (or the absolute path) shows one mutant.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 MODULE.py TEST_FILE..." >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
module=$1
shift
mutmut="$root/.venv/bin/mutmut"
[ -x "$mutmut" ] || { echo "no $mutmut: run ./run_tests.sh once, then .venv/bin/pip install mutmut" >&2; exit 1; }
scratch="${MUTATION_DIR:-/tmp/gadugi-mutation}/$(basename "$module" .py)"
rm -rf "$scratch"
mkdir -p "$scratch"
cp -r "$root/orchestrator" "$root/tests" "$root/benchmarks" "$root/pyproject.toml" "$scratch/"
find "$scratch" -name __pycache__ -prune -exec rm -rf {} +

# mutmut runs the suite twice in one process (a clean run, then one recording which tests call
# which function): a memoised function, such as scopes.glob_to_regex, would hide its callees
# from the second. Every test starts with cold caches here.
cat >> "$scratch/tests/conftest.py" <<'PY'


@pytest.fixture(autouse=True)
def _cold_caches_for_mutation_testing() -> None:
    import functools
    import gc

    for obj in gc.get_objects():
        if isinstance(obj, functools._lru_cache_wrapper) and getattr(obj, "__module__", "").startswith("orchestrator"):
            obj.cache_clear()
PY

{
  echo "[mutmut]"
  echo "source_paths = orchestrator/"
  echo "only_mutate = $module"
  # forkserver: each mutant runs in a fork of a process that only collected the tests.
  echo "process_isolation = forkserver"
  echo "pytest_add_cli_args = -p no:cacheprovider -n 0 -q"
  echo "pytest_add_cli_args_test_selection ="
  printf '    %s\n' "$@"
  echo "also_copy ="
  echo "    tests/"
  echo "    benchmarks/"
} > "$scratch/setup.cfg"

cd "$scratch"
# Its progress display is one endless line: kept in a file, not printed.
"$mutmut" run > run.log 2>&1 || { tail -c 2000 run.log >&2; exit 1; }
"$mutmut" results --all true > results.txt 2>&1
python3 - <<'PY'
import collections
import re

counts = collections.Counter(m.group(1) for line in open("results.txt") if (m := re.search(r": (\w[\w ]*)$", line)))
total = sum(counts.values())
print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), f"| score {counts['killed']}/{total}",
      f"= {100 * counts['killed'] / max(total, 1):.1f} %")
PY
echo "survivors: grep -v killed $scratch/results.txt"
