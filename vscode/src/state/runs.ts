// The runs of one repository as the extension shows them, read from the orchestrator's files:
// which runs exist (`<run-id>_status.json` in the monitoring directory), each one's tasks (the
// registry for the run it belongs to, else the run's `_final.json`, else its journal replayed),
// and whether an unfinished run still has a live orchestrator.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { ActiveRunFile } from '../generated/active_run';
import type { JournalRecord } from '../generated/journal_record';
import type { ProcessInfo, ProcessRegistryFile, TaskStatus } from '../generated/process_registry';
import type { FinalFile } from '../generated/run_final';
import type { RunStatusFile } from '../generated/run_status';
import { isProcessAlive, type PidCheck } from './liveness';
import { parseJournal, readStateFile, type ReadResult } from './read';

export type { TaskStatus };

export const TERMINAL: ReadonlySet<TaskStatus> = new Set(['completed', 'failed', 'timeout', 'cancelled']);

export interface TaskState {
  taskId: string;
  name: string;
  status: TaskStatus;
  phase: string;
  attempt: number;
  fixRounds: number;
  /** Seconds it ran (so far, for a running task; up to when the orchestrator was last seen, if gone). */
  elapsedSeconds: number | null;
  costUsd: number | null;
  branch: string;
  baseSha: string;
  worktree: string;
  errorMessage: string | null;
  cancelledBy: string | null;
}

/** `live`: an orchestrator drives it; `dead`: unfinished and nobody drives it (resume continues it). */
export type Liveness = 'finished' | 'live' | 'dead';

export interface RunState {
  runId: string;
  liveness: Liveness;
  tasks: TaskState[];
  /** When its files last changed (ISO-8601). */
  timestamp: string;
  /** Its run directory holds report.md / timeline.svg. */
  hasReport: boolean;
}

export interface WorkspaceState {
  /** The active run first (live, else the newest), then the others, newest first. */
  runs: RunState[];
  /** One line per file that could not be read (half-written, unknown schema_version). */
  problems: string[];
}

export interface Layout {
  root: string;
  monitoringDir: string;
  gadugiDir: string;
  runsDir: string;
}

export function layout(root: string, monitoringDir = '.gadugi/monitoring'): Layout {
  const gadugiDir = join(root, '.gadugi');
  return {
    root,
    monitoringDir: isAbsolute(monitoringDir) ? monitoringDir : join(root, monitoringDir),
    gadugiDir,
    runsDir: join(gadugiDir, 'runs'),
  };
}

export function runDir(paths: Layout, runId: string): string {
  return join(paths.runsDir, runId);
}

export function taskDir(paths: Layout, runId: string, taskId: string): string {
  return join(runDir(paths, runId), 'tasks', taskId);
}

/** Keeps a read's value, or records its problem. */
type Note = <T extends object>(result: ReadResult<T>) => T | undefined;

const STATUS_SUFFIX = '_status.json';

export interface LoadOptions {
  now?: Date;
  pidAlive?: PidCheck;
  recentRuns?: number;
}

export function loadWorkspace(paths: Layout, options: LoadOptions = {}): WorkspaceState {
  const now = options.now ?? new Date();
  const pidAlive = options.pidAlive ?? isProcessAlive;
  const problems: string[] = [];
  const note: Note = (result) => {
    if (result.kind === 'problem') problems.push(result.message);
    return result.kind === 'ok' ? result.value : undefined;
  };

  let names: string[] = [];
  try {
    names = readdirSync(paths.monitoringDir).filter((n) => n.endsWith(STATUS_SUFFIX));
  } catch {
    return { runs: [], problems };
  }
  const registry = note(readStateFile<ProcessRegistryFile>(join(paths.monitoringDir, 'process_registry.json')));
  const holder = note(readStateFile<ActiveRunFile>(join(paths.gadugiDir, 'active_run.json')));

  const runs: RunState[] = [];
  for (const name of names) {
    const runId = name.slice(0, -STATUS_SUFFIX.length);
    const status = note(readStateFile<RunStatusFile>(join(paths.monitoringDir, name)));
    if (!status) continue;
    try {
      runs.push(loadRun(paths, runId, status, registry, holder, now, pidAlive, note));
    } catch (err) {
      problems.push(`${runId}: ${(err as Error).message}`);
    }
  }
  return { runs: orderRuns(runs, options.recentRuns ?? 10), problems };
}

