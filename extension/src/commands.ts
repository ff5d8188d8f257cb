import * as vscode from "vscode";
import type { UnitsFilter } from "./constants.js";
import type { OptimusServices } from "./services.js";
import { openChange, type UnitRef } from "./review/change-documents.js";
import { resolveUnit } from "./controllers/unit-target.js";
import { describeFarmError } from "./farm/farm-client.js";
import type { DraftComment } from "./review/review-comments.js";

/** Every command the extension contributes, registered in this one place. */
export function registerCommands(s: OptimusServices): vscode.Disposable[] {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- VS Code passes each command its own arguments (tree items, URIs)
  const reg = (id: string, fn: (...args: any[]) => unknown) => vscode.commands.registerCommand(id, fn);
  const setFilter = async (f: UnitsFilter) => {
    s.unitsTree.setFilter(f);
    s.unitsView.title = f === "all" ? "Units" : f === "mine" ? "Units — mine" : "Units — need me";
    await vscode.workspace.getConfiguration("optimus").update("unitsFilter", f, vscode.ConfigurationTarget.Global);
  };
  return [
    reg("optimus.connect", (opts?: { url?: string; token?: string }) => s.connect.connect(opts ?? {})),
    reg("optimus.disconnect", () => {
      s.connection.disconnect();
      void vscode.window.showInformationMessage("Optimus: disconnected. Your token stays in the editor's secret storage.");
    }),
    reg("optimus.send", (arg?: unknown, selected?: unknown, opts?: object) => s.send.send(arg, selected, opts)),
    reg("optimus.newManifest", (title?: string) => s.manifests.newManifest(title)),
    reg("optimus.runManifest", (uri?: vscode.Uri) => s.manifests.runManifest(uri)),
    reg("optimus.refresh", async () => {
      if (s.connection.state === "disconnected") return s.connect.connect({ silent: false });
      return s.connect.connect({ url: s.connection.url, token: await s.credentials.token() });
    }),
    reg("optimus.filter.all", () => setFilter("all")),
    reg("optimus.filter.mine", () => setFilter("mine")),
    reg("optimus.filter.needsMe", () => setFilter("needsMe")),
    reg("optimus.showDashboard", () => s.dashboard.show()),
    reg("optimus.tasks.showMore", async () => {
      try {
        return await s.connection.loadMoreHistory();
      } catch (err) {
        void vscode.window.showErrorMessage(
          `Optimus: could not load older tasks: ${describeFarmError(err, s.connection.url ?? "the farm").message}`,
        );
        return 0;
      }
    }),
    reg("optimus.unit.openChange", async (arg?: unknown) => {
      if (!s.connection.connected) {
        void vscode.window.showErrorMessage(`Optimus: could not open the change: ${s.connection.notConnectedReason()}`);
        return undefined;
      }
      const ref = await resolveUnit(s.connection, arg, (u) => u.evaluation !== undefined, "Whose change do you want to open?");
      return ref && openUnitChange(s, ref);
    }),
    reg("optimus.unit.showDetail", async (arg?: unknown) => {
      const ref = await resolveUnit(s.connection, arg, () => true, "Which unit?");
      return ref && s.unitPanels.show(ref);
    }),
    reg("optimus.unit.approve", (arg?: unknown) => s.actions.approve(arg)),
    reg("optimus.unit.reject", (arg?: unknown, opts?: object) => s.actions.reject(arg, opts)),
    reg("optimus.unit.requestChanges", (arg?: unknown, opts?: object) => s.actions.requestChanges(arg, opts)),
    reg("optimus.unit.escalate", (arg?: unknown, opts?: object) => s.actions.escalate(arg, opts)),
    reg("optimus.unit.retry", (arg?: unknown) => s.actions.retry(arg)),
    reg("optimus.unit.cancel", (arg?: unknown, opts?: object) => s.actions.cancel(arg, opts)),
    reg("optimus.task.cancel", (arg?: unknown, opts?: object) => s.actions.cancelTask(arg, opts)),
    reg("optimus.review.addComment", (reply: vscode.CommentReply) => s.comments.addComment(reply)),
    reg("optimus.review.deleteComment", (c: DraftComment) => s.comments.deleteComment(c)),
    reg("optimus.review.sendComments", (arg?: unknown) => {
      // From a comment thread's title: the thread; from the editor title: the document's URI.
      const uri = (arg as vscode.CommentThread | undefined)?.uri ?? (arg instanceof vscode.Uri ? arg : undefined);
      return s.actions.requestChanges(uri ?? arg);
    }),
  ];
}

/** Opens a unit's latest change with its reviewer's comments (the tree, notifications, "Open attempt N"). */
export async function openUnitChange(s: OptimusServices, ref: UnitRef) {
  try {
    const change = await openChange(s.changes, ref);
    s.comments.showReviewerComments(ref, change);
    return change;
  } catch (err) {
    void vscode.window.showErrorMessage(
      `Optimus: could not open the change of ${ref.taskId}/${ref.unitId}: ${describeFarmError(err, s.connection.url ?? "the farm").message}`,
    );
    return undefined;
  }
}
