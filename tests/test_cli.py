"""The CLI shell: bad input is one clear line and exit 1, with nothing created."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import orchestrator
import pytest
from click.testing import CliRunner
from orchestrator.cli.main import main

from conftest import git


def invoke(args: list[str], *, input_text: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, args, input=input_text, catch_exceptions=False)


def one_line_error(result, needle: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def repo_with_prompt(make_repo, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_repo({"README.md": "# r\n", "prompts/a.md": "# Task A\nDo it.\n"})
    monkeypatch.chdir(repo)
    return repo


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "a", "--max-parallel", "0"], "must be at least 1"),
        (["run", "a", "--max-parallel", "-2"], "must be at least 1"),
        (["run", "a", "--max-parallel", "many"], "expected a whole number"),
        (["run", "a", "--timeout", "soon"], "is not a duration"),
        (["run", "nope"], "prompt 'nope' not found"),
        (["run", "a", "--base", "no-such-ref", "--dry-run"], "base ref 'no-such-ref' does not exist"),
        (["run"], "no prompt files given"),
    ],
)
def test_bad_input_is_one_line(repo_with_prompt: Path, args: list[str], needle: str) -> None:
    one_line_error(invoke(args), needle)
    assert not (repo_with_prompt / ".worktrees").exists()
    assert not (repo_with_prompt / ".gadugi").exists()


def test_not_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.md").write_text("# A\n")
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke(["run", "a.md", "--dry-run"]), "not a git repository")


def test_repository_without_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.md").write_text("# A\n")
    monkeypatch.chdir(tmp_path)
    one_line_error(invoke(["run", "a.md", "--dry-run"]), "has no commits")


def test_bare_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    monkeypatch.chdir(tmp_path / "bare.git")
    (tmp_path / "a.md").write_text("# A\n")
    one_line_error(invoke(["run", str(tmp_path / "a.md"), "--dry-run"]), "bare repository")


def test_directory_as_prompt(repo_with_prompt: Path) -> None:
    one_line_error(invoke(["run", "prompts", "--dry-run"]), "is a directory")


def test_cycle_names_the_tasks(repo_with_prompt: Path) -> None:
    (repo_with_prompt / "prompts" / "x.md").write_text("---\ndepends_on: [y]\n---\n# X\n")
    (repo_with_prompt / "prompts" / "y.md").write_text("---\ndepends_on: [x]\n---\n# Y\n")
    result = invoke(["plan", "x", "y"])
    one_line_error(result, "cycle")
    assert "x" in result.output and "y" in result.output


def test_unknown_dependency(repo_with_prompt: Path) -> None:
    (repo_with_prompt / "prompts" / "x.md").write_text("---\ndepends_on: [ghost]\n---\n# X\n")
    one_line_error(invoke(["plan", "x"]), "ghost")


def test_stdin_one_line_list(repo_with_prompt: Path) -> None:
    (repo_with_prompt / "prompts" / "b.md").write_text("# Task B\n")
    result = invoke(["plan", "--stdin", "--json"], input_text="Execute these prompts: a.md, `prompts/b.md`\n")
    assert result.exit_code == 0, result.output
    assert '"total_tasks": 2' in result.output


def test_bare_prompt_names_default_to_run(repo_with_prompt: Path) -> None:
    result = invoke(["a", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "gadugi/a" in result.output


def test_python_dash_m_help() -> None:
    """run_orchestrator.sh starts `python -m orchestrator`; the usage line still names `orchestrator`."""
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "--help"], capture_output=True, text=True, check=True)
    assert "run" in proc.stdout and "plan" in proc.stdout
    assert proc.stdout.startswith("Usage: orchestrator [OPTIONS]")
    bad = subprocess.run([sys.executable, "-m", "orchestrator", "run", "--max-paralel", "2"], capture_output=True,
                         text=True)
    assert "Usage: orchestrator run [OPTIONS]" in bad.stderr and "python -m" not in bad.stderr


# Each module is imported first in a fork of an interpreter that holds no module of its own
# layer or above. The third-party libraries (with the submodules pydantic and rich load lazily)
# are loaded before any fork, and each layer of the "imports run downward" contract is loaded once
# its own modules have passed: a cycle cannot cross layers (that would be an upward import, which
# lint-imports refuses), so what lies below cannot hide one. A hundred modules then cost about one
# interpreter start, and each fork imports only its own layer.
_IMPORT_EACH_ALONE = """
import importlib, json, os, sys, traceback
for lib in ("psutil", "click", "yaml", "pydantic", "pydantic.main", "pydantic.fields", "pydantic_core",
            "annotated_types", "rich.console", "rich.live", "rich.table", "rich.text", "dask", "distributed"):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
assert not [m for m in sys.modules if m.split(".")[0] == "orchestrator"]
failed = []
for layer in json.loads(sys.argv[1]):
    for name in layer:
        pid = os.fork()
        if pid == 0:
            try:
                importlib.import_module(name)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        if os.waitpid(pid, 0)[1] != 0:
            failed.append(name)
    if failed:
        break
    for name in layer:
        importlib.import_module(name)
