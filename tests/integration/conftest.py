"""Fixtures for driving the real Claude Code CLI: the pinned install, the scripted API server, and
an environment that keeps the CLI inside a tmp HOME and on 127.0.0.1."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .anthropic_server import AnthropicServer

PROJECT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = PROJECT / "tools" / "install_claude.sh"
CLAUDE_BIN = PROJECT / ".tools" / "claude" / "node_modules" / ".bin" / "claude"
DUMMY_API_KEY = "sk-ant-api03-scripted-test-key"

# Inherited settings that would point the CLI at a real account, another config or a proxy.
_DROP_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "CLAUDECODE", "AWS_", "GOOGLE_", "VERTEX_", "OTEL_")
_DROP_EXACT = {"IS_SANDBOX", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME",
               "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
               "NO_PROXY", "no_proxy"}


def _installed_version(binary: Path) -> str | None:
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return None
    proc = subprocess.run([str(binary), "--version"], check=False, capture_output=True, text=True, timeout=60)
    return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.strip() else None


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    """The pinned real `claude`, installed on first use when npm is there."""
    missing = [tool for tool in ("npm", "node") if shutil.which(tool) is None]
    if missing and _installed_version(CLAUDE_BIN) is None:
        pytest.skip(f"npm not available: {' and '.join(missing)} not on PATH, so Claude Code cannot be installed")
    # The script reuses a matching install in a few milliseconds and installs (under a lock, so
    # parallel workers do it once) otherwise; it is also what CI runs.
    proc = subprocess.run([str(INSTALL_SCRIPT)], check=False, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"tools/install_claude.sh failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    if _installed_version(CLAUDE_BIN) is None:
        pytest.skip(f"npm not available: {proc.stderr.strip()}")
    return CLAUDE_BIN


@pytest.fixture
def claude_version(claude_cli: Path) -> str:
    version = _installed_version(claude_cli)
    assert version is not None
    return version


@pytest.fixture
def anthropic_server() -> Iterator[AnthropicServer]:
    with AnthropicServer() as server:
        yield server


@pytest.fixture
def claude_env(claude_cli: Path, anthropic_server: AnthropicServer, tmp_path: Path) -> dict[str, str]:
    """Environment for subprocesses (never applied to os.environ): the real `claude` first on PATH,
    an empty sandboxed HOME, the scripted server as the API and nothing else reachable."""
    home = tmp_path / "claude-home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_DROP_PREFIXES) and key not in _DROP_EXACT
    }
    env.update(
        {
            "HOME": str(home),
            "PATH": f"{claude_cli.parent}{os.pathsep}{env.get('PATH', '')}",
            "ANTHROPIC_BASE_URL": anthropic_server.url,
            "ANTHROPIC_API_KEY": DUMMY_API_KEY,
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            # Anything that still tries to leave the machine meets a closed local port at once.
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
        }
    )
    return env
