import * as vscode from "vscode";
import type { UnitAction, UnitLiveView, UnitView } from "@optimus/shared";
import { describeFarmError, staleOf } from "../farm/farm-client.js";
import type { FarmConnection } from "../farm/connection.js";
import { actionRefusalForPerson } from "../model/action-refusal.js";
import { offeredActions } from "../model/unit-presentation.js";
import type { ReviewComments } from "../review/review-comments.js";
import { parseChangeUri, type ChangeDocuments, type ChangeVersion, type UnitRef } from "../review/change-documents.js";
import { resolveUnit } from "./unit-target.js";

/** Options tests and other commands pass to skip the prompts. */
export interface ActionOptions {
  reason?: string;
  text?: string;
  confirmed?: boolean;
}

const label = (r: UnitRef) => `${r.taskId}/${r.unitId}`;

/**
 * The one-click decisions and controls on a unit. Each is refused at once, with nothing sent, when
 * the editor is not connected or the unit does not allow it; otherwise it asks the farm (which records
 * the caller's identity) and says what it did. Decisions on a change name the version the person saw:
 * the attempt of the open change editor they clicked in, or else the one the tree or notification
 * showed; the farm refuses a decision on any other, and the message offers to open the newer one.
 */
export class UnitActions {
  /** the last message an action showed (the integration suite reads what a person would see) */
  lastMessage: { level: "info" | "error" | "warning"; text: string } | undefined;

  constructor(
    private readonly connection: FarmConnection,
    private readonly comments: ReviewComments,
    private readonly docs: ChangeDocuments,
    private readonly openChange: (ref: UnitRef) => Thenable<unknown>,
  ) {}

  private say(level: "info" | "error" | "warning", text: string, ...buttons: string[]): Thenable<string | undefined> {
    this.lastMessage = { level, text };
    const show =
      level === "info"
        ? vscode.window.showInformationMessage
        : level === "warning"
          ? vscode.window.showWarningMessage
          : vscode.window.showErrorMessage;
    return show(text, ...buttons);
  }

  private async run<T>(what: string, fn: () => Promise<T>, done: (r: T) => string, ref?: UnitRef): Promise<T | undefined> {
    try {
      const r = await fn();
      void this.say("info", `${done(r)} (recorded as ${this.connection.identity?.actor ?? "you"})`);
      return r;
    } catch (err) {
      const stale = ref && staleOf(err);
      if (stale && ref) {
        const open = `Open attempt ${stale.attempt}`;
        void this.say(
          "warning",
          `Optimus: nothing was done: ${(err as Error).message}. Review attempt ${stale.attempt}, then decide on it.`,
          open,
        ).then((a) => a === open && this.openChange(ref));
        return undefined;
      }
      const d = describeFarmError(err, this.connection.url ?? "the farm");
      void this.say("error", `Optimus: could not ${what}: ${d.message}`);
      return undefined;
    }
  }

  /**
   * Whether a click can act now, checked before any prompt and before anything is sent: connected,
   * and (for a known unit) the action is one the farm allows and this token may take.
   */
  private refused(action: UnitAction | "cancelTask", what: string, ref?: UnitRef): boolean {
    if (!this.connection.connected) {
      void this.say("error", `Optimus: could not ${what}: ${this.connection.notConnectedReason()}`);
      return true;
    }
    const u = ref && this.connection.views.unit(ref.taskId, ref.unitId);
    if (!u || action === "cancelTask") return false;
    const why = actionRefusalForPerson(u, action, this.connection.viewContext());
    if (why) void this.say("error", `Optimus: could not ${what}: ${why}.`);
    return why !== null;
  }

  private async target(arg: unknown, action: UnitAction, verb: string): Promise<UnitRef | undefined> {
    if (this.refused(action, verb)) return undefined;
    const ctx = this.connection.viewContext();
    const ref = await resolveUnit(
      this.connection,
      arg,
      (u) => offeredActions(u, ctx).includes(action),
      `Which unit do you want to ${verb}?`,
    );
    if (!ref || this.refused(action, `${verb} ${label(ref)}`, ref)) return undefined;
    return ref;
  }

  /**
   * The version of the change the person decides on: the change editor they clicked in (its URI, or
   * the active editor's, from the palette), else what the panel or notification showed them (`seen`), else the
   * unit's evaluated change as this editor last heard it from the farm.
   */
  versionSeen(arg: unknown, ref: UnitRef, seen?: Partial<ChangeVersion>): ChangeVersion | undefined {
    const fromArg =
      arg instanceof vscode.Uri
        ? arg
        : (arg as { uri?: unknown } | undefined)?.uri instanceof vscode.Uri
          ? (arg as { uri: vscode.Uri }).uri
          : undefined;
    // The active editor stands in only for a bare command (the palette): a tree node or notification names its unit.
    for (const uri of [fromArg, arg === undefined ? vscode.window.activeTextEditor?.document.uri : undefined]) {
      const c = uri && parseChangeUri(uri);
      if (!c || c.taskId !== ref.taskId || c.unitId !== ref.unitId) continue;
      const v = this.docs.versionOf(uri);
      if (v) return { attempt: v.attempt, head: v.head };
    }
    if (seen?.attempt !== undefined && seen.head) return { attempt: seen.attempt, head: seen.head };
    const ev = this.connection.views.unit(ref.taskId, ref.unitId)?.evaluation;
    return ev ? { attempt: ev.attempt, head: ev.commit } : undefined;
  }

