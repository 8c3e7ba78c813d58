// Entry point: watches the workspace repository's monitoring directory, shows its runs and
// tasks in a view and the active run in the status bar, and acts through the orchestrator CLI.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { CliError, findCli, INSTALL_HINT, lastErrorLine, runCli, startDetached } from './cli';
import { GIT_SCHEME, GitContentProvider, showBranchDiff } from './editor/gitDiff';
import { RunsTreeProvider } from './editor/tree';
import { layout, loadWorkspace, runDir, taskDir, type Layout, type WorkspaceState } from './state/runs';
import { buildTree, statusBarText, type ViewNode } from './state/view';

// The registry coalesces heartbeats into one write per 0.25 s: at most one refresh per such window.
const REFRESH_THROTTLE_MS = 250;
// Files cannot say when an orchestrator dies (nothing writes): an unfinished run's process is
// checked this often. Cheap (a pid probe), and only while some run is unfinished.
const LIVENESS_CHECK_MS = 3000;

export function activate(context: vscode.ExtensionContext): void {
  const folder = vscode.workspace.workspaceFolders?.[0];
  const tree = new RunsTreeProvider();
  const view = vscode.window.createTreeView('gadugi.runs', { treeDataProvider: tree, showCollapseAll: true });
  view.onDidExpandElement((e) => tree.remember(e.element, true));
  view.onDidCollapseElement((e) => tree.remember(e.element, false));
  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  status.command = 'gadugi.focusView';
  status.name = 'Gadugi agents';
  const output = vscode.window.createOutputChannel('Gadugi');
  context.subscriptions.push(view, status, output);
  context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(GIT_SCHEME, new GitContentProvider()));

  const config = () => vscode.workspace.getConfiguration('gadugi');
  const paths = (): Layout | undefined =>
    folder ? layout(folder.uri.fsPath, config().get<string>('monitoringDir') || '.gadugi/monitoring') : undefined;

  let state: WorkspaceState = { runs: [], problems: [] };
  let shownProblems = new Set<string>();
  const refresh = () => {
    const p = paths();
    if (!p) return;
    state = loadWorkspace(p, { recentRuns: config().get<number>('recentRuns') ?? 10 });
    tree.update(buildTree(state));
    const text = statusBarText(state);
    if (text) {
      status.text = `$(hubot) ${text}`;
      status.tooltip = `Gadugi: ${state.runs[0].runId} (${state.runs[0].liveness}); click to show the runs`;
      status.show();
    } else {
      status.hide();
    }
    // One message per problem while it lasts, not one per refresh.
    const now = new Set(state.problems);
    for (const message of now) if (!shownProblems.has(message)) void vscode.window.showWarningMessage(`Gadugi: ${message}`);
    shownProblems = now;
  };

  let timer: NodeJS.Timeout | undefined;
  // A throttle, not a debounce: while agents run the files change without pause, and a debounce
  // would wait for a quiet moment that never comes.
  const scheduleRefresh = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      refresh();
    }, REFRESH_THROTTLE_MS);
  };

  let watchers: vscode.Disposable[] = [];
  const watch = () => {
    watchers.forEach((w) => w.dispose());
    watchers = [];
    const p = paths();
    if (!p || !folder) return;
    // The monitoring directory drives the view; the .gadugi one notices it appear and the run
    // lock's holder change; the runs one notices a report being written.
    for (const [base, pattern] of [
      [p.monitoringDir, '*.json'],
      [p.gadugiDir, '{active_run.json,monitoring,runs}'],
      [p.runsDir, '*/report.md'],
    ] as const) {
      const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(base), pattern));
      watcher.onDidChange(scheduleRefresh);
      watcher.onDidCreate(scheduleRefresh);
      watcher.onDidDelete(scheduleRefresh);
      watchers.push(watcher);
    }
  };
  watch();
  refresh();
  const liveness = setInterval(() => {
    if (state.runs.some((r) => r.liveness === 'live' || r.liveness === 'dead')) refresh();
  }, LIVENESS_CHECK_MS);
  context.subscriptions.push(
    { dispose: () => clearInterval(liveness) },
    { dispose: () => watchers.forEach((w) => w.dispose()) },
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('gadugi')) {
        watch();
        refresh();
      }
    }),
  );

  /** The CLI, or undefined after telling the user how to install it. */
  const cli = (): string | undefined => {
    const found = findCli(config().get<string>('orchestratorPath') ?? '');
    if (!found) {
      const configured = config().get<string>('orchestratorPath');
      const message = configured ? `gadugi.orchestratorPath "${configured}" is not an executable file. ${INSTALL_HINT}` : INSTALL_HINT;
      void vscode.window.showErrorMessage(message, 'Open Settings').then((choice) => {
        if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', 'gadugi.orchestratorPath');
      });
    }
    return found ?? undefined;
  };

  /** Run a short CLI command; a failure becomes a notification with its one-line error. */
  const act = async (what: string, args: string[]): Promise<string | undefined> => {
    const bin = cli();
    const p = paths();
    if (!bin || !p) return undefined;
    output.appendLine(`$ ${bin} ${args.join(' ')}`);
    try {
      const result = await runCli(bin, [...args, '--project-root', p.root], p.root);
      output.append(result.stdout + result.stderr);
      scheduleRefresh();
      return result.stdout;
    } catch (err) {
      const message = err instanceof CliError ? err.message : String(err);
      if (err instanceof CliError) output.append(err.result.stdout + err.result.stderr);
      void vscode.window.showErrorMessage(`Gadugi: ${what} failed: ${message}`);
      return undefined;
    }
  };

  /** Start a long CLI command (run, resume) in the background; its output goes to the extension's log folder. */
  const start = (what: string, args: string[]) => {
    const bin = cli();
    const p = paths();
    if (!bin || !p) return;
    const logDir = context.logUri.fsPath;
    mkdirSync(logDir, { recursive: true });
    const log = join(logDir, `${what.replace(/\W+/g, '-')}-${Date.now()}.log`);
    output.appendLine(`$ ${bin} ${args.join(' ')}   (output: ${log})`);
    startDetached(bin, [...args, '--plain', '--project-root', p.root], p.root, log, (code) => {
      scheduleRefresh();
      if (code === 0) return;
      // Exit 1 is also "some task failed", which the view shows; a run that never started says why here.
      if (code === 1 && !readFileSync(log, 'utf8').split('\n').some((l) => l.startsWith('error:'))) return;
      const error = lastErrorLine(readFileSync(log, 'utf8'));
      void vscode.window.showErrorMessage(`Gadugi: ${what} failed: ${error ?? `exit code ${code}`}`, 'Show Output').then((choice) => {
        if (choice) void vscode.window.showTextDocument(vscode.Uri.file(log));
      });
    });
    void vscode.window.showInformationMessage(`Gadugi: ${what} started.`);
  };

  const open = async (path: string, missing: string) => {
    if (!existsSync(path)) {
      void vscode.window.showWarningMessage(`Gadugi: ${missing}`);
      return;
    }
    await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(path));
  };

  const runIdOf = (node?: ViewNode) => node?.runId ?? state.runs[0]?.runId;

  const commands: Record<string, (...args: never[]) => unknown> = {
    'gadugi.refresh': () => refresh(),
    'gadugi.focusView': () => vscode.commands.executeCommand('gadugi.runs.focus'),
    'gadugi.cancelTask': async (node: ViewNode) => {
      if (!node?.task || !node.runId) return;
      if (await act(`cancel ${node.task.taskId}`, ['cancel', '--run', node.runId, node.task.taskId]) !== undefined) {
        void vscode.window.showInformationMessage(`Gadugi: cancelling ${node.task.taskId}.`);
      }
    },
    'gadugi.cancelRun': async (node?: ViewNode) => {
      const runId = runIdOf(node);
      if (runId) await act(`cancel ${runId}`, ['cancel', '--all', '--run', runId]);
    },
    'gadugi.resumeRun': (node?: ViewNode) => {
      const runId = runIdOf(node);
      if (runId) start(`resume ${runId}`, ['resume', runId]);
    },
    'gadugi.mergeCheck': async (node?: ViewNode) => {
      const runId = runIdOf(node);
      if (!runId) return;
      const stdout = await act(`merge-check ${runId}`, ['merge-check', runId]);
      if (stdout === undefined) return;
      const doc = await vscode.workspace.openTextDocument({ content: stdout, language: 'markdown' });
      await vscode.window.showTextDocument(doc, { preview: true });
    },
    'gadugi.openReport': async (node?: ViewNode) => {
      const p = paths();
      const runId = runIdOf(node);
      if (p && runId) await open(join(runDir(p, runId), 'report.md'), `${runId} has no report yet (it is written when the run ends).`);
    },
    'gadugi.openTimeline': async (node?: ViewNode) => {
      const p = paths();
      const runId = runIdOf(node);
      if (p && runId) await open(join(runDir(p, runId), 'timeline.svg'), `${runId} has no timeline yet (it is written when the run ends).`);
    },
    'gadugi.openWorktree': async (node: ViewNode) => {
      if (!node?.task?.worktree) return;
      if (!existsSync(node.task.worktree)) {
        void vscode.window.showWarningMessage(`Gadugi: the worktree of ${node.task.taskId} was removed (${node.task.worktree}).`);
        return;
      }
      await vscode.commands.executeCommand('vscode.openFolder', vscode.Uri.file(node.task.worktree), { forceNewWindow: true });
    },
    'gadugi.openAgentLog': async (node: ViewNode) => {
      const p = paths();
      if (!p || !node?.task || !node.runId) return;
      const dir = taskDir(p, node.runId, node.task.taskId);
      const log = ['agent.jsonl', 'workflow_manager.log', 'agent.stderr.log'].map((f) => join(dir, f)).find((f) => existsSync(f));
      await open(log ?? join(dir, 'agent.jsonl'), `${node.task.taskId} has no agent log yet.`);
    },
    'gadugi.showDiff': async (node: ViewNode) => {
      const p = paths();
      if (!p || !node?.task?.branch) return;
      try {
        await showBranchDiff(p.root, node.task.baseSha || 'HEAD', node.task.branch, node.task.taskId);
      } catch (err) {
        void vscode.window.showErrorMessage(`Gadugi: diff of ${node.task.taskId} failed: ${(err as Error).message}`);
      }
    },
    'gadugi.runPrompts': (clicked?: vscode.Uri, selected?: vscode.Uri[]) => {
      const files = (selected?.length ? selected : clicked ? [clicked] : []).map((u) => u.fsPath);
      if (files.length) start(`run of ${files.length} prompt file(s)`, ['run', ...files]);
    },
  };
  for (const [id, handler] of Object.entries(commands)) {
    context.subscriptions.push(vscode.commands.registerCommand(id, handler as (...args: unknown[]) => unknown));
  }
}

export function deactivate(): void {}
