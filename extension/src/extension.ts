import * as vscode from "vscode";
import { CHANGE_SCHEME, CTX_CONNECTION, VIEW_FLEET, VIEW_UNITS, type UnitsFilter } from "./constants.js";
import { openUnitChange, registerCommands } from "./commands.js";
import { ApprovalNotifier } from "./controllers/approval-notifier.js";
import { ConnectController } from "./controllers/connect-controller.js";
import { SendController } from "./controllers/send-controller.js";
import { UnitActions } from "./controllers/unit-actions.js";
import { FarmConnection } from "./farm/connection.js";
import { FarmCredentials } from "./farm/credentials.js";
import { ManifestController } from "./manifests/manifest-controller.js";
import { DashboardPanel } from "./panels/dashboard-panel.js";
import { UnitDetailPanels } from "./panels/unit-detail-panel.js";
import { ChangeDocuments } from "./review/change-documents.js";
import { ChangeTabs } from "./review/change-tabs.js";
import { ReviewComments } from "./review/review-comments.js";
import type { OptimusServices } from "./services.js";
import { FleetTreeProvider } from "./views/fleet-tree.js";
import { FarmStatusBar } from "./views/status-bar.js";
import { UnitsTreeProvider } from "./views/units-tree.js";

export function activate(context: vscode.ExtensionContext): OptimusServices {
  const t0 = performance.now();
  void vscode.commands.executeCommand("setContext", CTX_CONNECTION, "disconnected");
  const connection = new FarmConnection();
  const credentials = new FarmCredentials(context.secrets);
  const filter = vscode.workspace.getConfiguration("optimus").get<UnitsFilter>("unitsFilter", "all");
  const unitsTree = new UnitsTreeProvider(connection, filter);
  const unitsView = vscode.window.createTreeView(VIEW_UNITS, { treeDataProvider: unitsTree, showCollapseAll: true });
  const fleetTree = new FleetTreeProvider(connection);
  const fleetView = vscode.window.createTreeView(VIEW_FLEET, { treeDataProvider: fleetTree });
  const reveal = async (taskId: string) => {
    await vscode.commands.executeCommand(`${VIEW_UNITS}.focus`);
    await unitsView.reveal(unitsTree.taskNode(taskId), { select: true, focus: false, expand: true });
  };
  const changes = new ChangeDocuments(connection);
  const comments = new ReviewComments(connection);
  const connect = new ConnectController(connection, credentials);
  const s: OptimusServices = {
    connection,
    credentials,
    connect,
    changes,
    comments,
    unitsTree,
    unitsView,
    fleetTree,
    send: new SendController(connection, reveal),
    changeTabs: new ChangeTabs(connection, changes),
    actions: new UnitActions(connection, comments, changes, (ref) => openUnitChange(s, ref)),
    manifests: new ManifestController(connection, reveal),
    statusBar: new FarmStatusBar(connection),
    unitPanels: new UnitDetailPanels(connection, context.extensionUri),
    dashboard: new DashboardPanel(connection, context.extensionUri),
    notifier: new ApprovalNotifier(connection),
    activationMs: 0,
  };
  // The badge: how many units wait for a human.
  const badge = () => {
    const n = connection.views.count((u) => u.state === "awaiting_approval");
    unitsView.badge = n ? { value: n, tooltip: `${n} unit${n === 1 ? "" : "s"} awaiting approval` } : undefined;
  };
  // Disconnected: the views say that what they show is the last thing the farm said.
  const staleNote = () => {
    const note = connection.connected
      ? undefined
      : connection.state === "connecting"
        ? "Reconnecting to the farm: showing the last known state; actions are off until it answers."
        : "Not connected to the farm: showing the last known state.";
    unitsView.message = note && connection.views.tasks.size ? note : undefined;
    fleetView.message = note && connection.views.workers.length ? note : undefined;
  };
  context.subscriptions.push(
    connection.onDidChangeState(staleNote),
    connection,
    unitsTree,
    unitsView,
    fleetTree,
    fleetView,
    comments,
    s.changeTabs,
    s.manifests,
    s.statusBar,
    s.unitPanels,
    s.dashboard,
    s.notifier,
    vscode.workspace.registerTextDocumentContentProvider(CHANGE_SCHEME, changes),
    connection.onDidChangeViews(badge),
    connection.onDidFail((e) => void connect.explain(e)),
    ...registerCommands(s),
  );
  // Reconnect to the last farm without asking; a failure shows in the status bar, not as a popup.
  if (credentials.url) void connect.connect({ silent: true });
  s.activationMs = performance.now() - t0;
  return s;
}

export function deactivate(): void {
  // Everything is in context.subscriptions.
}
