import * as vscode from "vscode";
import { describeFarmError } from "../farm/farm-client.js";
import type { FarmConnection } from "../farm/connection.js";
import { scopeReport, scopeWarning } from "./send-scope.js";

/** What tests (and other commands) pass instead of answering the prompt. */
export interface SendOptions {
  instruction?: string;
  files?: string[];
  priority?: number;
  /** the scope's confirmation (folders, the repository root) was answered "Send" */
  confirmed?: boolean;
}

const MAX_SELECTION_CHARS = 20_000;

/**
 * "Send to Optimus": from the palette (the active editor's selection, if any), the editor context
 * menu (the selection) or the explorer (the chosen files and folders). Asks for the instruction,
 * creates the task, and reveals it in the tree.
 */
export class SendController {
  constructor(
    private readonly connection: FarmConnection,
    private readonly reveal: (taskId: string) => Promise<void>,
  ) {}

  async send(arg?: unknown, selected?: unknown, opts: SendOptions = {}): Promise<string | undefined> {
    if (this.connection.state === "disconnected") {
      const pick = await vscode.window.showWarningMessage("Optimus: not connected to a farm.", "Connect to Farm");
      if (pick) await vscode.commands.executeCommand("optimus.connect");
      if (this.connection.state === "disconnected") return undefined;
    }
    const scope = this.scopeOf(arg, selected, opts.files);
    // A folder lets the change edit anything below it: say so, and name protected files inside.
    const warning = scopeWarning(await scopeReport(scope.files, scope.root));
    if (warning && !opts.confirmed && (await vscode.window.showWarningMessage(warning, { modal: true }, "Send")) !== "Send")
      return undefined;
    const where = scope.files.length
      ? scope.files.slice(0, 3).join(", ") + (scope.files.length > 3 ? ` and ${scope.files.length - 3} more` : "")
      : "the whole repository";
    const instruction =
      opts.instruction ??
      (await vscode.window.showInputBox({
        title: "Send to Optimus",
        prompt: `What should the farm do? Scope: ${where}${scope.selection ? " (with the selected lines)" : ""}`,
        placeHolder: "e.g. Add input validation to parseConfig and a test for it",
        ignoreFocusOut: true,
        validateInput: (v) => (v.trim() ? null : "Describe the change you want"),
      }));
    if (!instruction?.trim()) return undefined;
    const text = instruction.trim();
    const title = text.split("\n")[0]!.slice(0, 200);
    const description = scope.selection
      ? `${text}\n\nSelected in ${scope.selection.path} (lines ${scope.selection.from}–${scope.selection.to}):\n\n\`\`\`\n${scope.selection.text}\n\`\`\``
      : text;
    try {
      const task = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: "Sending to Optimus…" }, () =>
        this.connection.api.tasks.create.mutate({
          title,
          description,
          files: scope.files.length ? scope.files : undefined,
          priority: opts.priority,
        }),
      );
      await this.reveal(task.taskId).catch(() => undefined);
      void vscode.window.showInformationMessage(
        `Sent to Optimus as task ${task.taskId} (${task.units.length} unit${task.units.length === 1 ? "" : "s"}).`,
      );
      return task.taskId;
    } catch (err) {
      void vscode.window.showErrorMessage(
        `Optimus: could not send the task: ${describeFarmError(err, this.connection.url ?? "the farm").message}`,
      );
      return undefined;
    }
  }

  private scopeOf(arg: unknown, selected: unknown, files?: string[]) {
    if (files) return { files, selection: undefined, root: false };
    const uris =
      Array.isArray(selected) && selected.every((u) => u instanceof vscode.Uri)
        ? (selected as vscode.Uri[])
        : arg instanceof vscode.Uri
          ? [arg]
          : [];
    const editor = vscode.window.activeTextEditor;
    let selection: { path: string; from: number; to: number; text: string } | undefined;
    const fromEditor = uris.length === 0 || (uris.length === 1 && editor && uris[0]!.toString() === editor.document.uri.toString());
    if (fromEditor && editor && editor.document.uri.scheme === "file") {
      if (uris.length === 0) uris.push(editor.document.uri);
      if (!editor.selection.isEmpty) {
        const s = editor.selection;
        selection = {
          path: vscode.workspace.asRelativePath(editor.document.uri, false),
          from: s.start.line + 1,
          to: s.end.line + 1,
          text: editor.document.getText(s).slice(0, MAX_SELECTION_CHARS),
        };
      }
    }
    const inRepo = uris.filter((u) => u.scheme === "file" && vscode.workspace.getWorkspaceFolder(u));
    // The repository's own folder, chosen in the explorer: the whole repository, explicitly.
    const root = inRepo.some((u) => vscode.workspace.getWorkspaceFolder(u)!.uri.toString() === u.toString());
    const rel = inRepo.map((u) => vscode.workspace.asRelativePath(u, false).replace(/\\/g, "/"));
    return { files: [...new Set(rel)].filter((p) => p && p !== "." && !root), selection, root };
  }
}
