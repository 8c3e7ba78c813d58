#!/usr/bin/env bash
# Run the orchestrator from any directory inside the target repository:
#   run_orchestrator.sh a.md b.md   ==   orchestrator run a.md b.md
# On first use it creates a virtual environment next to this script and installs the package
# into it; later runs reuse it. Set PYTHON to choose the interpreter, GADUGI_VENV to move the venv.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
venv="${GADUGI_VENV:-$here/.venv}"
py="$venv/bin/python"

# Reinstall when pyproject.toml changed since the last install (new dependencies), not only when
# the package is missing: an old venv would otherwise fail on the first new import.
stamp="$venv/.gadugi-installed"
want="$(cksum < "$here/pyproject.toml")"
if [ ! -x "$py" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$py" -c 'import orchestrator' 2>/dev/null; then
  python="${PYTHON:-python3}"
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found: install Python 3.11 or newer" >&2
    exit 1
  fi
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Python 3.11 or newer is required ($("$python" --version 2>&1) found)" >&2
    exit 1
  fi
  echo "installing gadugi-orchestrator into $venv (first run, or pyproject.toml changed)" >&2
  "$python" -m venv "$venv"
  "$py" -m pip install --quiet --disable-pip-version-check -e "$here" >&2
  printf '%s\n' "$want" > "$stamp"
fi

exec "$py" -m orchestrator "$@"
