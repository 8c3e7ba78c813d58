"""A Claude Code config directory per task (agents.claude_config): when it is chosen, what it holds,
and that a run with one needs no launch spacing. The real CLI's side is in
tests/integration/test_real_claude_config.py."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from orchestrator.agents.claude_config import isolate, refreshing_login, seed
from orchestrator.config.model import OrchestrationConfig
from orchestrator.errors import InputError
from orchestrator.run.coordinator import OrchestratorCoordinator

from cli_in_process import run_with_environment
from test_e2e import write_prompt


def user_home(tmp_path: Path, *, credentials: bool = False) -> Path:
    home = tmp_path / "home"
    (home / ".claude" / "agents").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text('{"model": "opus"}')
    (home / ".claude" / "agents" / "reviewer.md").write_text("# reviewer\n")
    (home / ".claude" / "plugins" / "store").mkdir(parents=True)
    (home / ".claude" / "plugins" / "installed_plugins.json").write_text("{}")
    (home / ".claude" / "projects").mkdir()
    (home / ".claude.json").write_text('{"numStartups": 3}')
    if credentials:
        (home / ".claude" / ".credentials.json").write_text('{"claudeAiOauth": {}}')
    return home


def test_a_refreshing_login_is_found_where_the_cli_keeps_it(tmp_path: Path) -> None:
    home = user_home(tmp_path, credentials=True)
    assert refreshing_login({"HOME": str(home)}, "linux") == f"the subscription login in {home}/.claude/.credentials.json"
    # A token or key in the environment is what the CLI uses first: nothing refreshes.
    assert refreshing_login({"HOME": str(home), "ANTHROPIC_API_KEY": "k"}, "linux") is None
    assert refreshing_login({"HOME": str(home), "CLAUDE_CODE_USE_BEDROCK": "1"}, "linux") is None
    # CLAUDE_CONFIG_DIR moves the credentials with everything else.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    assert refreshing_login({"HOME": str(home), "CLAUDE_CONFIG_DIR": str(moved)}, "linux") is None
    (moved / ".credentials.json").write_text("{}")
    assert refreshing_login({"HOME": str(home), "CLAUDE_CONFIG_DIR": str(moved)}, "linux") is not None


def test_on_macos_the_keychain_login_cannot_be_seen_so_only_a_stored_key_counts(tmp_path: Path) -> None:
    home = user_home(tmp_path)
    assert refreshing_login({"HOME": str(home)}, "darwin") == "a login in the macOS keychain"
    (home / ".claude.json").write_text('{"primaryApiKey": "sk-ant-x"}')
    assert refreshing_login({"HOME": str(home)}, "darwin") is None
    (home / ".claude.json").write_text("{}")
    (home / ".claude" / "settings.json").write_text('{"apiKeyHelper": "pass show anthropic"}')
    assert refreshing_login({"HOME": str(home)}, "darwin") is None


def test_a_missing_home_or_a_config_that_is_not_an_object_is_no_stored_key(tmp_path: Path) -> None:
    assert refreshing_login({}, "darwin") == "a login in the macOS keychain"
    home = user_home(tmp_path)
    (home / ".claude.json").write_text('["primaryApiKey"]')
    (home / ".claude" / "settings.json").write_text("not json")
    assert refreshing_login({"HOME": str(home)}, "darwin") == "a login in the macOS keychain"


def test_a_seed_cut_short_is_finished_by_the_next_one(tmp_path: Path) -> None:
    """Killed after the links and before `.claude.json` (the last step): the retry completes it."""
    home = user_home(tmp_path)
    target = tmp_path / "task" / "claude-config"
    (target / "plugins").mkdir(parents=True)
    (target / "settings.json").symlink_to(home / ".claude" / "settings.json")
    seed(target, {"HOME": str(home)})
    assert json.loads((target / ".claude.json").read_text()) == {"numStartups": 3}
    assert (target / "agents").readlink() == home / ".claude" / "agents"
    assert (target / "plugins" / "installed_plugins.json").readlink() == home / ".claude" / "plugins" / "installed_plugins.json"
    assert not list(target.glob("*.partial"))


@pytest.mark.skipif(sys.platform == "darwin", reason="the keychain decides there")
def test_auto_isolates_unless_a_subscription_login_would_be_copied(tmp_path: Path) -> None:
    plain = {"HOME": str(user_home(tmp_path / "a"))}
    subscribed = {"HOME": str(user_home(tmp_path / "b", credentials=True))}
    assert isolate("auto", plain) is True
    assert isolate("auto", subscribed) is False
    assert isolate("shared", plain) is False
    assert isolate("isolated", plain) is True
    with pytest.raises(InputError, match=r"^--claude-config isolated: the subscription login in .* single-use\); "
                       r"run `claude setup-token`.*or use --claude-config shared$"):
        isolate("isolated", subscribed)


def test_a_seeded_directory_links_what_the_cli_reads_and_copies_what_it_writes(tmp_path: Path) -> None:
    home = user_home(tmp_path, credentials=True)
    target = tmp_path / "task" / "claude-config"
    seed(target, {"HOME": str(home)})
    assert (target / "settings.json").readlink() == home / ".claude" / "settings.json"
    assert (target / "agents").readlink() == home / ".claude" / "agents"
    assert (target / "plugins" / "installed_plugins.json").readlink() == home / ".claude" / "plugins" / "installed_plugins.json"
    # The built-in plugin store, sessions and the login are the agent's own (or never shared).
    assert sorted(p.name for p in target.iterdir()) == [".claude.json", "agents", "plugins", "settings.json"]
    assert [p.name for p in (target / "plugins").iterdir()] == ["installed_plugins.json"]
    copy = target / ".claude.json"
    assert not copy.is_symlink() and json.loads(copy.read_text()) == {"numStartups": 3}
    # Made once: the agent's own rewrites survive a retry's seeding, the user's file is untouched.
    copy.write_text('{"numStartups": 4}')
    seed(target, {"HOME": str(home)})
    assert json.loads(copy.read_text()) == {"numStartups": 4}
    assert json.loads((home / ".claude.json").read_text()) == {"numStartups": 3}


def test_a_seed_from_a_moved_config_dir_or_from_nothing(tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / ".claude.json").write_text('{"from": "moved"}')
    (moved / "CLAUDE.md").write_text("# memory\n")
    target = tmp_path / "t1"
    seed(target, {"HOME": str(tmp_path / "nohome"), "CLAUDE_CONFIG_DIR": str(moved)})
    assert json.loads((target / ".claude.json").read_text()) == {"from": "moved"}
    assert (target / "CLAUDE.md").readlink() == moved / "CLAUDE.md"
    bare = tmp_path / "t2"
    seed(bare, {})
    assert [p.name for p in bare.iterdir()] == [".claude.json"]
    assert json.loads((bare / ".claude.json").read_text()) == {}


def test_isolated_claude_agents_start_without_spacing_and_keep_their_sessions_per_task(
    make_repo, path_with: str, tmp_path: Path
) -> None:
    repo = make_repo()
    files = [write_prompt(repo, f"{tid}.md", f"id: {tid}\n", f"# {tid}\nfake-claude: commit") for tid in ("a", "b")]
    home = user_home(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env.update(HOME=str(home), PATH=path_with)
    # A spacing of a day: the run finishes only because isolated agents are not spaced at all.
    cfg = OrchestrationConfig(max_parallel=2, env=env, launch_stagger=86400.0, min_free_memory=0, min_free_disk=0)
    result = OrchestratorCoordinator(cfg, repo).orchestrate(files)
    assert result.successful_tasks == 2, [t.error_message for t in result.tasks]
    run_dir = repo / ".gadugi" / "runs" / result.run_id
    for task in result.tasks:
        config_dir = run_dir / "tasks" / task.task_id / "claude-config"
        request = json.loads((run_dir / "tasks" / task.task_id / "request.json").read_text())
        assert request["claude_config_dir"] == str(config_dir)
        sessions = list((config_dir / ".fake-claude" / "sessions").iterdir())
        assert [p.stem for p in sessions] == [task.session_id]
    assert not (home / ".fake-claude").exists()


def test_isolated_with_a_subscription_login_is_refused_before_anything_starts(
    make_repo, path_with: str, tmp_path: Path
) -> None:
    repo = make_repo()
    write_prompt(repo, "a.md", "id: a\n", "# a\nfake-claude: commit")
    home = user_home(tmp_path, credentials=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env.update(HOME=str(home), PATH=path_with)
    proc = run_with_environment(repo, ["run", "a.md", "--claude-config", "isolated"], env)
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith("error: --claude-config isolated: the subscription login in")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (repo / ".gadugi" / "runs").exists() or not any((repo / ".gadugi" / "runs").iterdir())
