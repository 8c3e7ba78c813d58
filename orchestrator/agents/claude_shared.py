"""What many Claude Code agents started at once share with the user's own setup: the MCP servers
each one starts, and the login each one refreshes.

- Every `claude` process starts every MCP server the user configured (user scope in
  `~/.claude.json`, local scope under `projects[<path>]` there, project scope in `.mcp.json`):
  users report ~17 GB for five sessions. `--strict-mcp-config` without `--mcp-config` starts none;
  with `--mcp-config FILE` only the servers in FILE.
- A subscription login (`~/.claude/.credentials.json`) holds a single-use refresh token:
  concurrent sessions race to refresh it and can log each other out. `claude setup-token` then
  `CLAUDE_CODE_OAUTH_TOKEN`, or an API key, has nothing to refresh.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestrator.agents.claude_config import LOGIN_FIX, read_object, refreshing_login, user_config_file
from orchestrator.errors import InputError

MCP_INHERIT = "inherit"
MCP_NONE = "none"
# Many servers times many agents is what exhausts memory; past this, doctor and the plan say so.
MCP_PROCESS_WARNING = 8


def mcp_args(mcp: str) -> list[str]:
    """Claude Code flags for `--mcp inherit|none|FILE`."""
    if mcp == MCP_INHERIT:
        return []
    if mcp == MCP_NONE:
        return ["--strict-mcp-config"]
    return ["--mcp-config", str(Path(mcp).expanduser().resolve()), "--strict-mcp-config"]


def mcp_server_count(mcp: str, project_root: Path, env: Mapping[str, str]) -> int:
    """How many MCP servers each Claude agent will start (at least: plugins may add more).
    InputError for a FILE that is not an MCP config."""
    if mcp == MCP_NONE:
        return 0
    if mcp != MCP_INHERIT:
        path = Path(mcp).expanduser()
        if not path.is_file():
            raise InputError(f"--mcp: {mcp} is not a file (use inherit, none or an MCP config JSON file)")
        return len(read_object(path, "mcpServers"))
    names = set(read_object(project_root / ".mcp.json", "mcpServers"))
    config = user_config_file(env)
    if config is not None:
        names |= set(read_object(config, "mcpServers")) | set(read_object(config, "projects", str(project_root), "mcpServers"))
    return len(names)


def mcp_note(servers: int, parallel: int, *, only_many: bool = False) -> str | None:
    """How many MCP servers each agent starts, and whether they add up to many processes;
    `only_many` says nothing unless they do."""
    many = servers * parallel > MCP_PROCESS_WARNING
    if servers == 0 or (only_many and not many):
        return None
    line = f"each Claude agent starts {servers} MCP server(s)"
    if many:
        line += f": up to {servers * parallel} at once with {parallel} agents in parallel"
    return line + "; --mcp none starts none, --mcp FILE only those in FILE"


def shared_login_note(parallel: int, env: Mapping[str, str]) -> str | None:
    """One line when several agents will share a subscription login that refreshes its token."""
    login = refreshing_login(env) if parallel >= 2 else None
    if login is None:
        return None
    return (f"{parallel} Claude agents will share {login}, whose token refreshes can log "
            f"them out mid-run: {LOGIN_FIX}")
