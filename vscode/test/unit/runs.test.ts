// Reading, tree building and status text against the files of real runs: one finished, one
// killed mid-way (kill -9 of the orchestrator), and the killed one again once a later run has
// replaced the registry (its tasks then come from its journal).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { layout, loadWorkspace, type RunState, type WorkspaceState } from '../../src/state/runs';
import { buildTree, statusBarText, type ViewNode } from '../../src/state/view';
import {
  makeSandbox, processGone, removeSandboxes, tempDir, prompt, pythonPath, registry, runToEnd, startRun, waitFor, waitForExit, waitForTask, type Sandbox,
} from '../fixtures/runs';

let box: Sandbox;
let release: string;
const seen: Record<'finished' | 'live' | 'killed' | 'later', WorkspaceState> = {} as never;
let killedRunId = '';
let cliVerdictOnKilled: { orphaned: boolean; resume_command: string | null };

const load = () => loadWorkspace(layout(box.repo));
const run = (state: WorkspaceState, runId: string): RunState => {
  const found = state.runs.find((r) => r.runId === runId);
  assert.ok(found, `${runId} is listed`);
  return found;
};
const statuses = (r: RunState) => Object.fromEntries(r.tasks.map((t) => [t.taskId, t.status]));

before(async () => {
  box = makeSandbox({
    'alpha.md': prompt('alpha', 'commit'),
    'beta.md': prompt('beta', 'fail'),
    'gamma.md': prompt('gamma', 'commit'),
    'delta.md': '',
    'epsilon.md': prompt('epsilon', 'commit'),
  });
  release = join(box.dir, 'release-delta');
  writeFileSync(join(box.repo, 'prompts', 'delta.md'), prompt('delta', `slow until=${release}`));

  assert.equal(runToEnd(box, ['alpha.md', 'beta.md']), 1);
  seen.finished = load();

  const orchestrator = await startRun(box, ['gamma.md', 'delta.md']);
  killedRunId = registry(box)!.run_id;
  await waitForTask(box, 'gamma', 'completed');
  const delta = await waitForTask(box, 'delta', 'running', 'agent');
  seen.live = load();

  // A crash: only the orchestrator dies; its WorkflowManager and agent are let finish on their own.
  process.kill(orchestrator.pid!, 'SIGKILL');
  await waitForExit(orchestrator);
  writeFileSync(release, '');
  await waitFor(() => delta.wm_pid && processGone(delta.wm_pid), "delta's WorkflowManager to end");
  seen.killed = load();
  const status = spawnSync(pythonPath(), ['-m', 'orchestrator', 'status', '--json', killedRunId], { cwd: box.repo, env: box.env, encoding: 'utf8' });
  cliVerdictOnKilled = JSON.parse(status.stdout);

  assert.equal(runToEnd(box, ['epsilon.md']), 0);
  seen.later = load();
});

after(removeSandboxes);

/** The commands package.json's tree context menu offers for a node (its `viewItem =~ /re/` clauses). */
function menuCommands(node: ViewNode): string[] {
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
  const items: { command: string; when: string }[] = manifest.contributes.menus['view/item/context'];
  return [...new Set(items
    .filter(({ when }) => new RegExp(/viewItem =~ \/(.+?)\/(?: |$)/.exec(when)![1]).test(node.contextValue))
    .map(({ command }) => command))].sort();
}

describe('a finished run', () => {
  it('lists its tasks with their final statuses and branches', () => {
    const [r] = seen.finished.runs;
    assert.equal(r.liveness, 'finished');
    assert.deepEqual(statuses(r), { alpha: 'completed', beta: 'failed' });
    assert.equal(r.tasks.find((t) => t.taskId === 'alpha')!.branch, 'gadugi/alpha');
    assert.ok(r.hasReport);
    assert.deepEqual(seen.finished.problems, []);
  });

  it('becomes a run node with task nodes, failures last and described', () => {
    const [node] = buildTree(seen.finished);
    assert.equal(node.kind, 'run');
    assert.equal(node.contextValue, 'run:finished,report');
    const beta = node.children.find((c) => c.label === 'beta')!;
    assert.match(beta.description, /^failed · .*\$\d+\.\d{4} · gadugi\/beta$/);
    assert.equal(beta.icon.id, 'error');
    assert.deepEqual(menuCommands(beta), ['gadugi.openAgentLog', 'gadugi.openWorktree', 'gadugi.showDiff']);
    assert.deepEqual(menuCommands(node), ['gadugi.mergeCheck', 'gadugi.openReport', 'gadugi.openTimeline']);
  });

  it('reads "0 agents running · 1 done · 1 failed" in the status bar', () => {
    assert.equal(statusBarText(seen.finished), '0 agents running · 1 done · 1 failed');
  });
});

