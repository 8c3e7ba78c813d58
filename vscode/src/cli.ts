// The orchestrator CLI, the only way the extension changes anything: found on PATH or at the
// configured path, run with its output captured, and its failure reduced to the one line it prints.
import { spawn } from 'node:child_process';
import { accessSync, constants, openSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export const CLI_NAME = 'orchestrator';
export const INSTALL_HINT =
  'The gadugi-orchestrator CLI `orchestrator` was not found. Install it (`pip install /path/to/gadugi-orchestrator`) so it is on PATH, or set "gadugi.orchestratorPath" to it (a checkout\'s run_orchestrator.sh creates .venv/bin/orchestrator).';

/** The CLI's path: the configured one (which must exist), else `orchestrator` on PATH; null when neither. */
export function findCli(configured: string, pathEnv = process.env.PATH ?? ''): string | null {
  if (configured.trim()) {
    return isExecutable(configured) ? configured : null;
  }
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, CLI_NAME);
    if (isAbsolute(candidate) && isExecutable(candidate)) return candidate;
  }
  return null;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CliError extends Error {
  constructor(readonly command: string[], readonly result: CliResult) {
    super(oneLineError(result));
  }
}

/** Run a short CLI command (cancel, merge-check) to its end; reject with a CliError on a non-zero exit. */
export function runCli(cli: string, args: string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cli, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => reject(new CliError([cli, ...args], { code: -1, stdout, stderr: String(err.message) })));
    child.on('close', (code, signal) => {
      const result = { code: code ?? (signal ? 128 : -1), stdout, stderr };
      if (result.code === 0) resolve(result);
      else reject(new CliError([cli, ...args], result));
    });
  });
}

/**
 * Start a long CLI command (run, resume) in its own process group, so it outlives a window reload
 * as a run started in a terminal would; its output goes to `logFile`. Resolves with the exit code
 * and the log's one-line error when it ends.
 */
export function startDetached(
  cli: string,
  args: string[],
  cwd: string,
  logFile: string,
  onExit: (code: number, pid: number) => void,
): number {
  const out = openSync(logFile, 'a');
  const child = spawn(cli, args, { cwd, detached: true, stdio: ['ignore', out, out], env: { ...process.env, NO_COLOR: '1' } });
  child.on('exit', (code, signal) => onExit(code ?? (signal ? 128 : -1), child.pid ?? -1));
  child.on('error', () => onExit(-1, child.pid ?? -1));
  return child.pid ?? -1;
}

/** The CLI prints expected errors as one `error: ...` line; else the last line it printed. */
export function oneLineError(result: CliResult): string {
  return lastErrorLine(result.stderr) ?? lastErrorLine(result.stdout) ?? `exited with code ${result.code}`;
}

export function lastErrorLine(text: string): string | undefined {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const error = [...lines].reverse().find((l) => l.startsWith('error:'));
  return (error ?? lines[lines.length - 1])?.replace(/^error:\s*/, '');
}
