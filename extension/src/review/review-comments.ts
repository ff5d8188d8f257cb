import * as vscode from "vscode";
import { unitKey, type ViewsChange } from "@optimus/shared";
import { CHANGE_SCHEME, COMMENT_CONTROLLER } from "../constants.js";
import type { FarmConnection } from "../farm/connection.js";
import { changeUri, parseChangeUri, type UnitChange, type UnitRef } from "./change-documents.js";

/** A comment the user wrote on a line of a proposed change: pending until sent, then sent. */
class DraftComment implements vscode.Comment {
  mode = vscode.CommentMode.Preview;
  contextValue = "draft";
  label: string | undefined = "Pending";
  readonly timestamp = new Date();
  constructor(
    public body: string | vscode.MarkdownString,
    public author: vscode.CommentAuthorInformation,
    readonly thread: vscode.CommentThread,
  ) {}
}

/** What a thread is: the agent reviewer's, or the person's (drafts, then sent). */
interface ThreadInfo {
  ref: UnitRef;
  attempt: number;
  kind: "agent" | "person";
  /** sent with a request for changes (the person's), or left as they were */
  sent?: boolean;
}

/**
 * Line comments on a unit's proposed change (Comments API), kept like a pull request's: the agent
 * reviewer's comments are one thread each per unit, attempt and comment, however often the change is
 * opened; the person's comments are pending until sent as one "request changes", then stay (resolved)
 * beside the agent's; when a newer attempt arrives, the older attempt's threads stay, marked outdated;
 * when the unit is merged, its threads are closed and read-only.
 */
export class ReviewComments implements vscode.Disposable {
  private readonly controller = vscode.comments.createCommentController(COMMENT_CONTROLLER, "Optimus review");
  /** agent threads by `task/unit/attempt/index`, so reopening a change never adds them twice */
  private readonly agentThreads = new Map<string, vscode.CommentThread>();
  private readonly info = new Map<vscode.CommentThread, ThreadInfo>();
  private readonly sub: vscode.Disposable;

  constructor(private readonly connection: FarmConnection) {
    this.controller.options = {
      prompt: "Comment on this line for the agent…",
      placeHolder: "What should change here? (sent with Request Changes)",
    };
    this.controller.commentingRangeProvider = {
      provideCommentingRanges: (doc) => {
        const c = parseChangeUri(doc.uri);
        if (!c || c.side !== "proposed" || doc.uri.scheme !== CHANGE_SCHEME) return [];
        // Only the unit's current attempt takes new comments.
        const u = this.connection.views.unit(c.taskId, c.unitId);
        if (u && (u.evaluation?.attempt !== c.attempt || u.state === "merged")) return [];
        return [new vscode.Range(0, 0, Math.max(0, doc.lineCount - 1), 0)];
      },
    };
    this.sub = connection.onDidChangeViews((c) => this.follow(c));
  }

  /** All threads of a unit (tests and the views read them). */
  threadsOf(ref: UnitRef): vscode.CommentThread[] {
    return [...this.info].filter(([, i]) => i.ref.taskId === ref.taskId && i.ref.unitId === ref.unitId).map(([t]) => t);
  }

  /** The reviewer worker's line comments on an attempt, as read-only threads on its proposed side. */
  showReviewerComments(ref: UnitRef, change: UnitChange): void {
    (change.review?.comments ?? []).forEach((c, i) => {
      const k = `${ref.taskId}/${ref.unitId}/${change.attempt}/${i}`;
      if (this.agentThreads.has(k) || !c.path || !change.files.some((f) => f.path === c.path && f.status !== "deleted")) return;
      const uri = changeUri({ ...ref, attempt: change.attempt, side: "proposed", path: c.path });
      const line = Math.max(0, (c.line ?? 1) - 1);
      const thread = this.controller.createCommentThread(uri, new vscode.Range(line, 0, line, 0), []);
      thread.comments = [
        {
          body: new vscode.MarkdownString(c.body),
          mode: vscode.CommentMode.Preview,
          author: { name: "reviewer (agent)" },
          contextValue: "reviewer",
        },
      ];
      thread.canReply = true;
      thread.contextValue = "reviewer";
      thread.collapsibleState = vscode.CommentThreadCollapsibleState.Expanded;
      this.agentThreads.set(k, thread);
      this.info.set(thread, { ref, attempt: change.attempt, kind: "agent" });
      this.describe(thread);
    });
  }