describe('a live run', () => {
  it('comes first, live, with its running task cancellable', () => {
    const r = seen.live.runs[0];
    assert.equal(r.runId, killedRunId);
    assert.equal(r.liveness, 'live');
    assert.deepEqual(statuses(r), { gamma: 'completed', delta: 'running' });
    const [node] = buildTree(seen.live).filter((n) => n.kind === 'run');
    assert.match(node.contextValue, /^run:live/);
    const delta = node.children[0];
    assert.equal(delta.label, 'delta', 'running tasks first');
    assert.deepEqual(menuCommands(delta), ['gadugi.cancelTask', 'gadugi.openAgentLog', 'gadugi.openWorktree', 'gadugi.showDiff']);
    assert.deepEqual(menuCommands(node), ['gadugi.cancelRun', 'gadugi.mergeCheck']);
    assert.match(delta.description, /^running · agent · \d+s · /);
    assert.equal(statusBarText(seen.live), '1 agent running · 1 done · 0 failed');
  });

  it('lists the earlier finished run after it', () => {
    assert.deepEqual(seen.live.runs.map((r) => r.liveness), ['live', 'finished']);
  });
});

describe('a run whose orchestrator was killed', () => {
  it('is dead, offers Resume, and the CLI agrees it is orphaned', () => {
    const r = run(seen.killed, killedRunId);
    assert.equal(r.liveness, 'dead');
    assert.equal(cliVerdictOnKilled.orphaned, true);
    const node = buildTree(seen.killed).find((n) => n.runId === killedRunId)!;
    assert.deepEqual(menuCommands(node), ['gadugi.mergeCheck', 'gadugi.resumeRun']);
    assert.match(node.description, /orchestrator gone: resume to continue/);
    const delta = node.children.find((c) => c.label === 'delta') as ViewNode;
    assert.match(delta.description, /^running \(orchestrator gone\)/);
    assert.ok(!menuCommands(delta).includes('gadugi.cancelTask'), 'nothing to cancel without an orchestrator');
    assert.equal(statusBarText(seen.killed), '1 agent running · 1 done · 0 failed · orchestrator gone');
  });

  it('stays dead with the same tasks, from its journal, after a later run replaced the registry', () => {
    assert.notEqual(registry(box)!.run_id, killedRunId);
    const r = run(seen.later, killedRunId);
    assert.equal(r.liveness, 'dead');
    assert.deepEqual(statuses(r), statuses(run(seen.killed, killedRunId)));
    assert.equal(seen.later.runs[0].runId, killedRunId, 'a run that wants a resume is listed first');
    assert.deepEqual(statuses(seen.later.runs[1]), { epsilon: 'completed' });
  });
});

describe('defensive reading', () => {
  const copy = () => {
    const dir = tempDir('gadugi-copy-');
    cpSync(join(box.repo, '.gadugi'), join(dir, '.gadugi'), { recursive: true });
    return dir;
  };

  it('an unknown schema_version is one clear message, and the other runs still show', () => {
    const dir = copy();
    const file = join(dir, '.gadugi', 'monitoring', 'process_registry.json');
    const data = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...data, schema_version: 2 }));
    const state = loadWorkspace(layout(dir));
    assert.deepEqual(state.problems, [
      'process_registry.json has schema_version 2; this extension reads version 1: update the extension',
    ]);
    assert.equal(state.runs.length, 3);
    const [problem] = buildTree(state);
    assert.equal(problem.kind, 'problem');
  });

  it('a half-written status file is one message, not a crash', () => {
    const dir = copy();
    const file = join(dir, '.gadugi', 'monitoring', `${killedRunId}_status.json`);
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, Math.floor(text.length / 2)));
    const state = loadWorkspace(layout(dir));
    assert.deepEqual(state.problems, [`${killedRunId}_status.json is half-written or not JSON; it is read again on its next change`]);
    assert.ok(!state.runs.some((r) => r.runId === killedRunId));
  });

  it("a torn last journal line is skipped (a crash mid-append)", () => {
    const dir = copy();
    const journal = join(dir, '.gadugi', 'runs', killedRunId, 'events.jsonl');
    writeFileSync(journal, readFileSync(journal, 'utf8') + '{"ts":"2026-');
    const state = loadWorkspace(layout(dir));
    assert.deepEqual(state.problems, []);
    assert.deepEqual(statuses(run(state, killedRunId)), statuses(run(seen.killed, killedRunId)));
  });
});
