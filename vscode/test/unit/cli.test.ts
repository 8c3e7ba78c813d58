// Finding the CLI and reducing its failures to one line, against the real CLI.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CliError, findCli, lastErrorLine, runCli } from '../../src/cli';
import { makeSandbox, removeSandboxes, tempDir } from '../fixtures/runs';

after(removeSandboxes);

describe('findCli', () => {
  const dir = tempDir('gadugi-cli-');
  const exe = join(dir, 'orchestrator');
  writeFileSync(exe, '#!/bin/sh\n');
  chmodSync(exe, 0o755);
  const plain = join(dir, 'not-executable');
  writeFileSync(plain, '');

  it('takes the configured path when it is executable', () => {
    assert.equal(findCli(exe, ''), exe);
  });
  it('refuses a configured path that is not executable, without falling back to PATH', () => {
    assert.equal(findCli(plain, dir), null);
  });
  it('finds `orchestrator` on PATH', () => {
    assert.equal(findCli('', `/nonexistent:${dir}`), exe);
  });
  it('is null when neither has it (the caller shows the install hint)', () => {
    assert.equal(findCli('', '/nonexistent'), null);
  });
});

describe('runCli', () => {
  it('rejects with the CLI\'s own one-line error', async () => {
    const box = makeSandbox({});
    await assert.rejects(runCli(box.cli, ['cancel', '--run', 'orchestration-nope', 'x'], box.repo), (err: unknown) => {
      assert.ok(err instanceof CliError);
      assert.equal(err.result.code, 1);
      assert.ok(!err.message.startsWith('error:'));
      assert.ok(!err.message.includes('\n'));
      assert.match(err.message, /orchestration-nope/);
      return true;
    });
  });

  it('resolves with stdout on success', async () => {
    const box = makeSandbox({});
    const result = await runCli(box.cli, ['schema', '--list'], box.repo);
    assert.match(result.stdout, /^process_registry\s/m);
  });

  it('the last `error:` line wins over later noise; else the last line', () => {
    assert.equal(lastErrorLine('warning: x\nerror: the run is locked\nhint: wait\n'), 'the run is locked');
    assert.equal(lastErrorLine('Traceback\n  boom\nValueError: bad\n'), 'ValueError: bad');
  });
});