print(" ".join(failed))
"""


def _layers_bottom_up(names: list[str]) -> list[list[str]]:
    """The package's modules grouped by the layer contract in pyproject.toml, lowest first; the
    modules of no layer (the shared ones and the package itself) come first."""
    import tomllib

    contracts = tomllib.loads((Path(orchestrator.__file__).parent.parent / "pyproject.toml").read_text())
    layers = next(c["layers"] for c in contracts["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    assert len(layers) > 5

    def layer_of(name: str) -> int:
        return next((i for i, layer in enumerate(layers) if name == layer or name.startswith(layer + ".")), len(layers))

    return [[n for n in names if layer_of(n) == i] for i in range(len(layers), -1, -1)]


def test_every_module_imports_alone() -> None:
    """No circular imports: each module imports first in a fresh process."""
    names = [m.name for m in pkgutil.walk_packages(orchestrator.__path__, "orchestrator.")]
    assert len(names) > 50 and "orchestrator.task.workflow_manager" in names
    layers = _layers_bottom_up(names)
    assert sorted(n for layer in layers for n in layer) == sorted(names)
    assert "orchestrator.models" in layers[0] and "orchestrator.cli.main" in layers[-1]
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH_ALONE, json.dumps(layers)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.split() == [], proc.stdout + proc.stderr


_HEAVY = ("pydantic", "rich", "psutil", "prometheus_client", "yaml", "orchestrator.models")
_LOADED_AFTER = """
import sys
from click.testing import CliRunner
from orchestrator.cli.main import main
result = CliRunner().invoke(main, sys.argv[1:])
assert result.exit_code == 0, result.output
print(" ".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["run", "--help"], ["status", "--help"]],
                         ids=" ".join)
def test_the_cli_starts_without_the_core(argv: list[str]) -> None:
    """Parsing, --help and --version load click and the option table, not the core an editor's
    poll or a typo would otherwise pay for (pydantic, the models, rich, psutil)."""
    proc = subprocess.run([sys.executable, "-c", _LOADED_AFTER.format(heavy=_HEAVY), *argv],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []


def test_interactive_lists_prompts(repo_with_prompt: Path) -> None:
    (repo_with_prompt / "prompts" / "b.md").write_text("# Task B\n")
    result = CliRunner().invoke(main, ["plan", "--interactive", "--json"], input="a\nb.md\n\n")
    assert result.exit_code == 0, result.output
    assert '"total_tasks": 2' in result.output


def test_a_reader_that_goes_away_is_not_a_crash(repo_with_prompt: Path) -> None:
    """`orchestrator schema | head -1`: the closed pipe ends the command quietly, no crash log."""
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "schema"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=repo_with_prompt)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first write
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141, err
    assert b"unexpected" not in err and b"Traceback" not in err
    assert not list(repo_with_prompt.glob(".gadugi/crash-*.log"))


def test_plan_says_what_the_engine_will_do(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dependencies are waits; a conflict keeps two tasks apart in either order: no invented levels."""
    repo = make_repo({
        "src/x.py": "X = 1\n",
        "prompts/a.md": "# A\nDo a.\n",
        "prompts/b.md": "---\ndepends_on: [a]\n---\n# B\nDo b.\n",
        "prompts/c.md": "---\nfiles: [src/x.py]\npriority: 1\n---\n# C\nEdit x.\n",
        "prompts/d.md": "---\nfiles: [src/x.py]\n---\n# D\nEdit x too.\n",
    })
    monkeypatch.chdir(repo)
    result = invoke(["plan", "a", "b", "c", "d"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "level" not in out and "side by side" not in out
    assert "Ready at the start, in the order they are started: c, a, d\n" in out
    assert "  b after a: b depends on a (front matter depends_on)\n" in out
    assert "Never at the same time (either order; the first to be ready goes first):\n  c / d: c and d both touch src/x.py" in out
    data = json.loads(invoke(["plan", "a", "b", "c", "d", "--json"]).output)
    assert {"total_tasks", "parallelizable_tasks", "sequential_tasks", "execution_groups", "groups"} <= set(data)


def test_a_misspelled_subcommand_is_not_taken_for_a_prompt(repo_with_prompt: Path) -> None:
    result = CliRunner().invoke(main, ["staus"])
    assert result.exit_code == 2 and "no such command 'staus' (did you mean 'status'?)" in result.output
    # A prompt by that name still runs, as `orchestrator a.md` does.
    (repo_with_prompt / "prompts" / "plann.md").write_text("# Plann\nDo it.\n")
    planned = invoke(["plann", "--dry-run"])
    assert planned.exit_code == 0 and "gadugi/plann" in planned.output


def test_an_unknown_dependency_names_the_close_one(repo_with_prompt: Path) -> None:
    (repo_with_prompt / "prompts" / "b.md").write_text("---\ndepends_on: [aa]\n---\n# B\n")
    (repo_with_prompt / "prompts" / "parser.md").write_text("# Parser\n")
    one_line_error(invoke(["plan", "a", "b", "parser"]), "task 'b' depends on unknown task 'aa' (known: a, b, parser)")
    (repo_with_prompt / "prompts" / "b.md").write_text("---\ndepends_on: [parsr]\n---\n# B\n")
    one_line_error(invoke(["plan", "a", "b", "parser"]), "unknown task 'parsr' (did you mean 'parser'?)")