  private version(arg: unknown, ref: UnitRef, what: string): ChangeVersion | undefined {
    const v = this.versionSeen(arg, ref, seenOf(arg));
    if (!v) void this.say("error", `Optimus: could not ${what}: it has no evaluated change yet. Wait until the unit awaits approval.`);
    return v;
  }

  async approve(arg?: unknown): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, "approve", "approve");
    if (!ref) return;
    const v = this.version(arg, ref, `approve ${label(ref)}`);
    if (!v) return;
    return this.run(
      `approve ${label(ref)}`,
      () => this.connection.api.reviews.approve.mutate({ ...ref, ...v }),
      (u) => `Approved ${label(ref)} attempt ${v.attempt}${u.state === "merged" ? " and merged it" : "; the farm merges it now"}.`,
      ref,
    );
  }

  async reject(arg?: unknown, opts: ActionOptions = {}): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, "reject", "reject");
    if (!ref) return;
    const v = this.version(arg, ref, `reject ${label(ref)}`);
    if (!v) return;
    const reason =
      opts.reason ??
      (await vscode.window.showInputBox({
        title: `Reject ${label(ref)} attempt ${v.attempt}`,
        prompt: "Why is this change rejected? (recorded on the unit)",
        validateInput: (x) => (x.trim() ? null : "A reason is required"),
      }));
    if (!reason?.trim()) return;
    return this.run(
      `reject ${label(ref)}`,
      () => this.connection.api.reviews.reject.mutate({ ...ref, ...v, reason: reason.trim() }),
      () => `Rejected ${label(ref)} attempt ${v.attempt}.`,
      ref,
    );
  }

  /** Sends the unit's pending line comments (and an optional overall note) as one request for changes. */
  async requestChanges(arg?: unknown, opts: ActionOptions = {}): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, "request_changes", "request changes on");
    if (!ref) return;
    const v = this.version(arg, ref, `request changes on ${label(ref)}`);
    if (!v) return;
    const drafts = this.comments.drafts(ref);
    let text = opts.text;
    if (text === undefined && drafts.length === 0) {
      text = await vscode.window.showInputBox({
        title: `Request changes on ${label(ref)} attempt ${v.attempt}`,
        prompt: "What should the agent change? (Tip: comment on lines in the diff first)",
        validateInput: (x) => (x.trim() ? null : "Describe the change you want"),
      });
      if (!text?.trim()) return;
    }
    const comments = [...drafts, ...(text?.trim() ? [{ body: text.trim() }] : [])];
    const r = await this.run(
      `request changes on ${label(ref)}`,
      () => this.connection.api.reviews.requestChanges.mutate({ ...ref, ...v, comments }),
      () =>
        `Requested changes on ${label(ref)} attempt ${v.attempt} with ${comments.length} comment${comments.length === 1 ? "" : "s"}; its next attempt gets them.`,
      ref,
    );
    if (r) this.comments.markSent(ref);
    return r;
  }

  async escalate(arg?: unknown, opts: ActionOptions = {}): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, "escalate", "escalate");
    if (!ref) return;
    const reason =
      opts.reason ??
      (await vscode.window.showInputBox({
        title: `Escalate ${label(ref)} to the frontier model`,
        prompt: "Optional: what should the frontier model know? The gateway admits it within the budget.",
      }));
    if (reason === undefined) return;
    return this.run(
      `escalate ${label(ref)}`,
      () => this.connection.api.units.escalate.mutate({ ...ref, reason: reason.trim() || undefined }),
      () => `Escalation of ${label(ref)} queued for the frontier model.`,
    );
  }

  async retry(arg?: unknown): Promise<UnitView | undefined> {
    const ref = await this.target(arg, "retry", "retry");
    if (!ref) return;
    return this.run(
      `retry ${label(ref)}`,
      () => this.connection.api.units.retry.mutate(ref),
      () => `Retrying ${label(ref)}.`,
    );
  }

  async cancel(arg?: unknown, opts: ActionOptions = {}): Promise<UnitView | undefined> {
    const ref = await this.target(arg, "cancel", "cancel");
    if (!ref) return;
    if (
      !opts.confirmed &&
      (await vscode.window.showWarningMessage(
        `Cancel unit ${label(ref)}? Units that depend on it will not run.`,
        { modal: true },
        "Cancel Unit",
      )) !== "Cancel Unit"
    )
      return;
    return this.run(
      `cancel ${label(ref)}`,
      () => this.connection.api.units.cancel.mutate({ ...ref, reason: opts.reason }),
      () => `Cancelled ${label(ref)}.`,
    );
  }

  async cancelTask(arg?: unknown, opts: ActionOptions = {}): Promise<void> {
    const taskId = (arg as { taskId?: string } | undefined)?.taskId;
    if (!taskId || this.refused("cancelTask", `cancel task ${taskId}`)) return;
    if (
      !opts.confirmed &&
      (await vscode.window.showWarningMessage(`Cancel task ${taskId} and all its unfinished units?`, { modal: true }, "Cancel Task")) !==
        "Cancel Task"
    )
      return;
    await this.run(
      `cancel task ${taskId}`,
      () => this.connection.api.tasks.cancel.mutate({ taskId, reason: opts.reason }),
      () => `Cancelled task ${taskId}.`,
    );
  }
}

/** The version a notification or panel passed along with the unit (`{taskId, unitId, attempt, head}`). */
function seenOf(arg: unknown): Partial<ChangeVersion> | undefined {
  const o = arg as { attempt?: unknown; head?: unknown } | undefined;
  return o && typeof o.attempt === "number" && typeof o.head === "string" ? { attempt: o.attempt, head: o.head } : undefined;
}
