"""The validation checkpoint: its parsers and scanner on text, then whole runs with the fake agent
leaving placeholders, skipping outputs and reporting requirements, fixed only in a fix-up round."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from orchestrator.agents.failures import PERMANENT, TRANSIENT, failure_kind
from orchestrator.errors import InputError
from orchestrator.models import RequirementCheck, ValidationResult, VerifyResult
from orchestrator.observe.events import FixupStarted, TaskStarted
from orchestrator.observe.live import LiveView
from orchestrator.plan.front_matter import check_front_matter
from orchestrator.plan.prompt_text import requirements_section
from orchestrator.task.checkpoint import (
    FIXUP_HEADING,
    added_lines,
    check_requirements,
    evidence_path,
    fixup_message,
    missing_outputs,
    requirement_claims,
    scan_placeholders,
)
from rich.console import Console

from conftest import git
from test_e2e import run_cli, write_prompt


def diff_of(path: str, lines: list[str], start: int = 1) -> str:
    body = "\n".join(f"+{line}" for line in lines)
    return (f"diff --git a/{path} b/{path}\n--- /dev/null\n+++ b/{path}\n"
            f"@@ -0,0 +{start},{len(lines)} @@\n{body}\n")


# -- the scanner -------------------------------------------------------------------------------


def test_added_lines_carry_their_new_line_numbers() -> None:
    diff = diff_of("a.py", ["x = 1", "y = 2"], start=10) + "diff --git a/b.py b/b.py\n--- a/b.py\n+++ /dev/null\n"
    assert [(a.path, a.number, a.text) for a in added_lines(diff)] == [("a.py", 10, "x = 1"), ("a.py", 11, "y = 2")]


@pytest.mark.parametrize("line", [
    "    raise NotImplementedError", "# TODO: wire the database", "// FIXME later", "x = 1  # XXX",
    "return 'placeholder'", "# implement me", "Lorem ipsum dolor", "    todo!()", "    unimplemented!()",
    'panic("not implemented")', "throw new Error('Not implemented');",
])
def test_each_kind_of_placeholder_is_found(line: str) -> None:
    assert scan_placeholders(diff_of("src/x", ["ok = 1", line])) == [f"src/x:2: {line.strip()}"]


@pytest.mark.parametrize("line", ["todo_items = []", "# Todos are listed in the README", "real = compute()"])
def test_ordinary_code_is_not_a_placeholder(line: str) -> None:
    assert scan_placeholders(diff_of("src/x", [line])) == []


def test_a_function_whose_body_is_only_pass_or_ellipsis_is_found() -> None:
    diff = diff_of("m.py", ["def f(a):", "    pass", "", "def g():", '    """Doc."""', "    ...",
                            "class E(Exception):", "    pass"])
    assert scan_placeholders(diff) == ["m.py:2: pass", "m.py:6: ..."]


def test_a_line_the_prompt_asks_for_is_not_counted() -> None:
    diff = diff_of("a.py", ["# TODO: keep this marker for the release script", "# TODO: mine"])
    prompt = "Add the line `# TODO: keep this marker for the release script` at the top.\n"
    assert scan_placeholders(diff, prompt_text="# TODO: keep this marker for the release script\n" + prompt) == [
        "a.py:2: # TODO: mine"]


def test_configured_patterns_replace_the_built_in_ones() -> None:
    diff = diff_of("a.py", ["# TODO", "HACK = True"])
    assert scan_placeholders(diff, patterns=[r"\bHACK\b"]) == ["a.py:2: HACK = True"]


def test_empty_new_files_are_findings() -> None:
    assert scan_placeholders("", empty_new_files=["web/index.ts"]) == ["web/index.ts: new file is empty"]


# -- requirements ------------------------------------------------------------------------------


def test_requirements_come_from_checkbox_items_of_the_sections() -> None:
    body = ("# T\n\n## Requirements\n\nIntro prose.\n- [ ] Orders  can be listed\n- [x] Orders can be created\n"
            "- not a checkbox\n\n## Notes\n- [ ] not a requirement\n\n### Acceptance criteria\n- [ ] It is fast\n")
    assert requirements_section(body) == ["Orders can be listed", "Orders can be created", "It is fast"]


def test_front_matter_keys_are_typed() -> None:
    front = check_front_matter({"allow_placeholders": True, "outputs": ["a.py", "`b.py`"], "requirements": "One",
                                "fix_rounds": 0}, Path("p.md"))
    assert (front.allow_placeholders, front.outputs, front.requirements, front.fix_rounds) == (
        True, ["a.py", "b.py"], ["One"], 0)
    with pytest.raises(InputError, match="'fix_rounds' must be a whole number"):
        check_front_matter({"fix_rounds": -1}, Path("p.md"))
    with pytest.raises(InputError, match="'allow_placeholders' must be true or false"):
        check_front_matter({"allow_placeholders": "maybe"}, Path("p.md"))


def test_the_last_json_block_with_requirements_is_the_report() -> None:
    message = ('Done.\n```json\n{"other": 1}\n```\n```json\n{"requirements": [{"id": "r1", "status": "done", '
               '"evidence": "src/a.py:3"}, {"id": "R2", "status": "maybe"}]}\n```\n')
    assert requirement_claims(message) == {"R1": ("done", "src/a.py:3"), "R2": ("not_done", "")}
    assert requirement_claims("```json\n{broken\n```") is None
    assert requirement_claims("no block") is None


def test_evidence_paths() -> None:
    assert evidence_path("src/a.py:12") == "src/a.py"
    assert evidence_path("`tests/test_a.py::test_x` passes") == "tests/test_a.py"
    assert evidence_path("./.github/ci.yml") == ".github/ci.yml"


def test_requirements_are_met_only_claimed_done_with_evidence_found() -> None:
    message = ('```json\n{"requirements": [{"id": "R1", "status": "done", "evidence": "a.py:1"}, '
               '{"id": "R2", "status": "done", "evidence": "gone.py"}, {"id": "R3", "status": "not_done"}]}\n```')
    checks = check_requirements(["one", "two", "three", "four"], message, {"a.py": True, "gone.py": False})
    assert [(c.id, c.status, c.evidence_found, c.met) for c in checks] == [
        ("R1", "done", True, True), ("R2", "done", False, False), ("R3", "not_done", False, False),
        ("R4", "not_reported", False, False)]


def test_outputs_must_exist_be_non_empty_and_changed() -> None:
    found = missing_outputs(["a.py", "b.py", "c.py", "d.py"], {"a.py": 10, "b.py": 0, "c.py": 5}, ["a.py", "b.py"])
    assert found == ["b.py: is empty", "c.py: not changed by this task", "d.py: does not exist on the branch"]


def test_the_fixup_message_lists_every_piece_of_evidence() -> None:
    validation = ValidationResult(
        placeholders=["a.py:2: raise NotImplementedError"], missing_outputs=["b.py: does not exist on the branch"],
        requirements=[RequirementCheck(id="R1", text="Lists orders", status="done", evidence="x.py")],
        verify_passed=False)
    verify = VerifyResult(command="pytest -q", exit_code=1, passed=False, output_tail="collected 3\nE   assert 1 == 2\n")
    text = fixup_message(validation, verify, round_number=1, rounds=2, requirements_block=True)
    assert text.startswith(FIXUP_HEADING)
    for expected in ("`pytest -q` failed (exit 1)", "E   assert 1 == 2", "placeholder: a.py:2: raise NotImplementedError",
                     "missing output: b.py: does not exist on the branch",
                     "requirement R1 claimed done, evidence `x.py` not found: Lists orders", "fenced `json` block"):
        assert expected in text


def test_validation_failures_are_never_retried_nor_trip_the_breaker() -> None:
    """The same agent would leave the same work; and one task's findings say nothing of the others."""
    assert failure_kind("validation") == "own"
    assert "validation" not in TRANSIENT and "validation" not in PERMANENT


