import * as vscode from "vscode";
import type { UnitLiveView } from "@optimus/shared";
import type { FarmConnection } from "../farm/connection.js";
import { parseChangeUri, type UnitRef } from "../review/change-documents.js";

/**
 * Which unit a command is about, from whatever invoked it: a tree node, a change document's URI (the
 * diff editor's title bar), a `{taskId, unitId}` (notifications, webviews, tests), the active
 * editor, or, from the palette, a pick among the units the action applies to.
 */
export async function resolveUnit(
  connection: FarmConnection,
  arg: unknown,
  applies: (u: UnitLiveView) => boolean,
  placeHolder: string,
): Promise<UnitRef | undefined> {
  const direct = refFrom(arg) ?? refFrom(vscode.window.activeTextEditor?.document.uri);
  if (direct) return direct;
  const candidates = [...connection.views.units.values()].filter(applies);
  if (candidates.length === 0) {
    void vscode.window.showInformationMessage("Optimus: no unit is in a state this applies to.");
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    candidates.slice(0, 500).map((u) => ({
      label: `${u.taskId}/${u.unitId}`,
      description: u.state,
      detail: u.spec.goal.slice(0, 120),
      ref: { taskId: u.taskId, unitId: u.unitId },
    })),
    { placeHolder, matchOnDescription: true, matchOnDetail: true },
  );
  return pick?.ref;
}

function refFrom(arg: unknown): UnitRef | undefined {
  if (!arg) return undefined;
  if (arg instanceof vscode.Uri) {
    const c = parseChangeUri(arg);
    return c ? { taskId: c.taskId, unitId: c.unitId } : undefined;
  }
  const o = arg as { kind?: string; taskId?: unknown; unitId?: unknown };
  if (typeof o.taskId === "string" && typeof o.unitId === "string" && (o.kind === undefined || o.kind === "unit"))
    return { taskId: o.taskId, unitId: o.unitId };
  return undefined;
}
