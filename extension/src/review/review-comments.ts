import * as vscode from "vscode";
import { CHANGE_SCHEME, COMMENT_CONTROLLER } from "../constants.js";
import type { FarmConnection } from "../farm/connection.js";
import { changeUri, parseChangeUri, type UnitChange, type UnitRef } from "./change-documents.js";

/** A comment the user wrote on a line of a proposed change, not yet sent. */
class DraftComment implements vscode.Comment {
  mode = vscode.CommentMode.Preview;
  contextValue = "draft";
  readonly timestamp = new Date();
  constructor(public body: string | vscode.MarkdownString, public author: vscode.CommentAuthorInformation, readonly thread: vscode.CommentThread) {}
}

/**
 * Line comments on a unit's proposed change (Comments API). The reviewer worker's own comments are
 * shown as threads; a person adds theirs and sends them all as one "request changes", which the farm
 * records with their identity and hands to the unit's next attempt.
 */
export class ReviewComments implements vscode.Disposable {
  private readonly controller = vscode.comments.createCommentController(COMMENT_CONTROLLER, "Optimus review");
  /** threads per unit key, so sending collects exactly that unit's drafts */
  private readonly threads = new Map<string, Set<vscode.CommentThread>>();

  constructor(private readonly connection: FarmConnection) {
    this.controller.options = { prompt: "Comment on this line for the agent…", placeHolder: "What should change here?" };
    this.controller.commentingRangeProvider = {
      provideCommentingRanges: (doc) => {
        const c = parseChangeUri(doc.uri);
        if (!c || c.side !== "proposed" || doc.uri.scheme !== CHANGE_SCHEME) return [];
        return [new vscode.Range(0, 0, Math.max(0, doc.lineCount - 1), 0)];
      },
    };
  }

  private key(ref: UnitRef): string {
    return `${ref.taskId}/${ref.unitId}`;
  }

  private track(ref: UnitRef, thread: vscode.CommentThread): void {
    const k = this.key(ref);
    let set = this.threads.get(k);
    if (!set) this.threads.set(k, (set = new Set()));
    set.add(thread);
  }

  /** The reviewer worker's line comments, as read-only threads on the proposed side. */
  showReviewerComments(ref: UnitRef, change: UnitChange): void {
    for (const c of change.review?.comments ?? []) {
      if (!change.files.some((f) => f.path === c.path)) continue;
      const uri = changeUri({ ...ref, attempt: change.attempt, side: "proposed", path: c.path });
      const line = Math.max(0, c.line - 1);
      const thread = this.controller.createCommentThread(uri, new vscode.Range(line, 0, line, 0), []);
      thread.comments = [{ body: new vscode.MarkdownString(c.body), mode: vscode.CommentMode.Preview, author: { name: "reviewer (agent)" }, contextValue: "reviewer" }];
      thread.canReply = true;
      thread.label = "Agent review";
      thread.contextValue = "reviewer";
      thread.collapsibleState = vscode.CommentThreadCollapsibleState.Expanded;
      this.track(ref, thread);
    }
  }

  /** Adds the user's comment to a thread (the reply button in the comment widget). */
  addComment(reply: vscode.CommentReply): DraftComment | undefined {
    const c = parseChangeUri(reply.thread.uri);
    const text = reply.text.trim();
    if (!c || !text) return undefined;
    const draft = new DraftComment(text, { name: this.connection.identity?.name ?? "me" }, reply.thread);
    reply.thread.comments = [...reply.thread.comments, draft];
    reply.thread.contextValue = "draft";
    this.track(c, reply.thread);
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
    if (t.comments.length === 0) t.dispose();
  }

  /** The drafts of a unit, as the farm's `requestChanges` takes them. */
  drafts(ref: UnitRef): Array<{ path: string; line: number; body: string }> {
    const out: Array<{ path: string; line: number; body: string }> = [];
    for (const t of this.threads.get(this.key(ref)) ?? []) {
      const c = parseChangeUri(t.uri);
      if (!c || !t.range) continue;
      for (const cm of t.comments) {
        if (!(cm instanceof DraftComment)) continue;
        out.push({ path: c.path, line: t.range.start.line + 1, body: typeof cm.body === "string" ? cm.body : cm.body.value });
      }
    }
    return out;
  }

  /** After sending: the unit's threads are closed (the next attempt brings a new change). */
  clear(ref: UnitRef): void {
    for (const t of this.threads.get(this.key(ref)) ?? []) t.dispose();
    this.threads.delete(this.key(ref));
  }

  dispose(): void {
    this.controller.dispose();
  }
}

export type { DraftComment };
