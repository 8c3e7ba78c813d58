"""`python -m benchmarks [--quick] [--cache-dir DIR] [--out FILE]`: run every benchmark, write the report.

Each figure is a ratio against a floor measured in the same run on the same machine.
"""
from __future__ import annotations

import argparse
import datetime
import pickle
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from benchmarks import batch, cli_start, dag_run, first_wave, overhead, schedule, setup_cost, svg
from benchmarks.common import describe_machine, median

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


# Sections from the benchmarks not run here (torture, checkpoint, sandbox cost, plan scale) follow
# this line in the report; rewriting the report keeps them.
KEPT_MARKER = "<!-- measured separately: the sections below come from the benchmarks that are not part of "


def _kept_sections(report: Path) -> str:
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    at = text.find(KEPT_MARKER)
    return "" if at < 0 else "\n" + text[at:]


def _verdict(value: float, target: float) -> str:
    if value <= target:
        return f"PASS ({value / target:.2f} of the target)"
    over = value / target
    return f"MISS by {(over - 1) * 100:.0f} %" if over < 2 else f"MISS by {over:.1f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small repos, 10 s idle run, few graphs: a smoke run")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "gadugi-bench-cache",
                        help="where generated repositories are kept between runs (never inside the repo)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse section results saved in --cache-dir by an earlier, interrupted run")
    parser.add_argument("--out", type=Path, default=None, help="report path (default docs/benchmarks.md; "
                        "docs/benchmarks-quick.md with --quick)")
    args = parser.parse_args(argv)
    quick = args.quick
    out = args.out or REPO / "docs" / ("benchmarks-quick.md" if quick else "benchmarks.md")
    if args.cache_dir.resolve().is_relative_to(REPO):
        parser.error("--cache-dir must be outside the repository")
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    machine = describe_machine(args.cache_dir)
    sizes = [2_000, 5_000] if quick else [5_000, 30_000, 100_000]
    reps = 2 if quick else 3

    def say(msg: str) -> None:
        print(f"[{time.time() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    saved = args.cache_dir / ("sections-quick.pickle" if quick else "sections-full.pickle")
    done: dict[str, object] = {}
    if args.resume and saved.exists():
        done = pickle.loads(saved.read_bytes())

    def section(name: str, fn: Callable[[], T]) -> T:
        if name not in done:
            say(name)
            done[name] = fn()
            saved.write_bytes(pickle.dumps(done))
        else:
            say(f"{name}: reused from {saved}")
        return done[name]  # type: ignore[return-value]

    sched = section("schedule simulations", lambda: schedule.run_schedule(graphs=3 if quick else 20))
    setups = section("worktree setup by repository size",
                     lambda: [setup_cost.measure(args.cache_dir, n, reps) for n in sizes])
    plans = section("planning by batch size", lambda: batch.run_planning([10, 100, 1000], ["mixed"], 0)
                    + batch.run_planning([100, 1000] if not quick else [100], ["all-share-one-file", "scopes"], 300))
    regs = section("registry under 16 writers", lambda: [batch.run_registry(64, 16, 50 if quick else 200),
                                                         batch.run_registry(1000, 16, 25 if quick else 100)])
    idle_s = 10.0 if quick else 60.0
    with tempfile.TemporaryDirectory(prefix="gadugi-bench-") as tmp:
        noop = section("16 no-op tasks at k=4 vs xargs -P 4", lambda: overhead.run_noop(Path(tmp), 16, 4, 1 if quick else 3))
        idle = section(f"16 agents sleeping {idle_s:g}s", lambda: overhead.run_idle(Path(tmp), 16, idle_s))
        wave_files = 2_000 if quick else 20_000
        wave = section(f"first wave on {wave_files} files, k=4", lambda: first_wave.measure(
            args.cache_dir, Path(tmp), wave_files, 4, 4, 1 if quick else 3))
        # One run: the time to the first agents where a checkout is most of it (not in --quick).
        wave_big = None if quick else section("first wave on 100000 files, k=4", lambda: first_wave.measure(
            args.cache_dir, Path(tmp), 100_000, 4, 4, 1))
        dag = section("a 24-task graph, real run at k=4", lambda: dag_run.run_dag(Path(tmp), 1 if quick else 3))
        starts = section("CLI cold start", lambda: cli_start.run_cli_start(Path(tmp), 5))
    say("writing report")
    # The measuring time, kept with the results so a re-render (--resume) reports it, not its own.
    if "took" not in done:
        done["took"] = time.time() - started
        saved.write_bytes(pickle.dumps(done))
    took = float(done["took"])  # type: ignore[arg-type]
    report = render(machine, sched, setups, plans, regs, noop, idle, wave, quick, took,
                    PerformanceII(dag=dag, starts=starts, wave_big=wave_big))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + _kept_sections(out))
    svg_path = out.with_suffix(".svg")
    svg_path.write_text(plot(setups, plans))
    say(f"wrote {out} and {svg_path}")
    return 0


