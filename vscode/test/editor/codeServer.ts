// A real VS Code for the in-editor test: code-server on 127.0.0.1 with the packaged extension
// installed, in its own process group (it starts helpers: file watcher, extension host), killed
// as a group at the end.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { waitFor } from '../fixtures/runs';

export const VSCODE_DIR = resolve(__dirname, '..', '..', '..');
export const VSIX = join(VSCODE_DIR, 'gadugi-orchestrator.vsix');

export interface Tools {
  codeServer: string;
  node: string;
  chromium: string;
}

/** Install (once, cached) what the test needs; a string says why it cannot, for the skip. */
export function installTools(): Tools | string {
  const result = spawnSync(join(VSCODE_DIR, 'scripts', 'install-code-server.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status === 3) return result.stderr.trim().split('\n').pop() ?? 'code-server cannot be installed';
  if (result.status !== 0) throw new Error(`install-code-server.sh failed (${result.status}):\n${result.stderr}`);
  const vars = Object.fromEntries([...result.stdout.matchAll(/(\w+)='([^']*)'/g)].map((m) => [m[1], m[2]]));
  return { codeServer: vars.CODE_SERVER_ENTRY, node: vars.CODE_SERVER_NODE, chromium: vars.CHROMIUM_PATH };
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export interface CodeServer {
  url: string;
  stop: () => Promise<void>;
}

export async function startCodeServer(tools: Tools, home: string, folder: string, settings: Record<string, unknown>): Promise<CodeServer> {
  const userData = join(home, 'user-data');
  const extensions = join(home, 'extensions');
  mkdirSync(join(userData, 'User'), { recursive: true });
  writeFileSync(join(userData, 'User', 'settings.json'), JSON.stringify({
    // Restricted Mode would keep the extension from activating.
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'chat.disableAIFeatures': true,
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    ...settings,
  }, null, 2));
  const env = {
    ...process.env,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_DATA_HOME: join(home, '.local', 'share'),
    PATH: `${dirname(tools.node)}:${process.env.PATH ?? ''}`,
  };
  const base = [tools.codeServer, '--extensions-dir', extensions, '--user-data-dir', userData];
  execFileSync(tools.node, [...base, '--install-extension', VSIX], { env, stdio: 'pipe' });
  const port = await freePort();
  const child: ChildProcess = spawn(tools.node, [
    ...base, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check',
    '--disable-workspace-trust', folder,
  ], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
  };
  try {
    await waitFor(() => log.includes('HTTP server listening') || child.exitCode !== null, 'code-server to listen');
    if (child.exitCode !== null) throw new Error(`code-server exited ${child.exitCode}:\n${log}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `http://127.0.0.1:${port}/?folder=${encodeURIComponent(folder)}`, stop };
}
