// What the view and the status bar show, as plain data (no editor API), so it is tested without
// an editor: one node per run, one per task under it, and the status bar's line.
import type { RunState, TaskState, TaskStatus, WorkspaceState } from './runs';

export interface IconSpec {
  /** A codicon id. */
  id: string;
  /** A theme colour id, or none. */
  color?: string;
}

export interface ViewNode {
  kind: 'run' | 'task' | 'problem';
  id: string;
  label: string;
  description: string;
  tooltip: string;
  icon: IconSpec;
  /** Matched by the `when` clauses of package.json's menus: `run:live,report` or `task:active,branch,worktree`. */
  contextValue: string;
  runId?: string;
  task?: TaskState;
  children: ViewNode[];
}

const STATUS_ICONS: Record<TaskStatus, IconSpec> = {
  queued: { id: 'clock' },
  running: { id: 'sync~spin', color: 'charts.blue' },
  completed: { id: 'pass', color: 'testing.iconPassed' },
  failed: { id: 'error', color: 'testing.iconFailed' },
  timeout: { id: 'watch', color: 'charts.orange' },
  cancelled: { id: 'circle-slash' },
};

export function buildTree(state: WorkspaceState): ViewNode[] {
  const problems = state.problems.map((message, i): ViewNode => ({
    kind: 'problem',
    id: `problem:${i}`,
    label: message,
    description: '',
    tooltip: message,
    icon: { id: 'warning', color: 'problemsWarningIcon.foreground' },
    contextValue: 'problem',
    children: [],
  }));
  return [...problems, ...state.runs.map(runNode)];
}

function runNode(run: RunState): ViewNode {
  const flags = [run.liveness, run.hasReport ? 'report' : ''].filter(Boolean).join(',');
  const counts = countTasks(run.tasks);
  const summary = statusText(counts);
  const state = run.liveness === 'dead' ? 'orchestrator gone: resume to continue' : run.liveness;
  return {
    kind: 'run',
    id: `run:${run.runId}`,
    label: run.runId,
    description: `${state} · ${summary}`,
    tooltip: `${run.runId}\n${state}\n${summary}\nlast change ${run.timestamp}`,
    icon:
      run.liveness === 'live'
        ? { id: 'loading~spin', color: 'charts.blue' }
        : run.liveness === 'dead'
          ? { id: 'debug-disconnect', color: 'charts.red' }
          : { id: counts.failed ? 'warning' : 'check-all' },
    contextValue: `run:${flags}`,
    runId: run.runId,
    children: sortTasks(run.tasks).map((task) => taskNode(run, task)),
  };
}

const ORDER: Partial<Record<TaskStatus, number>> = { running: 0, queued: 1 };

function sortTasks(tasks: TaskState[]): TaskState[] {
  return [...tasks].sort((a, b) => (ORDER[a.status] ?? 2) - (ORDER[b.status] ?? 2));
}

function taskNode(run: RunState, task: TaskState): ViewNode {
  const active = task.status === 'running' || task.status === 'queued';
  const gone = run.liveness === 'dead' && task.status === 'running';
  const flags = [
    active && run.liveness === 'live' ? 'active' : '',
    task.branch ? 'branch' : '',
    task.worktree ? 'worktree' : '',
  ].filter(Boolean);
  return {
    kind: 'task',
    id: `task:${run.runId}:${task.taskId}`,
    label: task.taskId,
    description: taskDescription(task, gone),
    tooltip: taskTooltip(task, gone),
    icon: gone ? { id: 'debug-disconnect', color: 'charts.red' } : STATUS_ICONS[task.status],
    contextValue: `task:${flags.join(',')}`,
    runId: run.runId,
    task,
    children: [],
  };
}

export function taskDescription(task: TaskState, gone = false): string {
  const status = gone ? 'running (orchestrator gone)' : task.status;
  const attempt = task.attempt > 1 || task.fixRounds > 0
    ? `attempt ${task.attempt}${task.fixRounds ? ` fix ${task.fixRounds}` : ''}`
    : '';
  const parts = [
    status,
    task.status === 'running' ? task.phase : '',
    attempt,
    task.elapsedSeconds != null ? formatDuration(task.elapsedSeconds) : '',
    task.costUsd != null ? `$${task.costUsd.toFixed(4)}` : '',
    task.branch,
  ];
  return parts.filter(Boolean).join(' · ');
}

function taskTooltip(task: TaskState, gone: boolean): string {
  const lines = [
    `${task.name} (${task.taskId})`,
    `status: ${task.status}${gone ? ' — its orchestrator is gone; resume the run to continue it' : ''}`,
    `phase: ${task.phase} · attempt ${task.attempt}${task.fixRounds ? ` · fix round ${task.fixRounds}` : ''}`,
  ];
  if (task.branch) lines.push(`branch: ${task.branch}`);
  if (task.cancelledBy) lines.push(`cancelled by: ${task.cancelledBy}`);
  if (task.errorMessage) lines.push(`error: ${task.errorMessage}`);
  return lines.join('\n');
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.floor(seconds)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${Math.floor(seconds % 60)}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

export interface TaskCounts {
  running: number;
  done: number;
  /** failed and timed out: the tasks that need a look */
  failed: number;
}

export function countTasks(tasks: TaskState[]): TaskCounts {
  return {
    running: tasks.filter((t) => t.status === 'running').length,
    done: tasks.filter((t) => t.status === 'completed').length,
    failed: tasks.filter((t) => t.status === 'failed' || t.status === 'timeout').length,
  };
}

/** "2 agents running · 3 done · 1 failed". */
export function statusText(counts: TaskCounts): string {
  const agents = counts.running === 1 ? 'agent' : 'agents';
  return `${counts.running} ${agents} running · ${counts.done} done · ${counts.failed} failed`;
}

/** The status bar's line for the active run, or undefined with no run to speak of. */
export function statusBarText(state: WorkspaceState): string | undefined {
  const run = state.runs[0];
  if (!run) return undefined;
  const text = statusText(countTasks(run.tasks));
  return run.liveness === 'dead' ? `${text} · orchestrator gone` : text;
}
