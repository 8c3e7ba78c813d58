// The committed TypeScript types must be what the shipped JSON Schemas generate now: a schema
// change without `npm run gen-types` fails here.
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { it } from 'node:test';

const GENERATOR = resolve(__dirname, '..', '..', '..', 'scripts', 'gen-types.mjs');

it('src/generated/ matches the schemas in orchestrator/data/schemas', async () => {
  const { staleTypes } = (await import(GENERATOR)) as { staleTypes: () => Promise<string[]> };
  assert.deepEqual(await staleTypes(), [], 'stale generated types: run `npm run gen-types` in vscode/');
});

it('covers every schema the CLI lists', async () => {
  const { generate } = (await import(GENERATOR)) as { generate: () => Promise<Map<string, string>> };
  const names = [...(await generate()).keys()];
  for (const name of ['process_registry', 'run_status', 'run_final', 'active_run', 'journal_record', 'merge_report']) {
    assert.ok(names.includes(name), `${name} generated`);
  }
});
