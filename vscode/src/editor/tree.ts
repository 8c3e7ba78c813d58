// The Runs and Tasks view: the plain nodes of state/view.ts as tree items.
//
// The view is rebuilt from the files several times a second while agents run, but the editor is
// told only what changed: node objects stay the same across rebuilds (matched by id) and only
// nodes whose text or children changed are refreshed. A whole-tree refresh would collapse a run
// the user just expanded, and redraw rows under the pointer.
import * as vscode from 'vscode';
import type { ViewNode } from '../state/view';

export class RunsTreeProvider implements vscode.TreeDataProvider<ViewNode> {
  private readonly changed = new vscode.EventEmitter<ViewNode[] | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private roots: ViewNode[] = [];
  private byId = new Map<string, ViewNode>();
  // What the user expanded or collapsed, by node id, for the items the editor asks for again.
  private readonly expanded = new Map<string, boolean>();

  /** Call with the TreeView's expand/collapse events. */
  remember(node: ViewNode, expanded: boolean): void {
    this.expanded.set(node.id, expanded);
  }

  update(roots: ViewNode[]): void {
    const changed: ViewNode[] = [];
    const byId = new Map<string, ViewNode>();
    const keep = (fresh: ViewNode): ViewNode => {
      const children = fresh.children.map(keep);
      const old = this.byId.get(fresh.id);
      const node = old ?? fresh;
      if (old && (signature(old) !== signature(fresh) || !sameIds(old.children, children))) {
        changed.push(old);
      }
      Object.assign(node, { ...fresh, children });
      byId.set(node.id, node);
      return node;
    };
    const next = roots.map(keep);
    const rootsChanged = !sameIds(this.roots, next);
    this.roots = next;
    this.byId = byId;
    if (rootsChanged) this.changed.fire(undefined);
    else if (changed.length) this.changed.fire(changed);
  }

  getChildren(node?: ViewNode): ViewNode[] {
    return node ? node.children : this.roots;
  }

  getParent(node: ViewNode): ViewNode | undefined {
    return this.roots.find((root) => root.children.includes(node));
  }

  getTreeItem(node: ViewNode): vscode.TreeItem {
    // The first run (the active one) starts expanded, the others collapsed.
    const expanded = this.expanded.get(node.id) ?? node === this.roots.find((n) => n.kind === 'run');
    const collapsible =
      node.kind !== 'run'
        ? vscode.TreeItemCollapsibleState.None
        : expanded
          ? vscode.TreeItemCollapsibleState.Expanded
          : vscode.TreeItemCollapsibleState.Collapsed;
    const item = new vscode.TreeItem(node.label, collapsible);
    item.id = node.id;
    item.description = node.description;
    item.tooltip = node.tooltip;
    item.contextValue = node.contextValue;
    item.iconPath = new vscode.ThemeIcon(node.icon.id, node.icon.color ? new vscode.ThemeColor(node.icon.color) : undefined);
    if (node.kind === 'task') {
      item.command = { command: 'gadugi.openAgentLog', title: 'Open Agent Log', arguments: [node] };
    }
    return item;
  }
}

function signature(node: ViewNode): string {
  return JSON.stringify([node.label, node.description, node.tooltip, node.icon, node.contextValue]);
}

function sameIds(a: ViewNode[], b: ViewNode[]): boolean {
  return a.length === b.length && a.every((node, i) => node.id === b[i].id);
}
