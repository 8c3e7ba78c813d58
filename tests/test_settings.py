"""Settings: CLI > env > file > default for every run option, with the source of each value."""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from orchestrator.cli.commands import config as config_cmd
from orchestrator.config.model import OrchestrationConfig
from orchestrator.config.settings import SETTINGS, resolve_settings
from orchestrator.errors import InputError


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_defaults_match_orchestration_config(tmp_path: Path) -> None:
    settings = resolve_settings(tmp_path, {}, {})
    assert {r.source for r in settings.values.values()} == {"default"}
    kwargs = settings.config_kwargs()
    known = {k: v for k, v in kwargs.items() if k in OrchestrationConfig.model_fields}
    default = OrchestrationConfig()
    for field, value in known.items():
        assert getattr(default, field) == value, field
    assert set(kwargs) - set(OrchestrationConfig.model_fields) <= {"setup", "teardown", "port_range", "worktree_include"}


def test_precedence_cli_env_file_default(tmp_path: Path) -> None:
    write(tmp_path / ".gadugi/config.toml",
          'max_parallel = 2\ntimeout = "30m"\nmodel = "file-model"\nallowed_tools = ["Read", "Edit"]\n'
          'port_range = [9000, 9010]\nsetup = "make deps"\n')
    env = {"GADUGI_MAX_PARALLEL": "3", "GADUGI_TIMEOUT": "45m", "GADUGI_ALLOWED_TOOLS": "Bash, Write",
           "GADUGI_WORKTREE": "/elsewhere"}  # hook variables are not settings: ignored
    settings = resolve_settings(tmp_path, {"max_parallel": "5", "dry_run": True}, env)
    got = {k: (r.value, r.source) for k, r in settings.values.items()}
    assert got["max_parallel"] == (5, "cli")
    assert got["timeout"] == (2700.0, "env:GADUGI_TIMEOUT")
    assert got["allowed_tools"] == (["Bash", "Write"], "env:GADUGI_ALLOWED_TOOLS")
    assert got["model"] == ("file-model", "file:.gadugi/config.toml")
    assert got["port_range"] == ((9000, 9010), "file:.gadugi/config.toml")
    assert got["setup"] == ("make deps", "file:.gadugi/config.toml")
    assert got["verify"] == (None, "default")


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_every_option_from_every_source(tmp_path: Path, setting) -> None:
    samples = {
        "max_parallel": ("3", 3), "timeout": ("90s", 90.0), "base": ("dev", "dev"),
        "monitoring_dir": ("mon", "mon"), "fallback": ("false", False), "worktree_cleanup": ("keep", "keep"),
        "worktrees_dir": ("wt", "wt"), "branch_prefix": ("x/", "x/"), "agent": ("codex", "codex"),
        "agent_cmd": ("tool {prompt_file}", "tool {prompt_file}"), "agent_args": ("a,b", ["a", "b"]),
        "model": ("m", "m"), "max_turns": ("7", 7), "permission_mode": ("plan", "plan"),
        "allowed_tools": ("Read", ["Read"]), "verify": ("make test", "make test"),
        "interrupt_timeout": ("2", 2.0), "terminate_timeout": ("1m", 60.0), "setup": ("npm ci", "npm ci"),
        "teardown": ("make clean", "make clean"), "port_range": ("8000-8009", (8000, 8009)),
        "worktree_include": (".includes", ".includes"), "retries": ("0", 0), "run_timeout": ("2h", 7200.0),
        "stall_timeout": ("off", None), "launch_stagger": ("0", 0.0), "min_free_memory": ("1G", 2**30),
        "min_free_disk": ("2G", 2 * 2**30), "retry_backoff": ("1", 1.0), "retry_backoff_cap": ("1m", 60.0),
        "log_format": ("json", "json"), "notify_cmd": ("echo hi", "echo hi"),
        "notify_url": ("http://127.0.0.1:9/x", "http://127.0.0.1:9/x"), "metrics_file": ("m.prom", "m.prom"),
        "breaker_threshold": ("5", 5), "max_budget_usd": ("$2.50", 2.5), "run_budget_usd": ("10", 10.0),
        "context": ("ctx.md", "ctx.md"), "backend": ("dask-local", "dask-local"),
        "worktree_pool": ("0", 0), "sparse": ("true", True),
        "fix_rounds": ("0", 0), "placeholder_check": ("false", False),
        "placeholder_patterns": ("HACK", ["HACK"]),
        "trust_project": ("true", True), "mcp": ("none", "none"), "sandbox": ("off", "off"),
        "claude_config": ("shared", "shared"),
        "sandbox_write": ("~/.cache/pip", ["~/.cache/pip"]),
        "allowed_domains": ("pypi.org,files.pythonhosted.org", ["pypi.org", "files.pythonhosted.org"]),
        "scheduler": ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"), "otel": ("true", True),
    }
    text, expected = samples[setting.key]
    assert resolve_settings(tmp_path, {}, {setting.env: text}).values[setting.key].value == expected
    write(tmp_path / ".gadugi/config.toml", f"{setting.key} = {json.dumps(text)}\n")
    resolved = resolve_settings(tmp_path, {}, {})
    assert (resolved[setting.key], resolved.values[setting.key].source) == (expected, "file:.gadugi/config.toml")


