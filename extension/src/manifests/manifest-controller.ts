import * as vscode from "vscode";
import { parseManifestYaml, slugify, type ManifestDiagnostic } from "@optimus/shared";
import { describeFarmError } from "../farm/farm-client.js";
import type { FarmConnection } from "../farm/connection.js";
import { manifestTemplate } from "./manifest-template.js";

const isManifest = (uri: vscode.Uri) =>
  uri.scheme === "file" && /[\\/]\.optimus[\\/]tasks[\\/][^\\/]+[\\/]manifest\.yaml$/.test(uri.fsPath);

/**
 * Task manifests in the editor: a new one from a template, problems in the Problems panel as you type
 * (the same parser and checks the farm uses, placed on the right line and field), and sending one.
 */
export class ManifestController implements vscode.Disposable {
  readonly diagnostics = vscode.languages.createDiagnosticCollection("optimus-manifest");
  private readonly disposables: vscode.Disposable[] = [];
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly connection: FarmConnection,
    private readonly reveal: (taskId: string) => Promise<void>,
  ) {
    this.disposables.push(
      vscode.workspace.onDidOpenTextDocument((d) => this.check(d)),
      vscode.workspace.onDidChangeTextDocument((e) => this.checkSoon(e.document)),
      vscode.workspace.onDidCloseTextDocument((d) => isManifest(d.uri) && this.diagnostics.delete(d.uri)),
    );
    for (const d of vscode.workspace.textDocuments) this.check(d);
  }

  private checkSoon(doc: vscode.TextDocument): void {
    if (!isManifest(doc.uri)) return;
    const k = doc.uri.toString();
    clearTimeout(this.pending.get(k));
    this.pending.set(
      k,
      setTimeout(() => this.check(doc), 250),
    );
  }

  /** Validates one manifest document and publishes its problems; returns them. */
  check(doc: vscode.TextDocument): ManifestDiagnostic[] {
    if (!isManifest(doc.uri)) return [];
    const r = parseManifestYaml(doc.getText(), vscode.workspace.asRelativePath(doc.uri, false));
    const problems = r.ok ? [] : r.problems;
    this.diagnostics.set(
      doc.uri,
      problems.map((p) => {
        const line = Math.max(0, Math.min(doc.lineCount - 1, p.line - 1));
        const col = Math.max(0, p.column - 1);
        const end = doc.lineAt(line).range.end.character;
        const d = new vscode.Diagnostic(
          new vscode.Range(line, col, line, Math.max(col + 1, end)),
          `${p.field}: ${p.message}`,
          vscode.DiagnosticSeverity.Error,
        );
        d.source = "optimus";
        d.code = p.field;
        return d;
      }),
    );
    return problems;
  }

  async newManifest(titleArg?: string): Promise<vscode.Uri | undefined> {
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder) {
      void vscode.window.showErrorMessage("Optimus: open the repository's folder first; manifests live in its .optimus/tasks folder.");
      return undefined;
    }
    const title =
      titleArg ??
      (await vscode.window.showInputBox({
        title: "New Task Manifest",
        prompt: "Task title",
        validateInput: (v) => (slugify(v) ? null : "Use at least one letter or digit"),
      }));
    if (!title?.trim()) return undefined;
    let slug = slugify(title);
    for (let i = 2; await exists(vscode.Uri.joinPath(folder.uri, ".optimus", "tasks", slug)); i++) slug = `${slugify(title, 36)}-${i}`;
    const uri = vscode.Uri.joinPath(folder.uri, ".optimus", "tasks", slug, "manifest.yaml");
    await vscode.workspace.fs.writeFile(uri, Buffer.from(manifestTemplate(slug, title.trim())));
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc);
    return uri;
  }

  /** Sends a manifest: refused, with its problems shown, when it does not validate. */
  async runManifest(arg?: unknown): Promise<string | undefined> {
    const uri = arg instanceof vscode.Uri ? arg : vscode.window.activeTextEditor?.document.uri;
    if (!uri || !isManifest(uri)) {
      void vscode.window.showErrorMessage("Optimus: open a task manifest (.optimus/tasks/<name>/manifest.yaml) to run it.");
      return undefined;
    }
    const doc = await vscode.workspace.openTextDocument(uri);
    const r = parseManifestYaml(doc.getText(), vscode.workspace.asRelativePath(uri, false));
    if (!r.ok) {
      this.check(doc);
      // Every problem at once, so fixing one does not just reveal the next.
      const all = r.problems.map((p) => `line ${p.line}, ${p.field}: ${p.message}`).join("; ");
      const n = r.problems.length;
      void vscode.window.showErrorMessage(
        `Optimus: the manifest has ${n} problem${n === 1 ? "" : "s"}, nothing was sent: ${all}. Fix ${n === 1 ? "it" : "them"} (see the Problems panel) and run it again.`,
      );
      return undefined;
    }
    const m = r.manifest;
    const id = m.id ?? uri.path.split("/").slice(-2)[0];
    if (!this.connection.connected) {
      void vscode.window.showErrorMessage(`Optimus: could not run the manifest: ${this.connection.notConnectedReason()}`);
      return undefined;
    }
    try {
      const task = await this.connection.api.tasks.create.mutate({
        id,
        title: m.title,
        description: m.description,
        priority: m.priority,
        targetBranch: m.targetBranch,
        units: m.units.map(({ status: _s, ...u }) => u),
      });
      await this.reveal(task.taskId).catch(() => undefined);
      void vscode.window.showInformationMessage(`Sent manifest as task ${task.taskId} (${task.units.length} units).`);
      return task.taskId;
    } catch (err) {
      void vscode.window.showErrorMessage(
        `Optimus: could not run the manifest: ${describeFarmError(err, this.connection.url ?? "the farm").message}`,
      );
      return undefined;
    }
  }

  dispose(): void {
    for (const t of this.pending.values()) clearTimeout(t);
    this.diagnostics.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

async function exists(uri: vscode.Uri): Promise<boolean> {
  try {
    await vscode.workspace.fs.stat(uri);
    return true;
  } catch {
    return false;
  }
}
