import * as vscode from "vscode";
import type { ChangeFile } from "@optimus/shared";
import { CHANGE_SCHEME } from "../constants.js";
import type { FarmConnection } from "../farm/connection.js";

/** `review`: the whole change (the multi-file diff's own URI), not one side of a file. */
export type ChangeSide = "base" | "proposed" | "review";
export interface UnitRef {
  taskId: string;
  unitId: string;
}
export interface ChangeUri extends UnitRef {
  attempt: number;
  side: ChangeSide;
  /** the file's path in the repository; "" for the whole change */
  path: string;
}
/** The version of a change a person decides on: what they saw. */
export interface ChangeVersion {
  attempt: number;
  head: string;
}

/** The farm's answer to `reviews.change`, as the extension caches it. */
export type UnitChange = Awaited<ReturnType<FarmConnection["api"]["reviews"]["change"]["query"]>>;

/**
 * `optimus-change:/<task>/<unit>/<attempt>/<path>?side=base|proposed`: read-only, one side of a file.
 * Both sides of a file share one path and differ only in the query, so diff editors show an edit as
 * a modification, not as a rename from one path to another. The whole change is
 * `optimus-change:/<task>/<unit>/<attempt>?side=review`.
 */
export function changeUri(c: ChangeUri): vscode.Uri {
  return vscode.Uri.from({
    scheme: CHANGE_SCHEME,
    path: `/${c.taskId}/${c.unitId}/${c.attempt}${c.path ? `/${c.path}` : ""}`,
    query: `side=${c.side}`,
  });
}

export function parseChangeUri(uri: vscode.Uri): ChangeUri | undefined {
  if (uri.scheme !== CHANGE_SCHEME) return undefined;
  const m = /^\/([^/]+)\/([^/]+)\/(\d+)(?:\/(.+))?$/.exec(uri.path);
  const side = /(?:^|&)side=(base|proposed|review)(?:&|$)/.exec(uri.query)?.[1] as ChangeSide | undefined;
  if (!m || !side) return undefined;
  return { taskId: m[1]!, unitId: m[2]!, attempt: Number(m[3]), side, path: m[4] ?? "" };
}

const key = (ref: UnitRef, attempt: number) => `${ref.taskId}/${ref.unitId}/${attempt}`;

/**
 * Serves both sides of a unit's change as virtual read-only documents. Each attempt's change is kept
 * once fetched (an attempt's commit never changes, and the farm serves only the latest one), so an
 * editor opened on an older attempt keeps showing exactly what the person reviewed.
 */
export class ChangeDocuments implements vscode.TextDocumentContentProvider {
  private readonly cache = new Map<string, Promise<UnitChange>>();
  private readonly fetched = new Map<string, UnitChange>();

  constructor(private readonly connection: FarmConnection) {}

  /** The latest evaluated change of a unit. */
  async latest(ref: UnitRef): Promise<UnitChange> {
    const change = await this.connection.api.reviews.change.query(ref);
    this.keep(change);
    return change;
  }

  private keep(change: UnitChange): void {
    const k = key(change, change.attempt);
    this.fetched.set(k, change);
    this.cache.set(k, Promise.resolve(change));
  }

  /** An attempt's change if this editor has fetched it. */
  known(ref: UnitRef, attempt: number): UnitChange | undefined {
    return this.fetched.get(key(ref, attempt));
  }

  /** The version (attempt and head commit) behind a change document, as the person saw it. */
  versionOf(uri: vscode.Uri): (ChangeVersion & UnitRef) | undefined {
    const c = parseChangeUri(uri);
    const change = c && this.known(c, c.attempt);
    return c && change ? { taskId: c.taskId, unitId: c.unitId, attempt: change.attempt, head: change.head } : undefined;
  }

  private of(c: ChangeUri): Promise<UnitChange> {
    const k = key(c, c.attempt);
    let p = this.cache.get(k);
    if (!p) {
      p = this.connection.api.reviews.change.query({ taskId: c.taskId, unitId: c.unitId });
      p.then(
        (ch) => ch.attempt === c.attempt && this.fetched.set(k, ch),
        () => this.cache.delete(k),
      );
      this.cache.set(k, p);
    }
    return p;
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const c = parseChangeUri(uri);
    if (!c || c.side === "review") return "";
    const change = await this.of(c);
    if (change.attempt !== c.attempt)
      return `(attempt ${c.attempt} is no longer the unit's latest change; it is at attempt ${change.attempt})`;
    const f = change.files.find((x) => x.path === c.path);
    if (!f) return "";
    return contentOf(f, c.side);
  }
}

export function contentOf(f: ChangeFile, side: "base" | "proposed"): string {
  if (f.binary) return `(binary file ${f.status}; not shown)`;
  if (f.tooLarge) return "(file larger than 1 MB; not shown)";
  return (side === "base" ? f.base : f.proposed) ?? "";
}

/** The title of a change's editor: which attempt, its evals and review, and whether it is outdated. */
export function changeTitle(change: UnitChange, newerAttempt?: number): string {
  const evals = change.evals.length ? (change.green ? "evals green" : "evals red") : "no evals";
  const review = change.review ? `review: ${change.review.verdict.replace("_", " ")} (${change.review.risk} risk)` : "not reviewed";
  const outdated = newerAttempt ? ` — OUTDATED: attempt ${newerAttempt} is newer` : "";
  return `${change.taskId}/${change.unitId} #${change.attempt}${outdated} — ${evals}, ${review}`;
}

/**
 * Shows one attempt's change: one file as a diff editor, several as one multi-file diff whose own URI
 * is the change's (so its title bar offers the review actions, as a single diff's does). Added files
 * have no left side and deleted ones no right side, so each file shows added / modified / deleted.
 */
export async function showChange(
  change: UnitChange,
  opts: { newerAttempt?: number; preserveFocus?: boolean; viewColumn?: vscode.ViewColumn } = {},
): Promise<void> {
  const ref = { taskId: change.taskId, unitId: change.unitId };
  const title = changeTitle(change, opts.newerAttempt);
  const side = (f: ChangeFile, s: "base" | "proposed") => changeUri({ ...ref, attempt: change.attempt, side: s, path: f.path });
  if (change.files.length === 1) {
    const f = change.files[0]!;
    await vscode.commands.executeCommand("vscode.diff", side(f, "base"), side(f, "proposed"), `${f.path} (${title})`, {
      preview: false,
      preserveFocus: opts.preserveFocus,
      viewColumn: opts.viewColumn,
    });
    return;
  }
  // `vscode.changes` gives the editor a random URI, so nothing could tell which change it shows:
  // the workbench command behind it (as VS Code's git extension uses it) takes the change's own URI.
  await vscode.commands.executeCommand("_workbench.openMultiDiffEditor", {
    multiDiffSourceUri: changeUri({ ...ref, attempt: change.attempt, side: "review", path: "" }),
    title,
    resources: change.files.map((f) => ({
      originalUri: f.status === "added" ? undefined : side(f, "base"),
      modifiedUri: f.status === "deleted" ? undefined : side(f, "proposed"),
    })),
  });
}

/** Opens a unit's latest change. */
export async function openChange(docs: ChangeDocuments, ref: UnitRef): Promise<UnitChange> {
  const change = await docs.latest(ref);
  await showChange(change);
  return change;
}