def plot(setups: list[setup_cost.SetupResult], plans: list[batch.PlanResult]) -> str:
    size_series = [
        ("fresh git worktree add (floor)", [(s.files, median(s.git_add)) for s in setups]),
        ("WorktreeManager.create", [(s.files, median(s.create)) for s in setups]),
        ("pool recycle (acquire)", [(s.files, median(s.acquire)) for s in setups]),
    ]
    mixed = [p for p in plans if p.shape == "mixed" and p.seconds]
    shared = [p for p in plans if p.shape != "mixed" and p.seconds]
    batch_series = [("planning, mixed prompts", [(p.prompts, p.seconds or 0) for p in mixed])]
    if shared:
        batch_series.append(("planning, all share one file", [(p.prompts, p.seconds or 0) for p in shared]))
    return svg.figure([
        svg.panel("Worktree setup vs repository size", "files in the repository", "seconds per task", size_series, 0),
        svg.panel("Planning time vs batch size", "prompt files", "seconds", batch_series, svg.W),
    ])


@dataclass
class PerformanceII:
    """What the second round of performance work is measured by (a real run's schedule, start-up)."""

    dag: dag_run.DagResult
    starts: cli_start.StartResult
    wave_big: first_wave.FirstWaveResult | None = None  # the first wave on the largest repository


def render_performance_ii(perf: PerformanceII, noop: overhead.OverheadResult, plans: list[batch.PlanResult]) -> list[str]:
    L = ["\n### A real run against its schedule, and start-up\n",
         "| target | measured | floor it is measured against | verdict |\n|---|---|---|---|"]
    dag = perf.dag
    ratio = median(dag.ratios)
    L.append(f"| {dag.tasks}-task graph at k={dag.slots} (agents of 1-4 s): real makespan ≤ 1.05 × the lower bound "
             f"from the tasks' own slot times | median {ratio:.3f} ({median(dag.makespans):.1f} s vs "
             f"{median(dag.bounds):.1f} s; runs {[round(r, 3) for r in dag.ratios]}) | max(critical path, work ÷ "
             f"slots, scope chain): {', '.join(sorted(set(dag.bound_kinds)))} | {_verdict(ratio, 1.05)} |")
    one_file = next((p for p in plans if p.prompts == 1000 and p.shape == "all-share-one-file" and p.seconds), None)
    if one_file is not None and one_file.seconds is not None:
        L.append(f"| plan of 1000 prompts all touching one file ≤ 0.5 s | {one_file.seconds:.3f} s, "
                 f"{one_file.conflict_edges} conflict edges | the 0.5 s target | {_verdict(one_file.seconds, 0.5)} |")
    if noop.traced:
        traced = median(noop.traced)
        L.append(f"| tracing on (`--otel`, exporting to an OTLP/HTTP sink on 127.0.0.1), the 16 no-op tasks | "
                 f"{traced:.2f} s ({(traced / median(noop.orchestrator) - 1) * 100:+.0f} %; "
                 f"{median([float(x) for x in noop.exports]):.0f} export requests) | the same run untraced: "
                 f"{median(noop.orchestrator):.2f} s | measured, no target |")
    big = perf.wave_big
    if big is not None:
        ratio_big = median(big.first_run) / median(big.git_add)
        L.append(f"| time to the first agent (`run` → its start): a small repository (16 no-op tasks) and "
                 f"{big.files // 1000}k files | {median(noop.first_agent):.2f} s and {median(big.first_agent):.2f} s "
                 f"(the {big.slots}th agent at {median(big.first_run):.2f} s = {ratio_big:.2f}× the floor; "
                 f"second run {median(big.second_run):.2f} s) | {big.slots} parallel `git worktree add` of "
                 f"{big.files // 1000}k files: {median(big.git_add):.2f} s (one run each: the page cache moves "
                 f"both) | measured, no target |")
    starts = perf.starts
    version = starts.median("--version")
    L.append(f"| `orchestrator --version` cold (median of {len(starts.bare)}) ≤ 0.15 s | {version:.3f} s "
             f"(`--help` {starts.median('--help'):.3f} s, `status --json` {starts.median('status --json'):.3f} s) | "
             f"bare interpreter {median(starts.bare):.3f} s | {_verdict(version, 0.15)} |")
    L.append(f"\nThe graph's tasks held a slot {median(dag.overhead):.2f} s longer than their agent slept (median: "
             "WorkflowManager, worktree, commit, adoption); the whole CLI, planning and the merge check included, "
             f"took {median(dag.wall):.1f} s. `status --json` reads the registry through its pydantic models, "
             "which is most of what it costs over `--version`.")
    return L