# -- whole runs --------------------------------------------------------------------------------


def task_of(result: dict[str, object], task_id: str = "t") -> dict[str, object]:
    tasks = {t["task_id"]: t for t in result["tasks"]}  # type: ignore[index, union-attr]
    return tasks[task_id]  # type: ignore[no-any-return]


def agent_starts(log: Path) -> list[dict[str, object]]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["event"] == "start"]


def report_of(repo: Path, result: dict[str, object]) -> str:
    return Path(str(result["report_path"])).read_text()


def test_a_placeholder_gets_a_fixup_round_in_the_resumed_session_and_completes(
        make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "t.md", "id: t", "# Orders service\nfake-claude: placeholder write=src/orders.py")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "prompts/t.md", "--json", log=log)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    task = task_of(result)
    assert task["status"] == "completed"
    assert task["validation"]["fix_rounds"] == 1 and task["validation"]["placeholders"] == []
    assert task["attempts"] == 1  # a round is not a retry
    starts = agent_starts(log)
    assert [s["resumed"] for s in starts] == [False, True]
    assert "return 42" in git(repo, "show", f"{task['branch']}:src/orders.py")
    fixup = (repo / ".gadugi" / "runs" / result["run_id"] / "tasks" / "t" / "fixup-1.md").read_text()
    assert "src/orders.py:2: raise NotImplementedError" in fixup
    # Both agent runs' figures are the task's.
    task_result = json.loads((repo / ".gadugi" / "runs" / result["run_id"] / "tasks" / "t" / "result.json").read_text())
    assert task_result["outcome"]["num_turns"] == 4 and task_result["validation"]["fix_rounds"] == 1
    journal = [json.loads(line) for line in
               (repo / ".gadugi" / "runs" / result["run_id"] / "events.jsonl").read_text().splitlines()]
    rounds = [r for r in journal if r.get("changes", {}).get("fix_rounds")]
    assert [r["changes"]["fixing"] for r in rounds] == ["1 placeholder(s)"]
    entry = json.loads((repo / ".gadugi" / "monitoring" / "process_registry.json").read_text())["processes"]["t"]
    assert entry["fix_rounds"] == 1 and entry["validation"]["fix_rounds"] == 1