  /** Adds the user's comment to a thread (the reply button in the comment widget): pending until sent. */
  addComment(reply: vscode.CommentReply): DraftComment | undefined {
    const c = parseChangeUri(reply.thread.uri);
    const text = reply.text.trim();
    if (!c || !text) return undefined;
    const draft = new DraftComment(text, { name: this.connection.identity?.name ?? "me" }, reply.thread);
    reply.thread.comments = [...reply.thread.comments, draft];
    if (!this.info.has(reply.thread))
      this.info.set(reply.thread, { ref: { taskId: c.taskId, unitId: c.unitId }, attempt: c.attempt, kind: "person" });
    reply.thread.contextValue = "draft";
    this.describe(reply.thread);
    return draft;
  }

  /** For tests and commands: a draft at a line (1-based) of a proposed file. */
  addDraftAt(ref: UnitRef, attempt: number, path: string, line: number, text: string): DraftComment | undefined {
    const uri = changeUri({ ...ref, attempt, side: "proposed", path });
    const thread = this.controller.createCommentThread(uri, new vscode.Range(line - 1, 0, line - 1, 0), []);
    return this.addComment({ thread, text });
  }

  deleteComment(comment: DraftComment): void {
    const t = comment.thread;
    t.comments = t.comments.filter((c) => c !== comment);
    if (t.comments.length === 0) {
      this.info.delete(t);
      t.dispose();
    } else this.describe(t);
  }

  private pendingOf(t: vscode.CommentThread): DraftComment[] {
    return t.comments.filter((c): c is DraftComment => c instanceof DraftComment && c.contextValue === "draft");
  }

  /** The pending drafts of a unit, as the farm's `requestChanges` takes them. */
  drafts(ref: UnitRef): Array<{ path: string; line: number; body: string }> {
    const out: Array<{ path: string; line: number; body: string }> = [];
    for (const t of this.threadsOf(ref)) {
      const c = parseChangeUri(t.uri);
      if (!c || !t.range) continue;
      for (const cm of this.pendingOf(t))
        out.push({ path: c.path, line: t.range.start.line + 1, body: typeof cm.body === "string" ? cm.body : cm.body.value });
    }
    return out;
  }

  /** After a request for changes: the drafts are sent, and stay shown (resolved) with the agent's. */
  markSent(ref: UnitRef): void {
    for (const t of this.threadsOf(ref)) {
      const pending = this.pendingOf(t);
      if (pending.length === 0) continue;
      for (const d of pending) {
        d.label = "Sent";
        d.contextValue = "sent";
      }
      t.comments = [...t.comments];
      this.info.get(t)!.sent = true;
      this.describe(t);
    }
  }

  /** A thread's label, state and whether it takes replies, from its unit's state on the farm. */
  private describe(t: vscode.CommentThread): void {
    const i = this.info.get(t);
    if (!i) return;
    const u = this.connection.views.unit(i.ref.taskId, i.ref.unitId);
    const merged = u?.state === "merged";
    const outdated = !!u?.evaluation && u.evaluation.attempt > i.attempt;
    const who =
      i.kind === "agent"
        ? "Agent review"
        : i.sent
          ? "Sent to the agent"
          : this.pendingOf(t).length
            ? "Pending — sent with Request Changes"
            : "Your comment";
    t.label = merged
      ? `${who} · attempt ${i.attempt} · merged (closed)`
      : outdated
        ? `${who} · attempt ${i.attempt} · outdated`
        : `${who} · attempt ${i.attempt}`;
    const closed = merged || outdated || i.sent === true;
    t.canReply = !closed;
    t.state = closed ? vscode.CommentThreadState.Resolved : vscode.CommentThreadState.Unresolved;
    if (merged || outdated) t.collapsibleState = vscode.CommentThreadCollapsibleState.Collapsed;
    t.contextValue = merged ? "closed" : outdated ? "outdated" : i.kind === "agent" ? "reviewer" : i.sent ? "sent" : "draft";
  }

  /** A unit changed on the farm: its threads follow (outdated, merged). */
  private follow(c: ViewsChange): void {
    for (const [t, i] of this.info) if (c.reset || c.units.has(unitKey(i.ref.taskId, i.ref.unitId))) this.describe(t);
  }

  dispose(): void {
    this.sub.dispose();
    this.controller.dispose();
  }
}

export type { DraftComment };
