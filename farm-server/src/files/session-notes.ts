import { appendFile, mkdir, readdir } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { FarmEvent } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";

/** repository-relative, with forward slashes (it is a path in git trees too) */
export const SESSIONS_DIR = ".optimus/sessions";

/**
 * `.optimus/sessions/<task>/<unit>.md`: what each attempt of a unit did and why it ended as it did,
 * written from the journal as it happens. A later attempt (after a restart too) gets these notes in
 * its lease, and they are committed with the task's milestones. One folder per task, so finding a
 * task's notes reads that folder only, whatever the farm's history (one folder of every unit's
 * notes grew to 100,000 files and was read at every milestone).
 */
export class SessionNotes {
  private chain: Promise<unknown> = Promise.resolve();
  /**
   * Text committed to the journal but not yet appended to its file, by file. A lease is often
   * handed out a moment after the event that ends the previous attempt: `read` must include it.
   */
  private readonly pending = new Map<string, string[]>();
  private readonly listener = (events: FarmEvent[]) => this.onCommitted(events);

  constructor(
    private readonly state: FarmState,
    private readonly repo: string,
    private readonly log: (msg: string, err?: unknown) => void,
  ) {}

  start(): void {
    this.state.on("committed", this.listener);
  }

  stop(): void {
    this.state.off("committed", this.listener);
  }

  async idle(): Promise<void> {
    await this.chain;
  }

  relPath(taskId: string, unitId: string): string {
    return `${SESSIONS_DIR}/${taskId}/${unitId}.md`;
  }

  /** Where notes were written before they had a folder per task (read still, never written). */
  private legacyPath(taskId: string, unitId: string): string {
    const t = this.state.projection.tasks.get(taskId);
    const date = new Date(t?.createdAt ?? Date.now()).toISOString().slice(0, 10);
    return join(this.repo, SESSIONS_DIR, `${date}-${taskId}-${unitId}.md`);
  }

  /** The notes so far (the end of them), for the next attempt's lease. */
  read(taskId: string, unitId: string, maxChars = 6_000): string | undefined {
    const rel = this.relPath(taskId, unitId);
    const file = [join(this.repo, rel), this.legacyPath(taskId, unitId)].find((f) => existsSync(f));
    const text = (file ? readFileSync(file, "utf8") : "") + (this.pending.get(rel) ?? []).join("");
    if (!text) return undefined;
    return text.length > maxChars ? `…${text.slice(-maxChars)}` : text;
  }

  /** Session files of a task, repository-relative (for milestone commits). */
  async filesOf(taskId: string): Promise<string[]> {
    const dir = join(this.repo, SESSIONS_DIR, taskId);
    if (!existsSync(dir)) return [];
    return (await readdir(dir))
      .filter((f) => f.endsWith(".md"))
      .sort()
      .map((f) => `${SESSIONS_DIR}/${taskId}/${f}`);
  }

  private onCommitted(events: FarmEvent[]): void {
    for (const e of events) {
      const text = this.render(e);
      if (!text) continue;
      const { taskId, unitId } = e.data as { taskId: string; unitId: string };
      const rel = this.relPath(taskId, unitId);
      const u = this.state.projection.units.get(`${taskId}/${unitId}`);
      const queued = this.pending.get(rel) ?? [];
      queued.push(text);
      this.pending.set(rel, queued);
      this.chain = this.chain
        .then(async () => {
          const file = join(this.repo, rel);
          await mkdir(join(this.repo, SESSIONS_DIR, taskId), { recursive: true });
          const head = existsSync(file)
            ? ""
            : `# Session notes: ${taskId}/${unitId}\n\n**Goal:** ${u?.spec.goal ?? "?"}\n${u?.spec.check ? `\n**Check:** \`${u.spec.check}\`\n` : ""}`;
          await appendFile(file, head + text);
        })
        .catch((err) => this.log(`could not write session notes ${rel}`, err))
        .finally(() => {
          // On disk now (or failed, and logged): no longer pending.
          queued.shift();
          if (queued.length === 0 && this.pending.get(rel) === queued) this.pending.delete(rel);
        });
    }
  }

  private render(e: FarmEvent): string | null {
    const at = new Date(e.ts).toISOString();
    const fence = (s: string) => "```\n" + s.replace(/```/g, "ʼʼʼ").slice(-3_000) + "\n```\n";
    switch (e.type) {
      case "unit_leased":
        return `\n## Attempt ${e.data.attempt}\n\n- ${at}: leased to ${e.data.worker}\n`;
      case "unit_submitted": {
        const s = e.data.signals;
        const used = s
          ? ` (model ${s.model ?? "?"}, ${s.tokens ?? 0} tokens${s.confidence !== undefined ? `, lowest token confidence ${s.confidence.toFixed(2)}` : ""}, ${s.iterations ?? 0} iteration(s), ${s.checksFailed ?? 0} failed check(s))`
          : "";
        return `- ${at}: ${e.data.worker} reported **${e.data.outcome}**${used}: ${e.data.summary || "(no summary)"}\n${e.data.evidence ? `\n${fence(e.data.evidence)}` : ""}`;
      }
      case "unit_evaluated":
        return `- ${at}: evals ${e.data.green ? "green" : "red"} (${e.data.evals.map((x) => `${x.name}: exit ${x.exitCode}`).join(", ") || "none configured"}); ${e.data.diff.files.length} file(s), +${e.data.diff.added}/-${e.data.diff.removed}\n`;
      case "unit_reviewed":
        return `- ${at}: review by ${e.data.reviewUnitId}: **${e.data.verdict.verdict}**, risk ${e.data.verdict.risk}: ${e.data.verdict.summary}\n${e.data.verdict.comments.map((c) => `  - ${c.path}:${c.line}: ${c.body}\n`).join("")}`;
      case "unit_failed":
        return `- ${at}: **failed**: ${e.data.reason}${e.data.next === "dead" ? " — no attempts left" : " — will retry"}\n`;
      case "lease_expired":
        return `- ${at}: lease of ${e.data.worker} expired (no heartbeat)${e.data.next === "dead" ? " — no attempts left" : ""}\n`;
      case "changes_requested":
        return `- ${at}: **changes requested**: ${e.data.feedback}\n`;
      case "unit_held":
        return `- ${at}: **held for approval**: ${e.data.risk.reasons.join("; ")}\n`;
      case "unit_merged":
        return `- ${at}: **merged** into ${e.data.into} as ${e.data.commit.slice(0, 10)} (${e.data.auto ? "automatically, low risk" : `approved by ${e.actor}`})\n`;
      case "unit_rejected":
        return `- ${at}: **rejected** by ${e.actor}: ${e.data.reason}\n`;
      default:
        return null;
    }
  }
}