function loadRun(
  paths: Layout,
  runId: string,
  status: RunStatusFile,
  registry: ProcessRegistryFile | undefined,
  holder: ActiveRunFile | undefined,
  now: Date,
  pidAlive: PidCheck,
  note: Note,
): RunState {
  const journal = () => readJournal(join(runDir(paths, runId), 'events.jsonl'));
  let liveness: Liveness = 'finished';
  let goneAt: Date | null = null;
  if (!status.finished) {
    const driver = holder && holder.run_id === runId ? holder : lastStart(journal());
    if (driver && pidAlive(driver.pid, driver.create_time)) {
      liveness = 'live';
    } else {
      liveness = 'dead';
      goneAt = new Date(status.timestamp);
    }
  }

  let entries: ProcessInfo[];
  if (registry && registry.run_id === runId) {
    entries = Object.values(registry.processes);
  } else {
    const final = note(readStateFile<FinalFile>(join(paths.monitoringDir, `${runId}_final.json`), `${runId}_final.json`));
    entries = final ? (Object.values(final.processes) as ProcessInfo[]) : replay(journal());
  }
  const tasks = entries.map((entry) => taskState(entry, now, goneAt));
  return {
    runId,
    liveness,
    tasks,
    timestamp: status.timestamp,
    hasReport: exists(join(runDir(paths, runId), 'report.md')),
  };
}

export function taskState(entry: ProcessInfo, now: Date, goneAt: Date | null = null): TaskState {
  const status = entry.status ?? 'queued';
  let elapsed: number | null = null;
  if (TERMINAL.has(status)) {
    elapsed = entry.started_at ? (entry.duration_seconds ?? null) : null;
  } else if (entry.started_at) {
    elapsed = Math.max(0, ((goneAt ?? now).getTime() - new Date(entry.started_at).getTime()) / 1000);
  }
  return {
    taskId: entry.task_id,
    name: entry.task_name ?? entry.task_id,
    status,
    phase: entry.phase ?? 'queued',
    attempt: entry.attempt ?? 1,
    fixRounds: entry.fix_rounds ?? entry.validation?.fix_rounds ?? 0,
    elapsedSeconds: elapsed,
    costUsd: entry.cost_usd ?? null,
    branch: entry.branch ?? '',
    baseSha: entry.base_sha ?? '',
    worktree: entry.worktree ?? '',
    errorMessage: entry.error_message ?? null,
    cancelledBy: entry.cancelled_by ?? null,
  };
}

/** Live runs first, then dead ones (they want a resume), then finished; newest first within each. */
function orderRuns(runs: RunState[], recent: number): RunState[] {
  const rank: Record<Liveness, number> = { live: 0, dead: 1, finished: 2 };
  const sorted = [...runs].sort(
    (a, b) => rank[a.liveness] - rank[b.liveness] || b.timestamp.localeCompare(a.timestamp) || b.runId.localeCompare(a.runId),
  );
  const unfinished = sorted.filter((r) => r.liveness !== 'finished');
  const finished = sorted.filter((r) => r.liveness === 'finished');
  // The newest finished run is the active one when nothing runs; `recent` more follow it.
  return [...unfinished, ...finished.slice(0, Math.max(1, recent))];
}

/** The run the status bar speaks for: the first of `runs` (live, else dead, else newest). */
export function activeRun(state: WorkspaceState): RunState | undefined {
  return state.runs[0];
}

interface StartRecord {
  pid: number;
  create_time?: number;
}

function lastStart(records: JournalRecord[]): StartRecord | undefined {
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i];
    if ((r.event === 'run_started' || r.event === 'run_resumed') && typeof r.pid === 'number') {
      return { pid: r.pid, create_time: typeof r.create_time === 'number' ? r.create_time : undefined };
    }
  }
  return undefined;
}

/** The registry rebuilt from the journal: `register` sets an entry, `transition`/`update` apply changes. */
export function replay(records: JournalRecord[]): ProcessInfo[] {
  const entries = new Map<string, ProcessInfo>();
  for (const r of records) {
    const taskId = r.task_id;
    const changes = r.changes as Partial<ProcessInfo> | undefined;
    if (typeof taskId !== 'string' || !changes) continue;
    if (r.event === 'register') {
      entries.set(taskId, { ...(changes as ProcessInfo) });
    } else if ((r.event === 'transition' || r.event === 'update') && entries.has(taskId)) {
      Object.assign(entries.get(taskId)!, changes);
    }
  }
  return [...entries.values()];
}

const journalCache = new Map<string, { stamp: string; records: JournalRecord[] }>();

function readJournal(path: string): JournalRecord[] {
  let stamp: string;
  try {
    const st = statSync(path);
    stamp = `${st.mtimeMs}:${st.size}`;
  } catch {
    return [];
  }
  const cached = journalCache.get(path);
  if (cached && cached.stamp === stamp) return cached.records;
  const records = parseJournal<JournalRecord>(readFileSync(path, 'utf8'));
  journalCache.set(path, { stamp, records });
  return records;
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
