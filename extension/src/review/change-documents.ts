import * as vscode from "vscode";
import type { ChangeFile } from "@optimus/shared";
import { CHANGE_SCHEME } from "../constants.js";
import type { FarmConnection } from "../farm/connection.js";

export type ChangeSide = "base" | "proposed";
export interface UnitRef {
  taskId: string;
  unitId: string;
}
export interface ChangeUri extends UnitRef {
  attempt: number;
  side: ChangeSide;
  path: string;
}

/** The farm's answer to `reviews.change`, as the extension caches it. */
export type UnitChange = Awaited<ReturnType<FarmConnection["api"]["reviews"]["change"]["query"]>>;

/** `optimus-change:/<task>/<unit>/<attempt>/<base|proposed>/<path>`: read-only, one side of a file. */
export function changeUri(c: ChangeUri): vscode.Uri {
  return vscode.Uri.from({ scheme: CHANGE_SCHEME, path: `/${c.taskId}/${c.unitId}/${c.attempt}/${c.side}/${c.path}` });
}

export function parseChangeUri(uri: vscode.Uri): ChangeUri | undefined {
  if (uri.scheme !== CHANGE_SCHEME) return undefined;
  const m = /^\/([^/]+)\/([^/]+)\/(\d+)\/(base|proposed)\/(.+)$/.exec(uri.path);
  return m ? { taskId: m[1]!, unitId: m[2]!, attempt: Number(m[3]), side: m[4] as ChangeSide, path: m[5]! } : undefined;
}

/**
 * Serves both sides of a unit's change as virtual read-only documents. Changes are fetched once per
 * attempt (an attempt's commit never changes) and kept while any of their documents is open.
 */
export class ChangeDocuments implements vscode.TextDocumentContentProvider {
  private readonly cache = new Map<string, Promise<UnitChange>>();

  constructor(private readonly connection: FarmConnection) {}

  /** The latest evaluated change of a unit. */
  async latest(ref: UnitRef): Promise<UnitChange> {
    const change = await this.connection.api.reviews.change.query(ref);
    this.cache.set(`${ref.taskId}/${ref.unitId}/${change.attempt}`, Promise.resolve(change));
    return change;
  }

  private of(c: ChangeUri): Promise<UnitChange> {
    const key = `${c.taskId}/${c.unitId}/${c.attempt}`;
    let p = this.cache.get(key);
    if (!p) {
      p = this.connection.api.reviews.change.query({ taskId: c.taskId, unitId: c.unitId });
      this.cache.set(key, p);
      p.catch(() => this.cache.delete(key));
    }
    return p;
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const c = parseChangeUri(uri);
    if (!c) return "";
    const change = await this.of(c);
    if (change.attempt !== c.attempt) return `(attempt ${c.attempt} is no longer the unit's latest change; it is at attempt ${change.attempt})`;
    const f = change.files.find((x) => x.path === c.path);
    if (!f) return "";
    return contentOf(f, c.side);
  }
}

export function contentOf(f: ChangeFile, side: ChangeSide): string {
  if (f.binary) return `(binary file ${f.status}; not shown)`;
  if (f.tooLarge) return "(file larger than 1 MB; not shown)";
  return (side === "base" ? f.base : f.proposed) ?? "";
}

/**
 * Opens a unit's change: one file as a diff editor, several as a multi-file diff; the title carries
 * the eval result and the review verdict.
 */
export async function openChange(docs: ChangeDocuments, ref: UnitRef): Promise<UnitChange> {
  const change = await docs.latest(ref);
  const evals = change.evals.length ? (change.green ? "evals green" : "evals red") : "no evals";
  const review = change.review ? `review: ${change.review.verdict.replace("_", " ")} (${change.review.risk} risk)` : "not reviewed";
  const title = `${ref.taskId}/${ref.unitId} #${change.attempt} — ${evals}, ${review}`;
  const uris = (f: ChangeFile) => [changeUri({ ...ref, attempt: change.attempt, side: "base", path: f.path }), changeUri({ ...ref, attempt: change.attempt, side: "proposed", path: f.path })] as const;
  if (change.files.length === 1) {
    const [base, proposed] = uris(change.files[0]!);
    await vscode.commands.executeCommand("vscode.diff", base, proposed, `${change.files[0]!.path} (${title})`, { preview: false });
  } else {
    const resources = change.files.map((f) => {
      const [base, proposed] = uris(f);
      return [proposed, base, proposed];
    });
    await vscode.commands.executeCommand("vscode.changes", title, resources);
  }
  return change;
}
