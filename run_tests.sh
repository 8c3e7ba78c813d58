#!/usr/bin/env bash
# Set up everything the test suite needs (once), then run it. Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
cd "$here"
venv="${GADUGI_VENV:-$here/.venv}"
py="$venv/bin/python"
python="${PYTHON:-python3}"

stamp="$venv/.gadugi-dev-installed"
want="$(cksum < "$here/pyproject.toml")"
if [ ! -x "$py" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$py" -c 'import orchestrator, pytest' 2>/dev/null; then
  echo "setting up $venv with the package and its test dependencies" >&2
  "$python" -m venv "$venv"
  "$py" -m pip install --quiet --disable-pip-version-check -e ".[dev]" >&2
  printf '%s\n' "$want" > "$stamp"
  # The same install is what run_orchestrator.sh needs (tests run it): it must not reinstall
  # into this venv while other tests use it.
  printf '%s\n' "$want" > "$venv/.gadugi-installed"
fi

# The real Claude Code CLI (pinned) for the integration tests, into the git-ignored .tools/;
# without npm it says so and those tests skip with that reason.
tools/install_claude.sh >&2

# Static checks first (seconds): lint, types, and the package layering.
"$venv/bin/ruff" check orchestrator tests benchmarks
"$venv/bin/mypy" orchestrator
"$venv/bin/lint-imports" --no-cache >/dev/null || "$venv/bin/lint-imports" --no-cache

# The suite starts a few hundred Python processes that import the package, and each pytest worker
# compiles (and rewrites the asserts of) every test module. Without bytecode caches each of them
# compiles again: ~25 CPU-s of a ~330 CPU-s run, measured with PYTHONDONTWRITEBYTECODE=1. The caches
# go to __pycache__/ directories, which git ignores.
unset PYTHONDONTWRITEBYTECODE
exec "$py" -m pytest -n 2 "$@"
