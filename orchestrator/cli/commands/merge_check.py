"""`orchestrator merge-check [RUN_ID]`: which completed branches merge cleanly, and in what order."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator.cli.error_handler import handle_errors

if TYPE_CHECKING:
    from orchestrator.gitops.merge import MergeReport

EPILOG = """\b
Examples:
  orchestrator merge-check                      # the latest run
  orchestrator merge-check orchestration-20250101-120000-ab12 --json
  orchestrator merge-check --onto main          # against main's tip instead of the run's base
"""


def check_run(project_root: str, run_id: str | None, onto: str | None) -> MergeReport:
    """Shared by merge-check and integrate: load the run's completed branches and check them."""
    from orchestrator.gitops.merge import completed_branches, merge_check
    from orchestrator.run.project import load_project

    project = load_project(project_root)
    rid, base_sha, branches = completed_branches(project.find_run(run_id).run_dir)
    return merge_check(project.root, onto or base_sha, branches, run_id=rid)


def render(report: MergeReport) -> list[str]:
    lines = [f"base {report.base_sha[:10]}: {len(report.branches)} completed branch(es)"]
    for check in report.branches:
        extra = f" ({', '.join(check.conflicted_files)})" if check.conflicted_files else ""
        lines.append(f"  {check.task_id:<20} {check.status:<8} {check.branch}{extra}")
    if report.conflicts:
        lines.append("conflicting pairs:")
        for pc in report.conflicts:
            lines.append(f"  {pc.a} <-> {pc.b}: {', '.join(pc.files)}")
    lines.append(f"merge order ({len(report.merge_order)} clean): {' -> '.join(report.merge_order) or '(none)'}")
    for r in report.rejected:
        files = f" [{', '.join(r.files)}]" if r.files else ""
        lines.append(f"  left out {r.task_id} ({r.branch}): {r.reason}{files}")
    return lines


@click.command("merge-check", epilog=EPILOG)
@click.argument("run_id", required=False)
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True,
              help="Any directory inside the target git repository.")
@click.option("--onto", metavar="REF", help="Check against this commit instead of the run's base.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handle_errors
def command(run_id: str | None, project_root: str, onto: str | None, as_json: bool) -> int:
    """Test each completed branch of a run against the base and each other (git merge-tree, in memory)."""
    report = check_run(project_root, run_id, onto)
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        click.echo("\n".join(render(report)))
    return 0 if report.clean else 1
