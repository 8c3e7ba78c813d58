// The task's branch against its base in the diff editor: a read-only document per (ref, path),
// its text from `git show`, so no checkout or worktree is touched.
import { execFile } from 'node:child_process';
import * as vscode from 'vscode';

export const GIT_SCHEME = 'gadugi-git';

function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { cwd, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(stderr.trim().split('\n').pop() || err.message));
      else resolve(stdout);
    });
  });
}

export function gitUri(root: string, ref: string, path: string): vscode.Uri {
  return vscode.Uri.from({ scheme: GIT_SCHEME, path: `/${path}`, query: JSON.stringify({ root, ref }) });
}

export class GitContentProvider implements vscode.TextDocumentContentProvider {
  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const { root, ref } = JSON.parse(uri.query) as { root: string; ref: string };
    try {
      return await git(root, ['show', `${ref}:${uri.path.slice(1)}`]);
    } catch {
      return ''; // added or deleted on one side
    }
  }
}

/** Pick one of the files the branch changed since the merge base with `base`, and diff it. */
export async function showBranchDiff(root: string, base: string, branch: string, taskId: string): Promise<void> {
  const mergeBase = (await git(root, ['merge-base', base, branch])).trim();
  const files = (await git(root, ['diff', '--name-only', '-z', mergeBase, branch])).split('\0').filter(Boolean);
  if (!files.length) {
    void vscode.window.showInformationMessage(`${taskId}: ${branch} has no changes against its base.`);
    return;
  }
  const pick = files.length === 1 ? files[0] : await vscode.window.showQuickPick(files, { placeHolder: `${branch}: file to diff against its base` });
  if (!pick) return;
  await vscode.commands.executeCommand(
    'vscode.diff',
    gitUri(root, mergeBase, pick),
    gitUri(root, branch, pick),
    `${pick} (${taskId}: base ↔ ${branch})`,
  );
}
