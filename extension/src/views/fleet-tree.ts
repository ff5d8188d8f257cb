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
    if (element || (this.connection.state === "disconnected" && this.connection.views.workers.length === 0)) return [];
    return [...this.connection.views.workers].sort((a, b) => Number(b.connected) - Number(a.connected) || a.nodeId.localeCompare(b.nodeId));
  }

  getTreeItem(w: WorkerView): vscode.TreeItem {
    const item = new vscode.TreeItem(w.nodeId, vscode.TreeItemCollapsibleState.None);
    item.id = `worker:${w.nodeId}`;
    const live = this.connection.connected;
    const health = workerHealth(w, live, this.connection.farmNow());
    item.description = `${w.role} · ${shortModel(w.model.primary)} · ${w.active}/${w.maxConcurrentTasks} · ${health}`;
    const up = live && w.connected;
    item.iconPath = new vscode.ThemeIcon(
      up ? "vm-running" : "vm-outline",
      new vscode.ThemeColor(up ? "charts.green" : "disabledForeground"),
    );
    item.tooltip = new vscode.MarkdownString(
      [
        live
          ? `**${w.nodeId}** — ${w.connected ? "connected" : "not connected"}`
          : `**${w.nodeId}** — unknown: the editor is not connected to the farm (last known: ${w.connected ? "connected" : "not connected"})`,
        `Role: ${w.role}`,
        `Model: \`${w.model.primary}\``,
        w.model.escalation ? `Escalation: \`${w.model.escalation}\`` : "",
        `Load: ${w.active} of ${w.maxConcurrentTasks} units`,
        `Last seen: ${new Date(w.lastSeenAt).toLocaleTimeString()}`,
      ]
        .filter(Boolean)
        .join("  \n"),
    );
    item.contextValue = `worker ${!live ? "stale" : w.connected ? "connected" : "offline"}`;
    return item;
  }

  dispose(): void {
    this.changed.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

/**
 * A worker's health as the farm last said, measured on the farm's clock. Not connected to the farm:
 * nobody knows, so it says so instead of "healthy".
 */
export function workerHealth(w: WorkerView, live: boolean, farmNow: number): string {
  if (!live) return "unknown (farm not connected)";
  if (!w.connected) return `offline ${formatElapsed(farmNow - w.lastSeenAt)}`;
  return w.active >= w.maxConcurrentTasks ? "busy" : "healthy";
}

/** A model file's name without its folders; a model id (org/name/version) stays whole. */
export const shortModel = (m: string) => (/\.(gguf|bin|safetensors)$/i.test(m) ? (m.split(/[\\/]/).pop() ?? m) : m);
