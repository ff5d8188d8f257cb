import * as vscode from "vscode";
import type { WorkerView } from "@optimus/shared";
import type { FarmConnection } from "../farm/connection.js";
import { formatElapsed } from "../model/unit-presentation.js";

/** Workers: role, model, load and health, from the connection's live model. */
export class FleetTreeProvider implements vscode.TreeDataProvider<WorkerView>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly disposables: vscode.Disposable[];

  constructor(private readonly connection: FarmConnection) {
    this.disposables = [
      connection.onDidChangeViews((c) => (c.fleet || c.reset) && this.changed.fire(undefined)),
      connection.onDidChangeState(() => this.changed.fire(undefined)),
    ];
  }

  getChildren(element?: WorkerView): WorkerView[] {
    if (element || this.connection.state === "disconnected") return [];
    return [...this.connection.views.workers].sort((a, b) => Number(b.connected) - Number(a.connected) || a.nodeId.localeCompare(b.nodeId));
  }

  getTreeItem(w: WorkerView): vscode.TreeItem {
    const item = new vscode.TreeItem(w.nodeId, vscode.TreeItemCollapsibleState.None);
    item.id = `worker:${w.nodeId}`;
    const health = w.connected ? (w.active >= w.maxConcurrentTasks ? "busy" : "healthy") : `offline ${formatElapsed(Date.now() - w.lastSeenAt)}`;
    item.description = `${w.role} · ${shortModel(w.model.primary)} · ${w.active}/${w.maxConcurrentTasks} · ${health}`;
    item.iconPath = new vscode.ThemeIcon(w.connected ? "vm-running" : "vm-outline", new vscode.ThemeColor(w.connected ? "charts.green" : "disabledForeground"));
    item.tooltip = new vscode.MarkdownString(
      [`**${w.nodeId}** — ${w.connected ? "connected" : "not connected"}`, `Role: ${w.role}`, `Model: \`${w.model.primary}\``, w.model.escalation ? `Escalation: \`${w.model.escalation}\`` : "", `Load: ${w.active} of ${w.maxConcurrentTasks} units`, `Last seen: ${new Date(w.lastSeenAt).toLocaleTimeString()}`].filter(Boolean).join("  \n"),
    );
    item.contextValue = `worker ${w.connected ? "connected" : "offline"}`;
    return item;
  }

  dispose(): void {
    this.changed.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

const shortModel = (m: string) => m.split(/[\\/]/).pop() ?? m;
