import * as vscode from "vscode";
import type { FarmConnection } from "../farm/connection.js";
import { offeredActions } from "../model/unit-presentation.js";

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
        void vscode.window
          .showInformationMessage(`Optimus: ${waiting.length} units are waiting for your approval.`, "Show Them")
          .then((a) => a && vscode.commands.executeCommand("optimus.filter.needsMe"));
        return;
      }
      for (const u of waiting) {
        // The buttons decide on the version this notification names, not on whatever is latest when clicked.
        const ref = { taskId: u.taskId, unitId: u.unitId, attempt: u.evaluation?.attempt, head: u.evaluation?.commit };
        const why = u.risk ? ` (${u.risk.level} risk${u.risk.reasons.length ? `: ${u.risk.reasons.slice(0, 2).join("; ")}` : ""})` : "";
        const offered = offeredActions(u, connection.viewContext());
        const buttons = [
          ...(offered.includes("approve") ? ["Approve"] : []),
          "Open Change",
          ...(offered.includes("reject") ? ["Reject"] : []),
        ];
        const needs = offered.includes("approve")
          ? "needs your approval"
          : u.needsApprover
            ? "waits for an approver (it touches protected paths)"
            : "awaits approval";
        void vscode.window
          .showInformationMessage(
            `Optimus: ${u.taskId}/${u.unitId} attempt ${u.evaluation?.attempt ?? u.attempt} ${needs}${why}.`,
            ...buttons,
          )
          .then((a) => {
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
