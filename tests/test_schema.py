"""The shipped JSON Schemas match the models, and a real run's files validate against them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from orchestrator.cli.commands import schema as schema_cmd
from orchestrator.gitops.merge import merge_check
from orchestrator.observe.schema import (
    SCHEMAS,
    file_name,
    generate_schemas,
    render,
    shipped_dir,
    shipped_schema,
)

from test_e2e import run_cli, write_prompt

try:  # a dev-only dependency; the up-to-date check below runs without it
    import jsonschema
except ImportError:  # pragma: no cover
    jsonschema = None
needs_jsonschema = pytest.mark.skipif(jsonschema is None, reason="jsonschema is not installed (dev extra)")

REGENERATE = "python -c 'from orchestrator.observe.schema import write_schemas, shipped_dir; write_schemas(shipped_dir())'"


def test_shipped_schemas_are_up_to_date() -> None:
    shipped = {p.name for p in shipped_dir().glob("*.schema.json")}
    assert shipped == {file_name(n) for n in SCHEMAS}, f"stale or missing schema files; regenerate: {REGENERATE}"
    for name, schema in generate_schemas().items():
        text = (shipped_dir() / file_name(name)).read_text(encoding="utf-8")
        assert text == render(schema), f"{file_name(name)} is out of date; regenerate: {REGENERATE}"
        if jsonschema is not None:
            jsonschema.Draft202012Validator.check_schema(schema)


def validator(name: str) -> Any:
    return jsonschema.Draft202012Validator(shipped_schema(name))


def schema_name(path: Path, gadugi: Path) -> str | None:
    """Which schema a file under `.gadugi/` must follow; None for files we do not write as JSON."""
    rel = path.relative_to(gadugi).as_posix()
    fixed = {"monitoring/process_registry.json": "process_registry", "monitoring/heartbeats.json": "heartbeats",
             "monitoring/registry_stats.json": "registry_stats", "ports.json": "ports",
             "active_run.json": "active_run", "pool.json": "pool"}
    if rel in fixed:
        return fixed[rel]
    if rel.startswith("monitoring/") and rel.endswith("_status.json"):
        return "run_status"
    if rel.startswith("monitoring/") and rel.endswith("_final.json"):
        return "run_final"
    if rel.startswith("runs/"):
        leaf = path.name
        return {"report.json": "report", "request.json": "request", "result.json": "result",
                "events.jsonl": "journal_record", "plan.json": "run_plan", "setup.json": "task_setup",
                "wm.json": "workflow_manager", "agent_outcome.json": "agent_outcome",
                "merge_check.json": "merge_report"}.get(leaf)
    return None


@needs_jsonschema
def test_real_run_output_validates(make_repo, path_with: str) -> None:
    repo = make_repo({"src/app.py": "print('app')\n", "README.md": "# demo\n"})
    write_prompt(repo, "ok.md", "id: ok\nfiles: [src/app.py]", "# Ok\nfake-claude: commit write=src/app.py")
    write_prompt(repo, "also.md", "id: also", "# Also\nfake-claude: commit")
    write_prompt(repo, "bad.md", "id: bad", "# Bad\nfake-claude: fail")
    write_prompt(repo, "after.md", "id: after\ndepends_on: [ok]", "# After\nfake-claude: commit")
    plan = run_cli(repo, path_with, "plan", "ok", "also", "bad", "after", "--json")
    assert plan.returncode == 0, plan.stderr
    validator("plan").validate(json.loads(plan.stdout))
    run = run_cli(repo, path_with, "run", "ok", "also", "bad", "after", "--json", "--keep-worktrees")
    assert run.returncode == 1, run.stderr
    result = json.loads(run.stdout)
    validator("run_result").validate(result)

    gadugi = repo / ".gadugi"
    checked: dict[str, int] = {}
    unknown = []
    for path in sorted(p for p in gadugi.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl")):
        name = schema_name(path, gadugi)
        if name is None:
            # The agent's own stream and its own config directory, not ours.
            if path.name != "agent.jsonl" and "claude-config" not in path.parts:
                unknown.append(path.relative_to(gadugi).as_posix())
            continue
        if path.suffix == ".jsonl":
            documents = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        else:
            documents = [json.loads(path.read_text())]
        for doc in documents:
            validator(name).validate(doc)
        checked[name] = checked.get(name, 0) + len(documents)
    assert not unknown, f"JSON files without a schema (add them to orchestrator/state/schema.py): {unknown}"
    assert {"process_registry", "heartbeats", "registry_stats", "run_status", "run_final", "report", "request",
            "result", "journal_record"} <= set(checked), checked

    report = json.loads((gadugi / "runs" / result["run_id"] / "report.json").read_text())
    completed = [(t["task_id"], t["branch"]) for t in report["tasks"] if t["status"] == "completed"]
    validator("merge_report").validate(merge_check(repo, report["base_sha"], completed).model_dump(mode="json"))


@needs_jsonschema
def test_schema_validates_rejects_bad_status() -> None:
    bad = {"schema_version": 1, "run_id": "r", "timestamp": "2025-01-01T00:00:00+00:00",
           "processes": {"t": {"task_id": "t", "task_name": "t", "created_at": "x", "status": "exploded"}}}
    with pytest.raises(jsonschema.ValidationError):
        validator("process_registry").validate(bad)


def test_schema_command(tmp_path: Path) -> None:
    group = click.Group()
    group.add_command(schema_cmd.command)
    runner = CliRunner()
    res = runner.invoke(group, ["schema"])
    assert res.exit_code == 0 and set(json.loads(res.output)) == set(SCHEMAS)
    res = runner.invoke(group, ["schema", "heartbeats"])
    assert res.exit_code == 0 and json.loads(res.output)["title"] == "HeartbeatsFile"
    res = runner.invoke(group, ["schema", "--output", str(tmp_path / "out")])
    assert res.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(file_name(n) for n in SCHEMAS)
    res = runner.invoke(group, ["schema", "nope"])
    assert res.exit_code == 1 and "no schema named 'nope'" in res.output
