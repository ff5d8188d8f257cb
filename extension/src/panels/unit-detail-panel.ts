import * as vscode from "vscode";
import { unitKey, type UnitAction as FarmAction, type UnitDetail, type UnitLiveView } from "@optimus/shared";
import type { HostMessage, PageMessage, UnitAction, UnitDetailModel } from "../../../webview/src/protocol.js";
import { describeFarmError } from "../farm/farm-client.js";
import type { FarmConnection } from "../farm/connection.js";
import { offeredActions, stateLabel, type ViewContext } from "../model/unit-presentation.js";
import type { UnitRef } from "../review/change-documents.js";
import { pageHtml } from "./webview-html.js";

const ACTION_COMMANDS: Record<UnitAction, string> = {
  approve: "optimus.unit.approve",
  reject: "optimus.unit.reject",
  requestChanges: "optimus.unit.requestChanges",
  escalate: "optimus.unit.escalate",
  retry: "optimus.unit.retry",
  cancel: "optimus.unit.cancel",
  openDiff: "optimus.unit.openChange",
};

const PAGE_ACTION: Record<FarmAction, UnitAction> = {
  approve: "approve",
  reject: "reject",
  request_changes: "requestChanges",
  escalate: "escalate",
  retry: "retry",
  cancel: "cancel",
};

/** The page's buttons: the same actions the tree offers (the farm's, for this token, none while disconnected). */
export function actionsFor(u: UnitLiveView, c: ViewContext): UnitAction[] {
  return [...(u.evaluation && c.live ? (["openDiff"] as const) : []), ...offeredActions(u, c).map((a) => PAGE_ACTION[a])];
}

/** The farm's unit detail, shaped for the page. */
export function toDetailModel(d: UnitDetail, c: ViewContext): UnitDetailModel {
  const u = d.unit;
  return {
    taskId: u.taskId,
    unitId: u.unitId,
    title: d.task.title,
    state: u.state,
    stateLabel: stateLabel(u.state),
    attempt: u.attempt,
    live: c.live,
    change: u.evaluation ? { attempt: u.evaluation.attempt, head: u.evaluation.commit } : undefined,
    worker: u.worker,
    role: u.spec.role,
    instruction: u.spec.goal,
    files: u.spec.files,
    check: u.spec.check,
    progress: u.progress
      ? { phase: u.progress.phase, step: u.progress.step, tokens: u.progress.tokens, elapsedMs: u.progress.elapsedMs }
      : undefined,
    signals: d.signals,
    costUsd: d.costUsd,
    evidence: d.evidence,
    evals: u.evaluation?.evals ?? [],
    review: u.review
      ? { verdict: u.review.verdict, risk: u.review.risk, summary: u.review.summary, comments: u.review.comments ?? [] }
      : undefined,
    risk: u.risk,
    transcript: d.transcript.map((m, i) => ({
      kind: m.role === "assistant" ? "model" : m.role === "system" ? "prompt" : i <= 1 ? "prompt" : "feedback",
      title: `${m.role}${d.transcriptAttempt ? ` · attempt ${d.transcriptAttempt}` : ""} · step ${i + 1}`,
      text: m.content,
    })),
    escalations: [
      ...(u.escalation && !u.escalation.requestedBy.startsWith("worker:")
        ? [
            {
              at: u.escalation.at,
              state: `asked by a person: ${u.escalation.state}`,
              by: u.escalation.requestedBy,
              reason: u.escalation.reason,
            },
          ]
        : []),
      ...(d.escalations ?? []).map((x) => ({
        at: x.at,
        state: `${x.state}${x.position ? ` (#${x.position} in the queue)` : ""}${x.costUsd ? `, $${x.costUsd.toFixed(4)}` : ""}`,
        by: x.by,
        reason: x.reason,
      })),
    ],
    history: d.history,
    actions: actionsFor(u, c),
  };
}

/**
 * One panel per unit: the page renders, the host fetches from the farm and runs the page's actions
 * as the same commands the tree uses. Refreshes itself when the unit changes on the farm.
 */
export class UnitDetailPanels implements vscode.Disposable {
  private readonly panels = new Map<string, { panel: vscode.WebviewPanel; ref: UnitRef; timer?: NodeJS.Timeout }>();
  private readonly sub: vscode.Disposable;

  constructor(
    private readonly connection: FarmConnection,
    private readonly extensionUri: vscode.Uri,
  ) {
    this.sub = vscode.Disposable.from(
      connection.onDidChangeViews((c) => {
        for (const [k, p] of this.panels) if (c.reset || c.units.has(k)) this.refreshSoon(k, p);
      }),
      // Disconnected: the page greys its state and drops its buttons (it keeps the last detail).
      connection.onDidChangeState(() => {
        for (const p of this.panels.values()) void this.markLive(p);
      }),
    );
  }

  show(ref: UnitRef): vscode.WebviewPanel {
    const k = unitKey(ref.taskId, ref.unitId);
    const existing = this.panels.get(k);
    if (existing) {
      existing.panel.reveal();
      return existing.panel;
    }
    const panel = vscode.window.createWebviewPanel("optimus.unitDetail", `Unit ${ref.taskId}/${ref.unitId}`, vscode.ViewColumn.Beside, {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, "dist", "webview")],
    });
    panel.iconPath = vscode.Uri.joinPath(this.extensionUri, "media", "optimus.svg");
    panel.webview.html = pageHtml(panel.webview, this.extensionUri, "unit-detail", `Unit ${ref.unitId}`);
    const entry = { panel, ref };
    this.panels.set(k, entry);
    panel.webview.onDidReceiveMessage((m: PageMessage) => {
      if (m.type === "ready" || m.type === "refresh") void this.refresh(entry);
      else if (m.type === "action" && ACTION_COMMANDS[m.action])
        void vscode.commands.executeCommand(ACTION_COMMANDS[m.action], {
          taskId: m.taskId,
          unitId: m.unitId,
          attempt: m.attempt,
          head: m.head,
        });
    });
    panel.onDidDispose(() => {
      this.last.delete(panel);
      clearTimeout(this.panels.get(k)?.timer);
      this.panels.delete(k);
    });
    return panel;
  }

  private refreshSoon(k: string, p: { panel: vscode.WebviewPanel; ref: UnitRef; timer?: NodeJS.Timeout }): void {
    clearTimeout(p.timer);
    p.timer = setTimeout(() => void this.refresh(p), 300);
    this.panels.set(k, p);
  }

  private readonly last = new Map<vscode.WebviewPanel, UnitDetail>();

  private async markLive(p: { panel: vscode.WebviewPanel; ref: UnitRef }): Promise<void> {
    const d = this.last.get(p.panel);
    if (!d) return;
    if (this.connection.connected) return this.refresh(p);
    await p.panel.webview.postMessage({ type: "unitDetail", model: toDetailModel(d, this.connection.viewContext()) } satisfies HostMessage);
  }

  private async refresh(p: { panel: vscode.WebviewPanel; ref: UnitRef }): Promise<void> {
    let msg: HostMessage;
    try {
      const d = await this.connection.api.units.detail.query(p.ref);
      this.last.set(p.panel, d);
      msg = { type: "unitDetail", model: toDetailModel(d, this.connection.viewContext()) };
    } catch (err) {
      msg = { type: "error", message: describeFarmError(err, this.connection.url ?? "the farm").message };
    }
    await p.panel.webview.postMessage(msg);
  }

  dispose(): void {
    this.sub.dispose();
    for (const p of this.panels.values()) p.panel.dispose();
  }
}