def test_pyproject_tool_table_and_config_file_wins(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.gadugi]\nmodel = "py"\nverify = "pytest"\n')
    assert resolve_settings(tmp_path, {}, {}).values["model"].source == "file:pyproject.toml"
    write(tmp_path / ".gadugi/config.toml", 'model = "cfg"\nworktree_include = false\n')
    settings = resolve_settings(tmp_path, {}, {})
    assert (settings["model"], settings["verify"], settings["worktree_include"]) == ("cfg", "pytest", None)


def test_cli_aliases_and_typed_values(tmp_path: Path) -> None:
    settings = resolve_settings(tmp_path, {"base": "main", "fallback": False, "max_turns": 4,
                                           "allowed_tools": ("Read", "Edit"), "max_parallel": "auto"}, {})
    assert settings["base"] == "main" and settings["fallback"] is False and settings["max_turns"] == 4
    assert settings["allowed_tools"] == ["Read", "Edit"] and settings["max_parallel"] == "auto"
    kwargs = settings.config_kwargs()
    assert kwargs["base_ref"] == "main" and kwargs["fallback_to_sequential"] is False
    assert isinstance(kwargs["max_parallel"], int) and kwargs["max_parallel"] >= 1


def test_unknown_key_and_bad_values_name_the_place(tmp_path: Path) -> None:
    write(tmp_path / ".gadugi/config.toml", "max_paralel = 3\n")
    with pytest.raises(InputError, match=r"config.toml: unknown setting 'max_paralel'"):
        resolve_settings(tmp_path, {}, {})
    write(tmp_path / ".gadugi/config.toml", 'port_range = "9000"\n')
    with pytest.raises(InputError, match=r"config.toml: port_range: expected a range"):
        resolve_settings(tmp_path, {}, {})
    write(tmp_path / ".gadugi/config.toml", "")
    with pytest.raises(InputError, match="GADUGI_MAX_PARALLEL: expected a whole number"):
        resolve_settings(tmp_path, {}, {"GADUGI_MAX_PARALLEL": "many"})
    with pytest.raises(InputError, match="GADUGI_TIMEOUT"):
        resolve_settings(tmp_path, {}, {"GADUGI_TIMEOUT": "soon"})
    write(tmp_path / ".gadugi/config.toml", "max_parallel = [")
    with pytest.raises(InputError, match="not valid TOML"):
        resolve_settings(tmp_path, {}, {})


