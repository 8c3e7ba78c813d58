"""The validation checkpoint after an agent: placeholders in what it added, declared outputs,
requirements it claims with evidence, and verify, judged on the task's branch.

An agent that wrote `raise NotImplementedError` and said "done" passes every other check; these
checks look at the work itself. The parsers and the scanner are pure functions over text; only
`run_checkpoint` reads git.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.gitops import git
from orchestrator.models import RequirementCheck, ValidationResult, VerifyResult

# Each is searched for in one added line. `TODO` and friends only as whole upper-case words, so
# "todos" in prose or a `todo_list` variable are not findings.
DEFAULT_PLACEHOLDER_PATTERNS: tuple[str, ...] = (
    r"raise NotImplementedError",
    r"\b(TODO|FIXME|XXX)\b",
    r"(?i)\bplaceholder\b",
    r"(?i)\bimplement me\b",
    r"(?i)\blorem ipsum\b",
    r"(?i)\bunimplemented!\(|\btodo!\(",  # Rust
    r"panic\(\s*\"(?i:not implemented|unimplemented|todo)",  # Go
    r"throw new Error\(\s*['\"`](?i:not implemented|unimplemented|todo)",  # JS/TS
)
VERIFY_TAIL_LINES = 30  # of a failed verify's output, in a fix-up message
FINDING_TEXT_WIDTH = 160

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_DEF = re.compile(r"^\s*(?:async\s+)?def\s+\w+.*:\s*(#.*)?$")
_DOCSTRING = re.compile(r"^\s*[rbuRBU]?(\"\"\"|''').*\1\s*$")
_EMPTY_BODY = frozenset({"pass", "..."})
_JSON_BLOCK = re.compile(r"```json\s*\n(.*?)\n\s*```", re.DOTALL)


@dataclass(frozen=True)
class AddedLine:
    path: str
    number: int
    text: str


def added_lines(diff: str) -> Iterator[AddedLine]:
    """The added lines of a `git diff -U0`, with their file and line number in the new version."""
    path: str | None = None
    number = 0
    for line in diff.splitlines():
        if line.startswith("+++ "):
            target = line[4:]
            path = target[2:] if target.startswith("b/") else None  # `/dev/null`: a deleted file
        elif line.startswith("@@"):
            match = _HUNK.match(line)
            number = int(match.group(1)) if match else 0
        elif line.startswith("+") and path is not None:
            yield AddedLine(path, number, line[1:])
            number += 1


def scan_placeholders(
    diff: str,
    *,
    patterns: Sequence[str] = DEFAULT_PLACEHOLDER_PATTERNS,
    prompt_text: str = "",
    empty_new_files: Sequence[str] = (),
) -> list[str]:
    """`file:line: text` of each placeholder among the added lines, then `file: new file is empty`.

    A line that also appears in the prompt was asked for (a TODO the user wants kept): not counted.
    """
    compiled = [re.compile(p) for p in patterns]
    asked = {" ".join(line.split()) for line in prompt_text.splitlines() if line.strip()}
    findings: list[str] = []
    previous: list[AddedLine] = []  # the run of consecutive added lines so far, in one file
    for added in added_lines(diff):
        if previous and (previous[-1].path != added.path or previous[-1].number + 1 != added.number):
            previous = []
        text = added.text.strip()
        hit = any(p.search(added.text) for p in compiled) or (text in _EMPTY_BODY and _opens_function(previous))
        previous.append(added)
        if hit and " ".join(text.split()) not in asked:
            findings.append(f"{added.path}:{added.number}: {_short(text)}")
    findings += [f"{path}: new file is empty" for path in empty_new_files]
    return findings


def _opens_function(previous: Sequence[AddedLine]) -> bool:
    """The lines just before are a new `def` (and maybe its one-line docstring): an empty body."""
    lines = [a.text for a in previous[-2:] if a.text.strip()]
    if lines and _DEF.match(lines[-1]):
        return True
    return len(lines) == 2 and bool(_DEF.match(lines[0])) and bool(_DOCSTRING.match(lines[1]))


def _short(text: str) -> str:
    return text if len(text) <= FINDING_TEXT_WIDTH else text[: FINDING_TEXT_WIDTH - 1] + "…"


def requirement_claims(final_message: str) -> dict[str, tuple[str, str]] | None:
    """`{id: (status, evidence)}` from the last fenced json block of the agent's final message that
    holds a `requirements` list; None when there is none or it is malformed (not reported)."""
    for block in reversed(_JSON_BLOCK.findall(final_message)):
        try:
            data = json.loads(block)
        except ValueError:
            continue
        items = data.get("requirements") if isinstance(data, dict) else None
        if not isinstance(items, list):
            continue
        claims: dict[str, tuple[str, str]] = {}
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                status = item.get("status")
                evidence = item.get("evidence")
                claims[item["id"].strip().upper()] = (
                    status if status in ("done", "not_done") else "not_done",
                    evidence.strip() if isinstance(evidence, str) else "",
                )
        return claims
    return None


def evidence_path(evidence: str) -> str:
    """The path in `path[:line]` or `path::test_name` evidence."""
    first = evidence.strip().strip("`").split()[0] if evidence.strip() else ""
    return first.split("::")[0].split(":")[0].removeprefix("./") if first else ""


def requirement_id(index: int) -> str:
    return f"R{index + 1}"


def check_requirements(requirements: Sequence[str], final_message: str,
                       exists: Mapping[str, bool]) -> list[RequirementCheck]:
    """Each requirement with the agent's claim and whether the path it cites is on the branch
    (`exists` answers for every `evidence_path` of the claims)."""
    claims = requirement_claims(final_message) or {}
    checks = []
    for index, text in enumerate(requirements):
        rid = requirement_id(index)
        if rid not in claims:
            checks.append(RequirementCheck(id=rid, text=text))
            continue
        status, evidence = claims[rid]
        path = evidence_path(evidence)
        checks.append(RequirementCheck(id=rid, text=text, status="done" if status == "done" else "not_done",
                                       evidence=evidence, evidence_found=bool(path) and exists.get(path, False)))
    return checks


def missing_outputs(outputs: Sequence[str], sizes: Mapping[str, int], changed: Sequence[str]) -> list[str]:
    """`path: why` for each declared output not on the branch, empty, or not changed by the task."""
    changed_set = set(changed)
    found = []
    for path in outputs:
        if path not in sizes:
            found.append(f"{path}: does not exist on the branch")
        elif sizes[path] == 0:
            found.append(f"{path}: is empty")
        elif path not in changed_set:
            found.append(f"{path}: not changed by this task")
    return found


@dataclass(frozen=True)
class CheckpointSpec:
    """What a task declared that the checkpoint holds it to."""

    placeholder_check: bool
    placeholder_patterns: Sequence[str]
    prompt_text: str
    outputs: Sequence[str]
    requirements: Sequence[str]


def run_checkpoint(worktree: Path, start_sha: str, spec: CheckpointSpec, *, final_message: str,
                   verify: VerifyResult | None, fix_rounds: int) -> ValidationResult:
    """Judge the committed work of the branch checked out in `worktree` since `start_sha`."""
    head = git.head_sha(worktree)
    placeholders: list[str] = []
    if spec.placeholder_check:
        added = git.added_files(worktree, start_sha, head)
        sizes = git.blob_sizes(worktree, head, added)
        placeholders = scan_placeholders(
            git.added_lines_diff(worktree, start_sha, head),
            patterns=spec.placeholder_patterns or DEFAULT_PLACEHOLDER_PATTERNS,
            prompt_text=spec.prompt_text,
            empty_new_files=[path for path in added if sizes.get(path) == 0],
        )
    missing: list[str] = []
    if spec.outputs:
        changed = git.diffstat(worktree, start_sha, head)[0]
        missing = missing_outputs(spec.outputs, git.blob_sizes(worktree, head, list(spec.outputs)), changed)
    requirements: list[RequirementCheck] = []
    if spec.requirements:
        claims = requirement_claims(final_message) or {}
        cited = sorted({p for _, evidence in claims.values() if (p := evidence_path(evidence))})
        on_branch = git.blob_sizes(worktree, head, cited)
        exists = {p: any(f == p or f.startswith(p.rstrip("/") + "/") for f in on_branch) for p in cited}
        requirements = check_requirements(spec.requirements, final_message, exists)
    return ValidationResult(
        placeholders=placeholders,
        missing_outputs=missing,
        requirements=requirements,
        verify_passed=verify.passed if verify is not None else None,
        fix_rounds=fix_rounds,
        placeholder_check=spec.placeholder_check,
    )


FIXUP_HEADING = "## Validation checkpoint: fix these before you finish"


def fixup_message(validation: ValidationResult, verify: VerifyResult | None, *, round_number: int,
                  rounds: int, requirements_block: bool) -> str:
    """The one message a fix-up round sends: the concrete evidence, and the ask to fix exactly that."""
    lines = [
        FIXUP_HEADING,
        "",
        f"Fix-up round {round_number} of {rounds}. Your work was checked after you finished, and these",
        "checks failed. Fix exactly these problems in this worktree, commit, and finish again.",
        "",
    ]
    if verify is not None and not verify.passed:
        lines += [f"- The check `{verify.command}` failed (exit {verify.exit_code}). The end of its output:", "",
                  "```", *verify.last_lines(VERIFY_TAIL_LINES), "```", ""]
    lines += [f"- {finding}" for finding in validation.findings()]
    if validation.placeholders:
        lines += ["", "Placeholders are code that is not written yet: replace each with the real implementation."]
    if requirements_block:
        lines += ["", "End your final message with the fenced `json` block of requirements again, every id "
                  "with its status and evidence (a path on this branch, `path:line`, or a test)."]
    return "\n".join(lines) + "\n"


def describe(validation: ValidationResult) -> str:
    """What failed, in a few words: for the live view and the task's error message."""
    parts = []
    if validation.verify_passed is False:
        parts.append("verify failed")
    if validation.placeholders:
        parts.append(f"{len(validation.placeholders)} placeholder(s)")
    if validation.missing_outputs:
        parts.append(f"{len(validation.missing_outputs)} missing output(s)")
    unmet = len(validation.requirements) - validation.requirements_met
    if unmet:
        parts.append(f"{unmet} requirement(s) not met")
    return ", ".join(parts) or "passed"
