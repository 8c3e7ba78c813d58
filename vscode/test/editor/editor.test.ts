// In a real VS Code (code-server with the packaged .vsix, driven by headless Chromium): a
// repository with a finished run and a live one. The view lists the tasks with their statuses,
// the status bar follows the live run, and Cancel on a running task cancels it.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { HANG_GUARD_MS, makeSandbox, removeSandboxes, prompt, registry, runToEnd, startRun, waitForExit, waitForTask } from '../fixtures/runs';
import { installTools, startCodeServer } from './codeServer';

const CHROMIUM_FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
// Where the screenshot of the view during the live run goes ($EXTENSION_SCREENSHOT, else out/).
const SCREENSHOT = process.env.EXTENSION_SCREENSHOT || join(__dirname, '..', '..', 'vscode-extension.png');

// The view follows a file change within about a second; this only keeps a broken test from hanging.
const UI_WAIT_MS = 60_000;

const tools = installTools();
after(removeSandboxes);

async function waitForText(page: Page, pattern: RegExp, what: string): Promise<void> {
  try {
    await page.waitForFunction(`new RegExp(${JSON.stringify(pattern.source)}).test(document.body.innerText)`, undefined, { timeout: UI_WAIT_MS, polling: 100 });
  } catch (err) {
    const text = (await page.evaluate('document.body.innerText')) as string;
    await page.screenshot({ path: `${SCREENSHOT}.failed.png` });
    throw new Error(`${what} not shown (${pattern}); the page reads:\n${text}`, { cause: err });
  }
}

const statusBar = (page: Page) => page.locator('.statusbar-item', { hasText: /agents? running/ });

it('shows runs and tasks live in VS Code and cancels a running task', { skip: typeof tools === 'string' ? tools : false, timeout: 10 * 60_000 }, async () => {
  if (typeof tools === 'string') return;
  const box = makeSandbox({ 'alpha.md': prompt('alpha', 'commit'), 'beta.md': prompt('beta', 'fail'), 'gamma.md': '', 'delta.md': '' });
  const releaseGamma = join(box.dir, 'release-gamma');
  const releaseDelta = join(box.dir, 'release-delta');
  writeFileSync(join(box.repo, 'prompts', 'gamma.md'), prompt('gamma', `slow until=${releaseGamma}`));
  writeFileSync(join(box.repo, 'prompts', 'delta.md'), prompt('delta', `slow until=${releaseDelta}`));
  assert.equal(runToEnd(box, ['alpha.md', 'beta.md']), 1);
  const live = await startRun(box, ['gamma.md', 'delta.md']);
  const server = await startCodeServer(tools, join(box.dir, 'code-server-home'), box.repo, { 'gadugi.orchestratorPath': box.cli });
  const browser = await chromium.launch({ executablePath: tools.chromium, args: CHROMIUM_FLAGS });
  try {
    await waitForTask(box, 'gamma', 'running', 'agent');
    await waitForTask(box, 'delta', 'running', 'agent');
    const page = await browser.newPage({ viewport: { width: 1280, height: 640 } });
    await page.goto(server.url);
    await page.locator('.activitybar [aria-label="Gadugi"]').first().click({ timeout: HANG_GUARD_MS });

    // The live run first and expanded, its tasks with status and phase; the status bar counts.
    await waitForText(page, /gamma\s*running · agent/, 'gamma running');
    await waitForText(page, /delta\s*running · agent/, 'delta running');
    await waitForText(page, /2 agents running · 0 done · 0 failed/, 'the status bar for two running agents');
    // The finished run lists its tasks when expanded.
    const finishedRow = page.locator('.monaco-list-row', { hasText: /finished · 0 agents running · 1 done · 1 failed/ });
    await finishedRow.locator('.monaco-tl-twistie').click();
    await waitForText(page, /alpha\s*completed/, 'alpha completed');
    await waitForText(page, /beta\s*failed/, 'beta failed');

    // Widen the side bar so the descriptions show whole, for the screenshot kept in docs/.
    const sidebar = await page.locator('.part.sidebar').boundingBox();
    for (const sash of await page.locator('.monaco-sash.vertical').all()) {
      const at = await sash.boundingBox();
      if (!sidebar || !at || Math.abs(at.x + at.width / 2 - (sidebar.x + sidebar.width)) > 4 || at.height < 200) continue;
      const y = at.y + at.height / 2;
      await page.mouse.move(at.x + at.width / 2, y);
      await page.mouse.down();
      await page.mouse.move(760, y, { steps: 8 });
      await page.mouse.up();
      break;
    }
    // Pointing at a running task shows its inline Cancel button in the picture.
    await page.locator('.monaco-list-row', { hasText: /delta\s*running/ }).hover();
    await page.screenshot({ path: SCREENSHOT });

    // One agent finishes: the counts follow.
    writeFileSync(releaseGamma, '');
    await waitForText(page, /1 agent running · 1 done · 0 failed/, 'the status bar after gamma completed');
    await waitForText(page, /gamma\s*completed/, 'gamma completed');

    // Cancel the other with its inline Cancel button: the CLI cancels it, the registry says so.
    // (Not the context menu: VS Code's menus drop a click that comes right after they open.)
    const deltaRow = page.locator('.monaco-list-row', { hasText: /delta\s*running/ });
    await deltaRow.hover();
    await deltaRow.locator('.action-label[aria-label^="Cancel Task"]').click();
    const cancelled = await waitForTask(box, 'delta', 'cancelled').catch(async (err: Error) => {
      await page.screenshot({ path: `${SCREENSHOT}.failed.png` });
      throw new Error(`${err.message}; the page reads:\n${await page.evaluate('document.body.innerText')}`, { cause: err });
    });
    assert.equal(cancelled.cancelled_by, 'user');
    await waitForText(page, /delta\s*cancelled/, 'delta cancelled');
    await waitForText(page, /0 agents running · 1 done · 0 failed/, 'the status bar after the cancel');
    assert.match(await statusBar(page).first().innerText(), /0 agents running · 1 done · 0 failed/);
    assert.equal(await waitForExit(live), 1, 'a run with a cancelled task exits 1');
    assert.equal(registry(box)!.processes.gamma.status, 'completed');
  } finally {
    await browser.close();
    await server.stop();
    writeFileSync(releaseGamma, '');
    writeFileSync(releaseDelta, '');
    if (live.exitCode === null) {
      try {
        process.kill(-live.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
});