def test_an_agent_that_never_fixes_fails_with_the_findings_in_the_report(
        make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "t.md", "id: t\noutputs: [api/orders.py, api/extra.py]",
                 "# Orders\nfake-claude: skip-output write=api/orders.py output=api/extra.py fix=never")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "prompts/t.md", "--json", "--fix-rounds", "1", log=log)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    task = task_of(result)
    assert task["status"] == "failed" and task["attempts"] == 1
    assert task["validation"]["missing_outputs"] == ["api/extra.py: does not exist on the branch"]
    assert task["validation"]["fix_rounds"] == 1
    assert task["error_message"] == ("validation failed: missing output: api/extra.py: does not exist on the branch "
                                     "(after 1 fix-up round(s))")
    assert len(agent_starts(log)) == 2  # the first run and one round; no retry
    report = report_of(repo, result)
    assert "missing output: api/extra.py: does not exist on the branch" in report


def test_a_missing_output_fixed_in_its_round_completes_and_verify_sees_it(
        make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "t.md", "id: t\noutputs: [api/extra.py]\nverify: test -f api/extra.py",
                 "# Orders\nfake-claude: skip-output write=api/orders.py output=api/extra.py")
    proc = run_cli(repo, path_with, "run", "prompts/t.md", "--json", log=tmp_path / "agents.log")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    task = task_of(json.loads(proc.stdout))
    assert task["validation"] == {**task["validation"], "verify_passed": True, "missing_outputs": [], "fix_rounds": 1}
    fixup = next((tmp_path.glob("**/fixup-1.md")), None) or next(repo.glob(".gadugi/runs/*/tasks/t/fixup-1.md"))
    text = fixup.read_text()
    assert "`test -f api/extra.py` failed (exit 1)" in text and "missing output: api/extra.py" in text


