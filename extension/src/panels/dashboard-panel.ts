import * as vscode from "vscode";
import type { DashboardModel, HostMessage, PageMessage } from "../../../webview/src/protocol.js";
import { STATE_LABELS } from "@optimus/shared";
import type { FarmConnection } from "../farm/connection.js";
import { workerHealth } from "../views/fleet-tree.js";
import { pageHtml } from "./webview-html.js";

const LOAD_SAMPLES = 120;
const SAMPLE_EVERY_MS = 5_000;

/**
 * The fleet and spend dashboard: one panel, fed from the connection's live model (no extra farm
 * calls), with a load history sampled while the editor runs.
 */
export class DashboardPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private readonly load: DashboardModel["load"] = [];
  private readonly disposables: vscode.Disposable[] = [];
  private readonly sampler: NodeJS.Timeout;
  private pending: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: FarmConnection,
    private readonly extensionUri: vscode.Uri,
  ) {
    this.sampler = setInterval(() => this.sample(), SAMPLE_EVERY_MS);
    this.disposables.push(
      connection.onDidChangeViews(() => this.postSoon()),
      connection.onDidChangeState(() => this.postSoon()),
    );
  }

  private sample(): void {
    if (this.connection.state !== "connected") return;
    const w = this.connection.views.workers.filter((x) => x.connected);
    this.load.push({
      at: this.connection.farmNow(),
      active: w.reduce((n, x) => n + x.active, 0),
      capacity: w.reduce((n, x) => n + x.maxConcurrentTasks, 0),
    });
    if (this.load.length > LOAD_SAMPLES) this.load.shift();
  }

  model(): DashboardModel {
    const v = this.connection.views;
    const unitCounts: Record<string, number> = {};
    for (const u of v.units.values()) unitCounts[u.state] = (unitCounts[u.state] ?? 0) + 1;
    if (this.load.length === 0) this.sample();
    const now = this.connection.farmNow();
    const live = this.connection.connected;
    return {
      connection: this.connection.state,
      farmUrl: this.connection.url,
      now,
      workers: v.workers.map((w) => ({
        nodeId: w.nodeId,
        role: w.role,
        model: w.model.primary,
        connected: w.connected,
        active: w.active,
        capacity: w.maxConcurrentTasks,
        lastSeenAt: w.lastSeenAt,
        health: workerHealth(w, live, now),
      })),
      spend: v.spend.days,
      dailyBudgetUsd: v.spend.dailyBudgetUsd,
      todayUsd: v.spend.todayUsd,
      unitCounts,
      stateLabels: { ...STATE_LABELS },
      load: [...this.load],
    };
  }

  show(): vscode.WebviewPanel {
    if (this.panel) {
      this.panel.reveal();
      return this.panel;
    }
    const panel = vscode.window.createWebviewPanel("optimus.dashboard", "Optimus: Fleet and Spend", vscode.ViewColumn.Active, {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, "dist", "webview")],
    });
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, "media", "optimus.svg");
    panel.webview.html = pageHtml(panel.webview, this.extensionUri, "dashboard", "Optimus dashboard");
    panel.webview.onDidReceiveMessage((m: PageMessage) => {
      if (m.type === "ready" || m.type === "refresh") void this.post();
    });
    panel.onDidDispose(() => (this.panel = undefined));
    this.panel = panel;
    return panel;
  }

  private postSoon(): void {
    if (!this.panel || this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.post();
    }, 500);
  }

  private async post(): Promise<void> {
    const msg: HostMessage = { type: "dashboard", model: this.model() };
    await this.panel?.webview.postMessage(msg);
  }

  dispose(): void {
    clearInterval(this.sampler);
    clearTimeout(this.pending);
    this.panel?.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
