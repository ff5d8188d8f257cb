import * as vscode from "vscode";
import { unitKey, type ViewsChange } from "@optimus/shared";
import { CTX_CHANGE_ACTIONS } from "../constants.js";
import type { FarmConnection } from "../farm/connection.js";
import { offeredActions } from "../model/unit-presentation.js";
import { parseChangeUri, showChange, type ChangeDocuments, type ChangeUri } from "./change-documents.js";

/** The change a tab shows: a diff editor's right (or left) side, or any file of a multi-file diff. */
export function changeOfTab(tab: vscode.Tab): ChangeUri | undefined {
  const input = tab.input;
  if (input instanceof vscode.TabInputTextDiff) return parseChangeUri(input.modified) ?? parseChangeUri(input.original);
  // The multi-file diff's tab input (TabInputTextMultiDiff) is not in the stable typings yet.
  const diffs = (input as { textDiffs?: Array<{ original?: vscode.Uri; modified?: vscode.Uri }> } | undefined)?.textDiffs;
  for (const d of diffs ?? []) {
    const c = (d.modified && parseChangeUri(d.modified)) ?? (d.original && parseChangeUri(d.original));
    if (c) return c;
  }
  return undefined;
}

/**
 * Keeps open change editors honest. When a unit's newer attempt arrives, an editor still showing an
 * older one is reopened in place with "OUTDATED: attempt N is newer" in its title (its content and
 * comments stay what the person reviewed; deciding from it is refused by the farm with an offer to
 * open the new attempt). It also sets the context key the editor title's review buttons read, from
 * the actions the active change's unit allows now.
 */
export class ChangeTabs implements vscode.Disposable {
  private readonly marked = new Set<string>();
  private readonly disposables: vscode.Disposable[];

  constructor(
    private readonly connection: FarmConnection,
    private readonly docs: ChangeDocuments,
  ) {
    this.disposables = [
      connection.onDidChangeViews((c) => {
        void this.markOutdated(c);
        this.updateContext();
      }),
      connection.onDidChangeState(() => this.updateContext()),
      vscode.window.tabGroups.onDidChangeTabs(() => this.updateContext()),
      vscode.window.tabGroups.onDidChangeTabGroups(() => this.updateContext()),
    ];
    this.updateContext();
  }

  /** Open tabs on a change of this unit, with the attempt each shows. */
  tabsOf(taskId: string, unitId: string): Array<{ tab: vscode.Tab; change: ChangeUri }> {
    const out: Array<{ tab: vscode.Tab; change: ChangeUri }> = [];
    for (const tab of vscode.window.tabGroups.all.flatMap((g) => g.tabs)) {
      const c = changeOfTab(tab);
      if (c && c.taskId === taskId && c.unitId === unitId) out.push({ tab, change: c });
    }
    return out;
  }

  /** Whether an open editor of this attempt has been marked outdated. */
  isMarkedOutdated(c: { taskId: string; unitId: string; attempt: number }): boolean {
    return this.marked.has(`${c.taskId}/${c.unitId}/${c.attempt}`);
  }

  private async markOutdated(c: ViewsChange): Promise<void> {
    const keys = c.reset ? [...this.connection.views.units.keys()] : [...c.units];
    for (const k of keys) {
      const u = this.connection.views.units.get(k);
      const latest = u?.evaluation?.attempt;
      if (!u || latest === undefined) continue;
      for (const { tab, change } of this.tabsOf(u.taskId, u.unitId)) {
        const id = `${change.taskId}/${change.unitId}/${change.attempt}`;
        if (change.attempt >= latest || this.marked.has(id)) continue;
        const shown = this.docs.known(change, change.attempt);
        if (!shown) continue;
        this.marked.add(id);
        // A tab's title cannot change: close it and open the same change again with the new title.
        const column = tab.group.viewColumn;
        await vscode.window.tabGroups.close(tab, true).then(undefined, () => undefined);
        await showChange(shown, { newerAttempt: latest, preserveFocus: true, viewColumn: column }).then(undefined, () => undefined);
      }
    }
  }

  private lastContext: string | undefined;

  private updateContext(): void {
    const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
    const c = tab && changeOfTab(tab);
    const u = c && this.connection.views.units.get(unitKey(c.taskId, c.unitId));
    const actions = u ? offeredActions(u, this.connection.viewContext()) : [];
    const value = ` ${actions.join(" ")} `;
    if (value === this.lastContext) return;
    this.lastContext = value;
    void vscode.commands.executeCommand("setContext", CTX_CHANGE_ACTIONS, value);
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
