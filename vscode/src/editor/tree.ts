// The Runs and Tasks view: the plain nodes of state/view.ts as tree items.
import * as vscode from 'vscode';
import type { ViewNode } from '../state/view';

export class RunsTreeProvider implements vscode.TreeDataProvider<ViewNode> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private roots: ViewNode[] = [];
  // What the user expanded or collapsed, by node id: a refresh (every file change) must keep it.
  private readonly expanded = new Map<string, boolean>();

  /** Call with the TreeView's expand/collapse events. */
  remember(node: ViewNode, expanded: boolean): void {
    this.expanded.set(node.id, expanded);
  }

  update(roots: ViewNode[]): void {
    this.roots = roots;
    this.changed.fire();
  }

  getChildren(node?: ViewNode): ViewNode[] {
    return node ? node.children : this.roots;
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
