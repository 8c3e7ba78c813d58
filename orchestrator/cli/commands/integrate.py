"""`orchestrator integrate [RUN_ID] --into BRANCH [--pr]`: build the clean merge, open pull requests."""
from __future__ import annotations

import json

import click

from orchestrator.cli.error_handler import handle_errors
from orchestrator.errors import InputError

EPILOG = """\b
Examples:
  orchestrator integrate --into integration/run-1     # latest run, largest clean set
  orchestrator integrate RUN_ID --pr --pr-base main    # push each completed branch, one PR each
"""


@click.command("integrate", epilog=EPILOG)
@click.argument("run_id", required=False)
@click.option("--project-root", type=click.Path(file_okay=False, path_type=str), default=".", show_default=True,
              help="Any directory inside the target git repository.")
@click.option("--into", "into_branch", metavar="BRANCH", help="New branch to build; refused if it exists.")
@click.option("--onto", metavar="REF", help="Start from this commit instead of the run's base.")
@click.option("--pr", is_flag=True, help="Push each completed branch and open one pull request per branch with gh.")
@click.option("--pr-base", metavar="BRANCH", help="Base branch of the pull requests (default: the current branch).")
@click.option("--remote", default="origin", show_default=True, help="Remote to push to with --pr.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@handle_errors
def command(run_id: str | None, project_root: str, into_branch: str | None, onto: str | None, pr: bool,
            pr_base: str | None, remote: str, as_json: bool) -> int:
    """Merge a run's cleanly merging branches into a new branch (no worktree touched); --pr opens PRs."""
    from orchestrator.cli.commands.merge_check import check_run, render
    from orchestrator.gitops import git
    from orchestrator.gitops.merge import completed_branches, gh_unavailable_reason, integrate, open_pull_requests, task_titles
    from orchestrator.run.project import load_project

    if not into_branch and not pr:
        raise InputError("nothing to do: give --into BRANCH, --pr, or both")
    project = load_project(project_root)
    root = project.root
    output: dict[str, object] = {}
    code = 0
    if into_branch:
        report = check_run(str(root), run_id, onto)
        result = integrate(root, report, into_branch)
        output["integration"] = result.model_dump(mode="json")
        if not as_json:
            click.echo("\n".join(render(report)))
            click.echo(f"created {result.branch} at {result.head[:10]}: merged {len(result.merged)} branch(es)"
                       + (f", left out {len(result.rejected)}" if result.rejected else ""))
        code = 1 if result.rejected else 0
    if pr:
        reason = gh_unavailable_reason(root)
        if reason is not None:
            output["pull_requests_error"] = reason
            click.echo(reason, err=True)
            code = 1
        else:
            base = pr_base or git.current_branch(root)
            if not base:
                raise InputError("HEAD is detached: pass --pr-base BRANCH for the pull requests")
            run_dir = project.find_run(run_id).run_dir
            _, _, branches = completed_branches(run_dir)
            prs = open_pull_requests(root, branches, base_branch=base, titles=task_titles(run_dir), remote=remote)
            output["pull_requests"] = [p.model_dump(mode="json") for p in prs]
            if not as_json:
                for p in prs:
                    click.echo(f"{p.task_id}: {p.url}" if p.url else f"{p.task_id}: {p.error}")
            code = 1 if any(p.error for p in prs) else code
    if as_json:
        click.echo(json.dumps(output, indent=2))
    return code
