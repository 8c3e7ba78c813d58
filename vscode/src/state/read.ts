// Defensive reading of the orchestrator's state files. The writer replaces JSON files atomically,
// but a reader may still meet a file from a newer orchestrator, a torn journal line, or a file
// some other tool truncated: each becomes one clear message, never an exception.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

/** The `schema_version` this extension was built against (docs/state-contract.md). */
export const SCHEMA_VERSION = 1;

export type ReadResult<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'missing' }
  | { kind: 'problem'; message: string };

/** Read one JSON state file; `what` names it in messages ("process_registry.json"). */
export function readStateFile<T extends object>(path: string, what = basename(path)): ReadResult<T> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
    return { kind: 'problem', message: `${what}: cannot read (${code ?? String(err)})` };
  }
  return parseStateText<T>(text, what);
}

export function parseStateText<T extends object>(text: string, what: string): ReadResult<T> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return { kind: 'problem', message: `${what} is half-written or not JSON; it is read again on its next change` };
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return { kind: 'problem', message: `${what} is not a JSON object` };
  }
  const version = (data as { schema_version?: unknown }).schema_version;
  if (version !== undefined && version !== SCHEMA_VERSION) {
    return {
      kind: 'problem',
      message: `${what} has schema_version ${JSON.stringify(version)}; this extension reads version ${SCHEMA_VERSION}: update the extension`,
    };
  }
  return { kind: 'ok', value: data as T };
}

/** Journal lines (`events.jsonl`): a torn last line (a crash mid-append) is skipped, as the contract says. */
export function parseJournal<T>(text: string): T[] {
  const lines = text.split('\n');
  const records: T[] = [];
  lines.forEach((line, index) => {
    if (!line.trim()) return;
    try {
      records.push(JSON.parse(line) as T);
    } catch (err) {
      const isLast = lines.slice(index + 1).every((rest) => !rest.trim());
      if (!isLast) throw new Error(`events.jsonl line ${index + 1} is not JSON`, { cause: err });
    }
  });
  return records;
}
