"""The VS Code extension's own suite (vscode/: `npm ci && npm test`), run here so CI runs it.

Its unit tests read the files of real runs of this CLI; its in-editor test drives the packaged
extension in code-server with headless Chromium, and skips (saying why) where code-server cannot be
installed. Without npm the whole of it skips, like the real-`claude` tests.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VSCODE_DIR = Path(__file__).resolve().parent.parent / "vscode"
# Read at import, before the suite points HOME at a temp dir: code-server (~850 MB, minutes to
# install) and npm's download cache live under the real home, so only the first run pays for them.
REAL_HOME = Path(os.environ.get("HOME", str(Path.home())))
CACHE = os.environ.get("CODE_SERVER_CACHE") or str(REAL_HOME / ".cache" / "gadugi")
NPM_CACHE = os.environ.get("npm_config_cache") or str(REAL_HOME / ".npm")
STAMP = VSCODE_DIR / "node_modules" / ".gadugi-lock-sha256"


def npm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["npm", *args], cwd=VSCODE_DIR, env=env, capture_output=True, text=True)


@pytest.mark.timeout(1800)  # a cold code-server install alone takes minutes
def test_vscode_extension_suite() -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm/node not found: the VS Code extension's tests need them")
    env = dict(os.environ, ORCHESTRATOR_PYTHON=sys.executable, CODE_SERVER_CACHE=CACHE, npm_config_cache=NPM_CACHE, NO_COLOR="1")
    # `npm ci` wipes node_modules; skip it while the installed tree matches the lock file.
    lock = hashlib.sha256((VSCODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != lock:
        installed = npm("ci", "--no-audit", "--no-fund", env=env)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        STAMP.write_text(lock)
    result = npm("test", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"^# fail 0$", output, re.M), output
    skipped = re.findall(r"^ok \d+ - .*# SKIP (.*)$", output, re.M)
    if skipped:
        pytest.skip(f"unit tests passed; the in-editor test skipped: {skipped[0]}")
