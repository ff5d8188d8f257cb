import * as vscode from "vscode";
import type { FarmConnection } from "../farm/connection.js";

/** Connection state, running units and today's frontier spend; a click connects or shows the tree. */
export class FarmStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("optimus.status", vscode.StatusBarAlignment.Left, 50);
  private readonly disposables: vscode.Disposable[];

  constructor(private readonly connection: FarmConnection) {
    this.item.name = "Optimus";
    this.disposables = [connection.onDidChangeState(() => this.render()), connection.onDidChangeViews(() => this.render())];
    this.render();
    this.item.show();
  }

  /** what the status bar says now (tests read it) */
  get text(): string {
    return this.item.text;
  }

  render(): void {
    const c = this.connection;
    if (c.state === "disconnected") {
      this.item.text = "$(debug-disconnect) Optimus: not connected";
      this.item.tooltip = "Optimus: not connected to a farm. Click to connect.";
      this.item.command = "optimus.connect";
      this.item.backgroundColor = undefined;
      return;
    }
    if (c.state === "connecting") {
      this.item.text = "$(sync~spin) Optimus: reconnecting…";
      this.item.tooltip = `Optimus: connecting to ${c.url}. The tree catches up by itself once the farm answers.`;
      this.item.command = "optimus.connect";
      this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.warningBackground");
      return;
    }
    const v = c.views;
    const running = v.count((u) => u.state === "leased" || u.state === "evaluating" || u.state === "reviewing");
    const waiting = v.count((u) => u.state === "awaiting_approval");
    const spend = `$${v.spend.todayUsd.toFixed(2)}${v.spend.dailyBudgetUsd !== undefined ? ` / $${v.spend.dailyBudgetUsd.toFixed(2)}` : ""}`;
    this.item.text = `$(pulse) Optimus: ${running} running${waiting ? ` · $(bell-dot) ${waiting}` : ""} · ${spend} today`;
    const g = v.spend.gate;
    const gate = g
      ? g.enabled
        ? `Gate: escalate when local confidence < ${g.confidenceBelow}, after ${g.failuresAtLeast} failed checks or evals, at complexity ≥ ${g.complexityAtLeast}, or when a person asks`
        : "Gate: off — this farm is local-only"
      : "";
    const paused = v.spend.paused;
    if (paused) this.item.text = `$(warning) Optimus: escalations paused · ${running} running · ${spend} today`;
    this.item.tooltip = new vscode.MarkdownString(
      [
        `**Optimus** — connected to ${c.url} as ${c.identity?.actor ?? "?"}`,
        `${running} units running, ${waiting} awaiting approval`,
        `Frontier spend today: ${spend}`,
        ...(paused ? [`**Escalations paused:** ${paused}`] : []),
        gate,
      ]
        .filter(Boolean)
        .join("  \n"),
    );
    this.item.command = "workbench.view.extension.optimus";
    this.item.backgroundColor = paused ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
  }

  dispose(): void {
    this.item.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