def render(machine: object, sched: list[schedule.ScheduleResult], setups: list[setup_cost.SetupResult],
           plans: list[batch.PlanResult], regs: list[batch.RegistryResult], noop: overhead.OverheadResult,
           idle: overhead.IdleResult, wave: first_wave.FirstWaveResult, quick: bool, took: float,
           perf: PerformanceII) -> str:
    L: list[str] = []
    cmd = "python -m benchmarks" + (" --quick" if quick else "")
    L.append("# Benchmarks\n")
    L.append(f"Generated by `.venv/bin/{cmd}` on {datetime.date.today()} in {took / 60:.1f} min "
             f"({'QUICK smoke run: small repos, short idle window' if quick else 'full run'}). "
             "Every figure is a ratio against a floor measured in the same run. See `benchmarks/README.md`.\n")
    L.append("## Machine\n\n| fact | value |\n|---|---|")
    for key, value in machine.rows:  # type: ignore[attr-defined]
        L.append(f"| {key} | {value} |")
    # -- targets
    ratios = [r.makespan / r.lower_bound for r in sched]
    plan_ratios = [r.makespan / r.plan_bound for r in sched]
    wave_ratios = [r.wave / r.lower_bound for r in sched]
    big = setups[-1]
    noop_ratio = median(noop.orchestrator) / median(noop.shell)
    plan1000 = next((p for p in plans if p.prompts == 1000 and p.shape == "mixed"), None)
    reg = regs[0]
    L.append("\n## Targets\n")
    L.append("| target | measured | floor it is measured against | verdict |\n|---|---|---|---|")
    wave_first = median(wave.first_run) / median(wave.git_add)
    wave_second = median(wave.second_run) / median(wave.git_add)
    L.append(f"| a fresh WorktreeManager.create ≤ 1.0 × fresh add, ~{big.files // 1000}k files | "
             f"{median(big.create):.3f} s = {big.create_ratio:.2f}× | `git worktree add` {median(big.git_add):.3f} s | "
             f"{_verdict(big.create_ratio, 1.0)} |")
    L.append(f"| first wave, {wave.files // 1000}k files, k={wave.slots}: run → {wave.slots}th agent ≤ 1.0 × "
             f"{wave.slots} parallel adds | {median(wave.first_run):.2f} s = {wave_first:.2f}× | "
             f"{wave.slots} parallel `git worktree add` {median(wave.git_add):.2f} s | {_verdict(wave_first, 1.0)} |")
    L.append(f"| the same, second run (pool kept) ≤ 0.2 × | {median(wave.second_run):.2f} s = {wave_second:.2f}× | "
             f"the same floor | {_verdict(wave_second, 0.2)} |")
    L.append(f"| makespan ≤ 1.05 × lower bound | median {statistics.median(ratios):.3f}, worst {max(ratios):.3f} "
             f"over {len(sched)} schedules | max(critical path, work ÷ slots, per-file chain) | "
             f"{_verdict(statistics.median(ratios), 1.05)} (median); worst {_verdict(max(ratios), 1.05)} |")
    shared_ratio = median(noop.shared) / median(noop.shell)
    L.append(f"| 16 no-op `claude` tasks at k=4 ≤ 2 × shell pipeline (aim 1.5), a config directory per agent "
             f"(the default) | {median(noop.orchestrator):.2f} s = {noop_ratio:.1f}× | "
             f"`xargs -P 4` add+commit+remove: {median(noop.shell):.2f} s | {_verdict(noop_ratio, 2.0)} |")
    L.append(f"| the same, ≤ 4 × with `--claude-config shared` (launches spaced 0.5 s, jittered) | "
             f"{median(noop.shared):.2f} s = {shared_ratio:.1f}× | the same | {_verdict(shared_ratio, 4.0)} |")
    L.append(f"| setup on ~{big.files // 1000}k files ≤ 0.2 × fresh add (warm pool) | {median(big.acquire):.3f} s = "
             f"{big.ratio:.3f}× | `git worktree add` {median(big.git_add):.3f} s | {_verdict(big.ratio, 0.2)} |")
    if plan1000 and plan1000.seconds is not None:
        L.append(f"| 1000 prompts planned ≤ 2 s | {plan1000.seconds:.2f} s | the 2 s budget | "
                 f"{_verdict(plan1000.seconds, 2.0)} |")
    else:
        L.append("| 1000 prompts planned ≤ 2 s | not run (`--quick`) | | |")
    L.append(f"| registry update p99 ≤ 20 ms, 16 writers | p99 {reg.p99 * 1000:.2f} ms (p50 {reg.p50 * 1000:.2f} ms, "
             f"max {reg.max * 1000:.0f} ms); coalesced as in a run: in the file within 0.25 s | "
             f"one uncontended synchronous update {reg.single_p50 * 1000:.1f} ms | {_verdict(reg.p99, 0.020)} |")
    L.append(f"| orchestrator ≤ 80 MB peak RSS | {idle.peak_rss / 2**20:.1f} MB | 80 MB | "
             f"{_verdict(idle.peak_rss / 2**20, 80)} |")
    L.append(f"| orchestrator ≤ 3 % of one core, 16 agents running | {idle.steady_cpu_percent:.2f} % over "
             f"{idle.steady_seconds:.0f} s with all 16 running | 3 % | {_verdict(idle.steady_cpu_percent, 3)} |")
    L.extend(render_performance_ii(perf, noop, plans))
    L.append("\n### Why the misses\n")
    L.append(f"* **Makespan.** The median graph is within the target ({statistics.median(ratios):.3f}×); the worst "
             f"({max(ratios):.3f}×) are many-slot graphs where most tasks share a few files, so the per-file chain "
             "is the bound. Conflicts are mutual exclusion at run time (neither waits for a partner that is not ready; "
             "before that change the median was 1.060×), but the greedy list scheduler ranks ready tasks by priority "
             "and longest remaining path, not by how much of a shared file's chain is left, so on those graphs a long "
             "task on a busy file can start after shorter ones. A wave-by-wave schedule of the same graphs is "
             f"{statistics.median(wave_ratios):.3f}× (median).")
    L.append(f"* **No-op overhead.** The shell floor pays only git. Each orchestrated task also has a "
             "WorkflowManager (forked from a launcher that imported our code once, in its own session so tasks "
             "outlive the orchestrator), the agent (here a shell script), its prompt, request and result files, "
             "fsynced registry updates, and the run ends with a merge check (one diff per branch). Where the time "
             "goes is in the phase table below. The agent is a shell script named `claude`; by default each gets its "
             "own Claude Code config directory, so launches are not spaced; sharing one (`--claude-config shared`) "
             f"spaces them 0.5 s apart: {median(noop.orchestrator):.2f} s vs {median(noop.shared):.2f} s.")
    L.append(f"* **No-op targets (≤ 2×, ≤ 4× with spacing).** The floor does 16 checkouts and commits in "
             f"{median(noop.shell):.2f} s. Before its first agent the run pays {median(noop.first_agent):.2f} s "
             "(the interpreter and our imports, the plan, the run's files, the launcher's fork, the first worktree), "
             "and after the last one the merge check and the report: fixed costs that alone exceed 2× the floor, "
             "so no design that plans, records and checks a run in a Python process reaches it on this "
             "shell-sized floor; per task, the phase table shows what is left (setup = the worktree, the agent = "
             "the stand-in's own git commit). With `--claude-config shared` the spacing alone is 16 × 0.5 s, "
             "20× the floor: the answer to it is the config directory per agent, now the default, not a smaller "
             "spacing.")
    dag = perf.dag
    L.append(f"* **The real graph.** Between a slot freeing and the next task running the engine takes "
             f"{median(dag.launch_gap) * 1000:.0f} ms (median, from the journal), so the gap to the bound is the "
             f"schedule's: the same graph with the same slot times through the engine on the virtual clock gives "
             f"{median(dag.virtual):.3f}× (the greedy list scheduler's price on this graph), against "
             f"{median(dag.ratios):.3f}× for real. Across the {len(sched)} simulated graphs its median is "
             f"{statistics.median(ratios):.3f}×. An order chosen with hindsight does better: the best of 2000 "
             f"random-priority list schedules with the slot times known in advance is {median(dag.hindsight):.3f}×. "
             "No run knows them (an agent's time is not known until it ends), and the engine ranks by "
             "priority and remaining dependency path, which is what it can know.")
    L.append(f"* **Registry.** Updates are measured as a run makes them: heartbeat-level changes apply in memory "
             "and reach `process_registry.json` within 0.25 s (status changes are written at once), because the file "
             "holds every task and rewriting it per heartbeat made an update cost grow with the task count. The rare "
             "update that finds the window expired writes synchronously and waits for the lock; that is the max "
             f"column ({reg.max * 1000:.0f} ms with 16 writers hammering 64 tasks). A synchronous update costs "
             f"{reg.single_p50 * 1000:.1f} ms uncontended (temp file, fsync, rename).")
    # -- details
    L.append("\n## Schedule (virtual clock, real ExecutionEngine and TaskAnalyzer)\n")
    L.append("| tasks | slots | dep edges | conflict edges | makespan ÷ lower bound | bound | makespan ÷ plan bound "
             "| wave-by-wave ÷ lower bound |\n|---|---|---|---|---|---|---|---|")
    for r in sched:
        L.append(f"| {r.n} | {r.slots} | {r.edges_dep} | {r.edges_conflict} | {r.makespan / r.lower_bound:.3f} | "
                 f"{r.bound_kind} | {r.makespan / r.plan_bound:.3f} | {r.wave / r.lower_bound:.3f} |")
    L.append(f"\nMedians: engine {statistics.median(ratios):.3f}× the lower bound, {statistics.median(plan_ratios):.3f}× "
             f"the plan bound (critical path through the analyzer's oriented conflict edges); a wave-by-wave "
             f"schedule {statistics.median(wave_ratios):.3f}×.")
    by_slots: dict[int, list[float]] = {}
    for r in sched:
        by_slots.setdefault(r.slots, []).append(r.makespan / r.lower_bound)
    L.append("By slots (median makespan ÷ lower bound): " + ", ".join(
        f"k={k}: {statistics.median(v):.3f}" for k, v in sorted(by_slots.items())) + ".")
    L.append("\n## Worktree setup by repository size (seconds, median)\n")
    L.append("| files | `git worktree add` | `git worktree remove` | WorktreeManager.create | remove | pool acquire "
             "| pool release | acquire ÷ add | create ÷ add | sparse create (one dir) | sparse ÷ add |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|")
    for s in setups:
        L.append(f"| {s.files} | {median(s.git_add):.3f} | {median(s.git_remove):.3f} | {median(s.create):.3f} | "
                 f"{median(s.remove):.3f} | {median(s.acquire):.3f} | {median(s.release):.3f} | {s.ratio:.3f} | "
                 f"{s.create_ratio:.2f} | {median(s.sparse):.3f} | {s.sparse_ratio:.3f} |")
    L.append("\nRaw samples (s): " + "; ".join(
        f"{s.files}: add {[round(x, 3) for x in s.git_add]}, create {[round(x, 3) for x in s.create]}, "
        f"acquire {[round(x, 3) for x in s.acquire]}" for s in setups))
    L.append("\nA create checks out with parallel workers (`checkout.workers`, gitops/git.py): writing many small "
             "files waits on the filesystem, so several writers beat git's sequential checkout even on few cores.")
    L.append(f"\n## First wave ({wave.files} files, k={wave.slots}, {wave.tasks} one-commit tasks)\n")
    L.append("| run | run → {k}th agent start (s) | ÷ {k} parallel adds | median setup phase (s) |\n"
             "|---|---|---|---|".replace("{k}", str(wave.slots)))
    L.append(f"| first (pool warmed in the background) | {median(wave.first_run):.2f} | {wave_first:.2f} | "
             f"{median(wave.setup_first):.2f} |")
    L.append(f"| second (pool kept) | {median(wave.second_run):.2f} | {wave_second:.2f} | "
             f"{median(wave.setup_second):.2f} |")
    L.append(f"\nFloor: {wave.slots} parallel plain `git worktree add` {[round(x, 2) for x in wave.git_add]} s; "
             f"first runs {[round(x, 2) for x in wave.first_run]}, second runs {[round(x, 2) for x in wave.second_run]}.")
    L.append("\n## Batch size\n")
    L.append("| prompts | shape | planning (ls-files + analyze + plan_names) | edges | conflict edges |\n"
             "|---|---|---|---|---|")
    for p in plans:
        took_s = f"{p.seconds:.3f} s" if p.seconds is not None else f"> {p.limit:g} s (stopped)"
        L.append(f"| {p.prompts} | {p.shape} | {took_s} | {p.edges if p.edges >= 0 else '?'} | "
                 f"{p.conflict_edges if p.conflict_edges >= 0 else '?'} |")
    L.append("\n| registry tasks | writers | updates | p50 | p99 | max | one uncontended update (p50) |\n"
             "|---|---|---|---|---|---|---|")
    for g in regs:
        L.append(f"| {g.tasks} | {g.writers} | {g.updates} | {g.p50 * 1000:.1f} ms | {g.p99 * 1000:.1f} ms | "
                 f"{g.max * 1000:.1f} ms | {g.single_p50 * 1000:.2f} ms |")
    L.append(f"\nIdle run: 16 agents `sleep {idle.sleep:g}`, wall {idle.wall:.1f} s; orchestrator CPU "
             f"{idle.cpu_total:.2f} s in total, {idle.steady_cpu_percent:.2f} % of a core while all 16 ran; peak RSS "
             f"{idle.peak_rss / 2**20:.1f} MB. The 16 WorkflowManagers together peaked at "
             f"{idle.peak_wm_rss_total / 2**20:.0f} MB RSS ({idle.peak_wm_uss_total / 2**20:.0f} MB of it their own, "
             f"not shared with the launcher they were forked from: "
             f"{idle.peak_wm_uss_total / 2**20 / max(idle.agents, 1):.1f} MB each) and used "
             f"{idle.wm_cpu_percent:.2f} % of a core each.")
    if noop.phases:
        L.append("\n### Where a no-op task's time goes (median seconds per phase, from the run's journal)\n")
        names = list(noop.phases[0])
        L.append("| run | " + " | ".join(names) + " | CLI start → first agent |\n|" + "---|" * (len(names) + 2))
        for i, (row, first) in enumerate(zip(noop.phases, noop.first_agent, strict=True), 1):
            L.append(f"| {i} | " + " | ".join(f"{row.get(n, float('nan')):.3f}" for n in names) + f" | {first:.2f} |")
        L.append("\nPhases (benchmarks/phases.py): queued = waiting for a slot or a predecessor; spawn = the "
                 "WorkflowManager forked; setup = worktree and hooks; agent; commit; checks; report; adopt = the "
                 "engine judging the result.")
    L.append(f"\nNo-op runs (s): orchestrator {[round(x, 2) for x in noop.orchestrator]}, with --claude-config shared "
             f"{[round(x, 2) for x in noop.shared]}, shell {[round(x, 2) for x in noop.shell]}.")
    L.append("\n![overhead vs repository size and batch size](" + ("benchmarks-quick.svg" if quick else "benchmarks.svg")
             + ")\n")
    L.append("## Reproduce\n\nFrom the project root, after `./run_tests.sh` has set up `.venv`:\n\n```sh\n"
             + shlex.join([".venv/bin/python", "-m", "benchmarks"] + (["--quick"] if quick else [])) + "\n```\n")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
