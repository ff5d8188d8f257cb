import * as vscode from "vscode";
import type { FarmConnection } from "../farm/connection.js";

/**
 * When a unit is held for a human, says so once with the actions right on the notification.
 * Only on transitions seen live: a reconnect's snapshot does not replay old notifications.
 */
export class ApprovalNotifier implements vscode.Disposable {
  private readonly sub: vscode.Disposable;

  constructor(connection: FarmConnection) {
    this.sub = connection.onDidChangeViews((c) => {
      if (!vscode.workspace.getConfiguration("optimus").get<boolean>("notifyOnApproval", true)) return;
      const waiting = c.nowAwaitingApproval;
      if (waiting.length === 0) return;
      if (waiting.length > 3) {
        void vscode.window.showInformationMessage(`Optimus: ${waiting.length} units are waiting for your approval.`, "Show Them").then((a) => a && vscode.commands.executeCommand("optimus.filter.needsMe"));
        return;
      }
      for (const u of waiting) {
        const ref = { taskId: u.taskId, unitId: u.unitId };
        const why = u.risk ? ` (${u.risk.level} risk${u.risk.reasons.length ? `: ${u.risk.reasons.slice(0, 2).join("; ")}` : ""})` : "";
        void vscode.window.showInformationMessage(`Optimus: ${u.taskId}/${u.unitId} needs your approval${why}.`, "Approve", "Open Change", "Reject").then((a) => {
          if (a === "Approve") void vscode.commands.executeCommand("optimus.unit.approve", ref);
          else if (a === "Open Change") void vscode.commands.executeCommand("optimus.unit.openChange", ref);
          else if (a === "Reject") void vscode.commands.executeCommand("optimus.unit.reject", ref);
        });
      }
    });
  }

  dispose(): void {
    this.sub.dispose();
  }
}
