import * as vscode from "vscode";
import type { UnitLiveView } from "@optimus/shared";
import { describeFarmError } from "../farm/farm-client.js";
import type { FarmConnection } from "../farm/connection.js";
import type { ReviewComments } from "../review/review-comments.js";
import type { UnitRef } from "../review/change-documents.js";
import { resolveUnit } from "./unit-target.js";

/** Options tests and other commands pass to skip the prompts. */
export interface ActionOptions {
  reason?: string;
  text?: string;
  confirmed?: boolean;
}

const label = (r: UnitRef) => `${r.taskId}/${r.unitId}`;

/**
 * The one-click decisions and controls on a unit. Each asks the farm (which records the caller's
 * identity), then says what it did; a failure is one readable sentence.
 */
export class UnitActions {
  constructor(private readonly connection: FarmConnection, private readonly comments: ReviewComments) {}

  private async run<T>(what: string, fn: () => Promise<T>, done: (r: T) => string): Promise<T | undefined> {
    try {
      const r = await fn();
      void vscode.window.showInformationMessage(`${done(r)} (recorded as ${this.connection.identity?.actor ?? "you"})`);
      return r;
    } catch (err) {
      const d = describeFarmError(err, this.connection.url ?? "the farm");
      void vscode.window.showErrorMessage(`Optimus: could not ${what}: ${d.message}`);
      return undefined;
    }
  }

  private target(arg: unknown, applies: (u: UnitLiveView) => boolean, verb: string) {
    return resolveUnit(this.connection, arg, applies, `Which unit do you want to ${verb}?`);
  }

  async approve(arg?: unknown): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, (u) => u.state === "awaiting_approval", "approve");
    if (!ref) return;
    return this.run(`approve ${label(ref)}`, () => this.connection.api.reviews.approve.mutate(ref), (u) => `Approved ${label(ref)}${u.state === "merged" ? " and merged it" : "; the farm merges it now"}.`);
  }

  async reject(arg?: unknown, opts: ActionOptions = {}): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, (u) => u.state === "awaiting_approval", "reject");
    if (!ref) return;
    const reason = opts.reason ?? (await vscode.window.showInputBox({ title: `Reject ${label(ref)}`, prompt: "Why is this change rejected? (recorded on the unit)", validateInput: (v) => (v.trim() ? null : "A reason is required") }));
    if (!reason?.trim()) return;
    return this.run(`reject ${label(ref)}`, () => this.connection.api.reviews.reject.mutate({ ...ref, reason: reason.trim() }), () => `Rejected ${label(ref)}.`);
  }

  /** Sends the unit's line comments (and an optional overall note) as one request for changes. */
  async requestChanges(arg?: unknown, opts: ActionOptions = {}): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, (u) => u.state === "awaiting_approval" || u.state === "reviewing", "request changes on");
    if (!ref) return;
    const drafts = this.comments.drafts(ref);
    let text = opts.text;
    if (text === undefined && drafts.length === 0) {
      text = await vscode.window.showInputBox({ title: `Request changes on ${label(ref)}`, prompt: "What should the agent change? (Tip: comment on lines in the diff first)", validateInput: (v) => (v.trim() ? null : "Describe the change you want") });
      if (!text?.trim()) return;
    }
    const comments = [...drafts, ...(text?.trim() ? [{ body: text.trim() }] : [])];
    const r = await this.run(`request changes on ${label(ref)}`, () => this.connection.api.reviews.requestChanges.mutate({ ...ref, comments }), () => `Requested changes on ${label(ref)} with ${comments.length} comment${comments.length === 1 ? "" : "s"}; its next attempt gets them.`);
    if (r) this.comments.clear(ref);
    return r;
  }

  async escalate(arg?: unknown, opts: ActionOptions = {}): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, (u) => !["merged", "completed", "cancelled"].includes(u.state), "escalate");
    if (!ref) return;
    const reason = opts.reason ?? (await vscode.window.showInputBox({ title: `Escalate ${label(ref)} to the frontier model`, prompt: "Optional: what should the frontier model know? The gateway admits it within the budget." }));
    if (reason === undefined) return;
    return this.run(`escalate ${label(ref)}`, () => this.connection.api.units.escalate.mutate({ ...ref, reason: reason.trim() || undefined }), () => `Escalation of ${label(ref)} queued for the frontier model.`);
  }

  async retry(arg?: unknown): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, (u) => u.state === "dead" || u.state === "failed" || u.state === "cancelled", "retry");
    if (!ref) return;
    return this.run(`retry ${label(ref)}`, () => this.connection.api.units.retry.mutate(ref), () => `Retrying ${label(ref)}.`);
  }

  async cancel(arg?: unknown, opts: ActionOptions = {}): Promise<UnitLiveView | undefined> {
    const ref = await this.target(arg, (u) => !["merged", "completed", "cancelled", "dead"].includes(u.state), "cancel");
    if (!ref) return;
    if (!opts.confirmed && (await vscode.window.showWarningMessage(`Cancel unit ${label(ref)}? Units that depend on it will not run.`, { modal: true }, "Cancel Unit")) !== "Cancel Unit") return;
    return this.run(`cancel ${label(ref)}`, () => this.connection.api.units.cancel.mutate({ ...ref, reason: opts.reason }), () => `Cancelled ${label(ref)}.`);
  }

  async cancelTask(arg?: unknown, opts: ActionOptions = {}): Promise<void> {
    const taskId = (arg as { taskId?: string } | undefined)?.taskId;
    if (!taskId) return;
    if (!opts.confirmed && (await vscode.window.showWarningMessage(`Cancel task ${taskId} and all its unfinished units?`, { modal: true }, "Cancel Task")) !== "Cancel Task") return;
    await this.run(`cancel task ${taskId}`, () => this.connection.api.tasks.cancel.mutate({ taskId, reason: opts.reason }), () => `Cancelled task ${taskId}.`);
  }
}