def test_requirements_are_reported_checked_and_covered_in_the_report(
        make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "t.md", "id: t",
                 "# Orders\nfake-claude: requirements ids=R1,R2 evidence=docs/orders.md\n\n"
                 "## Acceptance criteria\n- [ ] Orders can be listed\n- [ ] Orders can be created\n")
    write_prompt(repo, "u.md", "id: u\nfix_rounds: 0\nrequirements: [It is documented]",
                 "# Silent\nfake-claude: requirements ids=R1 report=none")
    proc = run_cli(repo, path_with, "run", "prompts/t.md", "prompts/u.md", "--json", log=tmp_path / "agents.log")
    assert proc.returncode == 1, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    t, u = task_of(result, "t"), task_of(result, "u")
    assert t["status"] == "completed" and t["validation"]["fix_rounds"] == 1
    assert [(r["id"], r["status"], r["evidence_found"]) for r in t["validation"]["requirements"]] == [
        ("R1", "done", True), ("R2", "done", True)]
    assert u["status"] == "failed" and u["validation"]["fix_rounds"] == 0
    assert u["validation"]["requirements"][0]["status"] == "not_reported"
    assert (result["requirements_met"], result["requirements_total"]) == (2, 3)
    prompt = next(repo.glob(".gadugi/runs/*/tasks/t/prompt.md")).read_text()
    assert "- R1: Orders can be listed" in prompt and '"requirements"' in prompt
    report = report_of(repo, result)
    assert "Requirement coverage: 2/3 (67 %)" in report
    assert "R1 not reported, no evidence: It is documented" in report


def test_allowed_placeholders_and_the_switch_turn_the_scan_off(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "t.md", "id: t\nallow_placeholders: true", "# Stub\nfake-claude: placeholder write=a.py fix=never")
    write_prompt(repo, "u.md", "id: u", "# Stub\nfake-claude: placeholder write=b.py fix=never")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "prompts/t.md", "--json", log=log)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert task_of(json.loads(proc.stdout))["validation"]["placeholder_check"] is False
    proc = run_cli(repo, path_with, "run", "prompts/u.md", "--json", "--no-placeholder-check", log=log)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert len(agent_starts(log)) == 2  # no round for either


def test_each_round_is_a_progress_line(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "t.md", "id: t", "# Stub\nfake-claude: placeholder write=a.py fix=never")
    proc = run_cli(repo, path_with, "run", "prompts/t.md", "--plain", log=tmp_path / "agents.log")
    assert proc.returncode == 1, proc.stderr + proc.stdout
    fixing = [line.split(" t: ", 1)[1] for line in proc.stdout.splitlines() if " fix " in line]
    assert fixing == ["fixing 1/2: 1 placeholder(s)", "fixing 2/2: 1 placeholder(s)"]


def test_the_run_budget_bounds_fixup_rounds(make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "t.md", "id: t", "# Stub\nfake-claude: placeholder write=a.py")
    log = tmp_path / "agents.log"
    # The fake's first run costs about $0.05: the budget is spent by it.
    proc = run_cli(repo, path_with, "run", "prompts/t.md", "--json", "--run-budget-usd", "0.01", log=log)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    task = task_of(json.loads(proc.stdout))
    assert task["validation"]["fix_rounds"] == 0 and task["validation"]["placeholders"] == ["a.py:2: raise NotImplementedError"]
    assert len(agent_starts(log)) == 1


def test_the_live_view_prints_each_round_and_shows_it_on_the_row() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    view = LiveView(Console(file=out, force_terminal=True, width=140, height=40))
    try:
        view(TaskStarted(task_id="t", branch="gadugi/t", predecessors=(), attempt=1))
        view(FixupStarted(task_id="t", round=1, rounds=2, reason="verify failed"))
        row = view.view().rows[0]
    finally:
        view.close()
    assert row.last_event == "fixing 1/2: verify failed"
    assert "t: fixing 1/2: verify failed" in out.getvalue()


def test_a_lost_session_gets_its_fixup_round_afresh_with_the_whole_task(
        make_repo, path_with: str, tmp_path: Path) -> None:
    repo = make_repo({"README.md": "# demo\n"})
    write_prompt(repo, "t.md", "id: t", "# Orders service\nfake-claude: placeholder write=svc.py forget-session=1")
    log = tmp_path / "agents.log"
    proc = run_cli(repo, path_with, "run", "prompts/t.md", "--json", log=log)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    task = task_of(json.loads(proc.stdout))
    assert task["status"] == "completed" and task["validation"]["fix_rounds"] == 1
    assert [(s["mode"], s.get("resumed")) for s in agent_starts(log)] == [
        ("placeholder", False), ("resume-missing", None), ("placeholder", False)]
    prompt = next(repo.glob(".gadugi/runs/*/tasks/t/fixup-prompt.md")).read_text()
    assert prompt.startswith(FIXUP_HEADING) and "svc.py:2: raise NotImplementedError" in prompt
    assert "# Task t: Orders service" in prompt  # the whole task follows the findings
