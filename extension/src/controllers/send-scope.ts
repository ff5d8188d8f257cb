import * as vscode from "vscode";
import { parse } from "yaml";

/** The farm's default protected paths (shared/src/config.ts), used when the repository sets none. */
const DEFAULT_PROTECTED = [".optimus/**", ".github/**", "**/*.lock"];

export interface ScopeReport {
  /** chosen folders (a change may edit anything below them) */
  folders: string[];
  /** the repository's root is in the scope: the change may edit any file */
  root: boolean;
  /** protected files inside the folders (a few, for the message) */
  protectedFiles: string[];
}

/** The repository's protected paths as its `.optimus/config.yaml` sets them (policy.protectedPaths), else the farm's defaults. */
async function protectedPatterns(folder: vscode.WorkspaceFolder): Promise<string[]> {
  try {
    const text = Buffer.from(await vscode.workspace.fs.readFile(vscode.Uri.joinPath(folder.uri, ".optimus", "config.yaml"))).toString(
      "utf8",
    );
    const p = (parse(text) as { policy?: { protectedPaths?: unknown } } | null)?.policy?.protectedPaths;
    if (Array.isArray(p) && p.every((x) => typeof x === "string")) return p;
  } catch {
    // no config, or not readable: the defaults
  }
  return DEFAULT_PROTECTED;
}

/**
 * What "Send to Optimus" on folders lets the change touch: a folder scope is everything below it,
 * so say which folders, whether that is the whole repository, and which protected files are inside.
 */
export async function scopeReport(paths: string[], root: boolean): Promise<ScopeReport> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  const report: ScopeReport = { folders: [], root, protectedFiles: [] };
  if (!folder) return report;
  for (const p of paths) {
    const stat = await vscode.workspace.fs.stat(vscode.Uri.joinPath(folder.uri, p)).then(
      (s) => s,
      () => undefined,
    );
    if (stat && stat.type & vscode.FileType.Directory) report.folders.push(p.replace(/\/+$/, ""));
  }
  if (report.folders.length === 0 && !report.root) return report;
  const inScope = (f: string) => report.root || report.folders.some((d) => f === d || f.startsWith(`${d}/`));
  for (const pattern of await protectedPatterns(folder)) {
    const found = await vscode.workspace.findFiles(new vscode.RelativePattern(folder, pattern), "**/node_modules/**", 200);
    for (const uri of found) {
      const rel = vscode.workspace.asRelativePath(uri, false).replace(/\\/g, "/");
      if (inScope(rel) && !report.protectedFiles.includes(rel)) report.protectedFiles.push(rel);
    }
  }
  report.protectedFiles.sort();
  return report;
}

/** The confirmation's sentence, or undefined when the scope is files only (nothing to confirm). */
export function scopeWarning(r: ScopeReport): string | undefined {
  if (!r.root && r.folders.length === 0) return undefined;
  const where = r.root
    ? "any file in the repository"
    : `any file under ${r.folders.map((f) => `${f}/`).join(", ")} (tests and configuration included)`;
  const prot = r.protectedFiles.length
    ? ` It includes protected paths (${r.protectedFiles.slice(0, 4).join(", ")}${r.protectedFiles.length > 4 ? ` and ${r.protectedFiles.length - 4} more` : ""}): a change to them needs an approver.`
    : "";
  return `Send to Optimus: the change may edit ${where}.${prot} Choose files instead to narrow it.`;
}
