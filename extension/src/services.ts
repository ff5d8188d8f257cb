import type * as vscode from "vscode";
import type { ConnectController } from "./controllers/connect-controller.js";
import type { SendController } from "./controllers/send-controller.js";
import type { UnitActions } from "./controllers/unit-actions.js";
import type { ApprovalNotifier } from "./controllers/approval-notifier.js";
import type { FarmConnection } from "./farm/connection.js";
import type { FarmCredentials } from "./farm/credentials.js";
import type { ManifestController } from "./manifests/manifest-controller.js";
import type { DashboardPanel } from "./panels/dashboard-panel.js";
import type { UnitDetailPanels } from "./panels/unit-detail-panel.js";
import type { ChangeDocuments } from "./review/change-documents.js";
import type { ChangeTabs } from "./review/change-tabs.js";
import type { ReviewComments } from "./review/review-comments.js";
import type { FleetTreeProvider } from "./views/fleet-tree.js";
import type { FarmStatusBar } from "./views/status-bar.js";
import type { UnitsNode, UnitsTreeProvider } from "./views/units-tree.js";

/**
 * The extension's parts, wired once in `activate`. Also what `activate` returns, so the integration
 * suite inside VS Code can look at the same objects a user's clicks go through.
 */
export interface OptimusServices {
  connection: FarmConnection;
  credentials: FarmCredentials;
  connect: ConnectController;
  send: SendController;
  actions: UnitActions;
  manifests: ManifestController;
  changes: ChangeDocuments;
  changeTabs: ChangeTabs;
  comments: ReviewComments;
  unitsTree: UnitsTreeProvider;
  unitsView: vscode.TreeView<UnitsNode>;
  fleetTree: FleetTreeProvider;
  statusBar: FarmStatusBar;
  unitPanels: UnitDetailPanels;
  dashboard: DashboardPanel;
  notifier: ApprovalNotifier;
  /** ms from the start of activate() to the end of it */
  activationMs: number;
}