def test_config_command(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo()
    write(repo / ".gadugi/config.toml", 'verify = "make check"\n')
    monkeypatch.setenv("GADUGI_MAX_PARALLEL", "2")
    group = click.Group()
    group.add_command(config_cmd.command)
    res = CliRunner().invoke(group, ["config", "--project-root", str(repo), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["max_parallel"] == {"value": 2, "source": "env:GADUGI_MAX_PARALLEL"}
    assert data["verify"] == {"value": "make check", "source": "file:.gadugi/config.toml"}
    res = CliRunner().invoke(group, ["config", "--project-root", str(repo)])
    assert res.exit_code == 0
    line = next(li for li in res.output.splitlines() if li.startswith("verify"))
    assert line.split() == ["verify", "make", "check", "file:.gadugi/config.toml"]
    write(repo / ".gadugi/config.toml", "colour = 1\n")
    res = CliRunner().invoke(group, ["config", "--project-root", str(repo)])
    assert res.exit_code == 1 and res.output.startswith("error: ") and "unknown setting 'colour'" in res.output


def test_a_flag_its_variable_and_its_key_are_one_name(tmp_path: Path) -> None:
    """`--retry-backoff` is GADUGI_RETRY_BACKOFF and `retry_backoff`: the name that used to be ignored."""
    assert resolve_settings(tmp_path, {}, {"GADUGI_RETRY_BACKOFF": "1s"})["retry_backoff"] == 1.0
    assert resolve_settings(tmp_path, {"retry_backoff": "2s"}, {})["retry_backoff"] == 2.0
    for setting in SETTINGS:
        assert setting.env == "GADUGI_" + setting.flag.removeprefix("--").replace("-", "_").upper()


@pytest.mark.parametrize(("name", "message"), [
    ("GADUGI_RETRY_BACKOF", "GADUGI_RETRY_BACKOF is not a setting (did you mean 'GADUGI_RETRY_BACKOFF'?)"),
    ("GADUGI_BACKOFF_BASE", "GADUGI_BACKOFF_BASE is now called GADUGI_RETRY_BACKOFF"),
    ("GADUGI_MAX_PARALEL", "did you mean 'GADUGI_MAX_PARALLEL'"),
])
def test_a_misspelled_variable_is_refused(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        resolve_settings(tmp_path, {}, {name: "3"})
    assert message in str(caught.value)


def test_variables_this_tool_sets_for_its_children_are_not_mistaken_for_settings(tmp_path: Path) -> None:
    env = {"GADUGI_WORKTREE": "/w", "GADUGI_BRANCH": "gadugi/x", "GADUGI_TASK_ID": "x", "GADUGI_UNRELATED_THING": "1",
           "GADUGI_VENV": "/opt/venv"}
    assert resolve_settings(tmp_path, {}, env)["worktrees_dir"] == ".worktrees"


def test_a_misspelled_or_renamed_key_names_the_right_one(tmp_path: Path) -> None:
    write(tmp_path / ".gadugi/config.toml", "retry_bakoff = '1s'\n")
    with pytest.raises(InputError, match=r"unknown setting 'retry_bakoff' \(did you mean 'retry_backoff'\?\)"):
        resolve_settings(tmp_path, {}, {})
    write(tmp_path / ".gadugi/config.toml", "backoff_cap = '1m'\n")
    with pytest.raises(InputError, match="setting 'backoff_cap' is now called 'retry_backoff_cap'"):
        resolve_settings(tmp_path, {}, {})
    write(tmp_path / ".gadugi/config.toml", "zzz = 1\n")
    with pytest.raises(InputError, match=r"unknown setting 'zzz' \(known: agent, agent_args"):
        resolve_settings(tmp_path, {}, {})


def test_config_shows_values_as_they_are_typed(make_repo) -> None:
    repo = make_repo()
    write(repo / ".gadugi/config.toml", 'timeout = "1h30m"\nmin_free_memory = "2G"\nlaunch_stagger = "0"\n')
    group = click.Group()
    group.add_command(config_cmd.command)
    res = CliRunner().invoke(group, ["config", "--project-root", str(repo)], env={})
    assert res.exit_code == 0, res.output
    shown = {line.split()[0]: line.split()[1] for line in res.output.splitlines()}
    assert (shown["timeout"], shown["min_free_memory"], shown["launch_stagger"]) == ("1h30m", "2G", "0")
    assert (shown["stall_timeout"], shown["min_free_disk"], shown["retry_backoff_cap"]) == ("15m", "1G", "5m")
    assert (shown["base"], shown["verify"]) == ("(HEAD)", "(unset)")
    # What is shown reads back as the same value.
    for key, text in shown.items():
        if not text.startswith("("):
            assert resolve_settings(repo, {key: text}, {})[key] == resolve_settings(repo, {}, {})[key], key


def test_the_cli_takes_every_setting_by_its_flag(make_repo) -> None:
    from orchestrator.cli.main import main
    repo = make_repo()
    for setting in SETTINGS:
        assert setting.flag in CliRunner().invoke(main, ["run", "--help"]).output or setting.group == "plan"
    res = CliRunner().invoke(main, ["plan", "--help"])
    assert "--base" in res.output and "--retry-backoff" not in res.output
    res = CliRunner().invoke(main, ["resume", "--help"])
    assert "--retry-backoff" in res.output and "--base" not in res.output
    assert repo.is_dir()
