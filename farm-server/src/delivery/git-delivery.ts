/**
 * Delivery to a plain git remote: a finished task's integration branch is merged onto the target
 * branch's tip *as the origin has it now* and the target is moved by a push that only
 * fast-forwards — compare-and-swap on the tip the farm merged onto, never a forced update. The
 * merge is reported only once the origin's target contains it.
 */
import type { Logger } from "pino";
import { integrationBranch, taskTrailer, type FarmRepo } from "../git/farm-repo.js";
import type { OriginClone } from "./origin.js";

export type Delivery =
  | { ok: true; commit: string; into: string; already: boolean; retries: number }
  /** nothing changed on the origin; `conflicts` lists the files when the merge conflicts */
  | { ok: false; into: string; reason: string; conflicts?: string[] };

export interface GitDeliveryOptions {
  repo: FarmRepo;
  origin: OriginClone;
  log: Logger;
  /** tries when the target moves between the farm's fetch and its push */
  movedTargetRetries: number;
  /** keep the task's branches after the merge (else they are deleted, locally and on the origin) */
  keepBranches: boolean;
  /**
   * The eval suite on a merge onto a target that moved since the task's branch was cut (its new
   * commits were never evaluated with the task's change): null when green, else why not.
   */
  evaluate?: (taskId: string, commit: string) => Promise<string | null>;
  /**
   * Among farm nodes sharing a store: whether this node still leads, asked right before each push.
   * A node that woke from a pause past its lease must not move the origin's branches under the
   * node that took over (the journal refuses its writes; this keeps its git from landing too).
   */
  stillLeads?: () => Promise<boolean>;
}

export const NOT_LEADING = "this farm node no longer leads (another took over): it pushes nothing";

export class GitDelivery {
  /** per branch, the head the origin confirmed last (forgotten when a delivery through it fails) */
  private readonly pushed = new Map<string, string>();

  constructor(private readonly o: GitDeliveryOptions) {}

  /** The origin may no longer hold what was pushed (a delivery failed): the next push is done again. */
  forgetPush(taskId: string): void {
    this.pushed.delete(integrationBranch(taskId));
  }

  /** Pushes the task's integration branch (fast-forward only). Returns why it could not, or null. */
  async pushBranch(taskId: string, opts: { unlessPushed?: boolean } = {}): Promise<string | null> {
    const branch = integrationBranch(taskId);
    const head = await this.o.repo.revParse(`refs/heads/${branch}`);
    if (!head) return `the farm has no branch ${branch}`;
    // The same head pushed a moment ago (an approval pushes, then the delivery would again): once is enough.
    if (opts.unlessPushed && this.pushed.get(branch) === head) return null;
    this.pushed.delete(branch);
    if (this.o.stillLeads && !(await this.o.stillLeads())) return NOT_LEADING;
    const r = await this.o.origin.push([`${head}:refs/heads/${branch}`]);
    if (r.ok) {
      this.pushed.set(branch, head);
      return null;
    }
    return r.moved
      ? `the origin's ${branch} has commits the farm does not have (someone pushed to it); the farm does not overwrite them`
      : r.reason;
  }

  /**
   * Publishes an evaluated attempt's branch (farm nodes sharing a store): a node that takes over
   * merges the change from there instead of having the unit done again. Returns why not, or null.
   */
  async pushAttempt(branch: string): Promise<string | null> {
    const head = await this.o.repo.revParse(`refs/heads/${branch}`);
    if (!head) return `the farm has no branch ${branch}`;
    if (this.o.stillLeads && !(await this.o.stillLeads())) return NOT_LEADING;
    const r = await this.o.origin.push([`${head}:refs/heads/${branch}`]);
    return r.ok ? null : r.moved ? `the origin's ${branch} is another commit` : r.reason;
  }

  /**
   * Merges the task's integration branch into `into` on the origin. At most once: a merge that
   * landed before a crash is found (the origin's target already contains the branch's tip).
   */
  deliver(taskId: string, into: string, message: string): Promise<Delivery> {
    // One delivery into a target at a time on this node: tasks finishing together would otherwise
    // race each other's pushes and spend their retries on "the target moved" (meant for other pushers).
    return this.o.repo.serial(`:origin:${into}`, () => this.deliverNow(taskId, into, message));
  }

  private async deliverNow(taskId: string, into: string, message: string): Promise<Delivery> {
    const { repo, origin } = this.o;
    const branch = integrationBranch(taskId);
    const head = await repo.revParse(`refs/heads/${branch}`);
    if (!head) return { ok: false, into, reason: `the farm has no branch ${branch}` };
    for (let attempt = 0; ; attempt++) {
      await origin.fetch();
      const tip = await origin.tracked(into);
      if (!tip) return { ok: false, into, reason: `the target branch '${into}' does not exist on the origin` };
      if (await repo.isAncestor(head, tip))
        return { ok: true, commit: (await this.mergeOf(tip, head)) ?? tip, into, already: true, retries: attempt };
      // Merged by the farm node that led before a takeover, from its own copy of the branch (this
      // node's may differ in its files): found by the task's trailer on the target.
      const landed = await this.landedMerge(taskId, head, tip);
      if (landed) return { ok: true, commit: landed, into, already: true, retries: attempt };
      const merged = await repo.mergeCommit(tip, head, message);
      if (!merged.ok)
        return {
          ok: false,
          into,
          reason: `${merged.reason} (the task's branch ${branch} against ${into} at ${tip.slice(0, 10)}); resolve them on ${branch} or send the task again`,
          conflicts: merged.conflicts,
        };
      if (this.o.evaluate && !(await repo.isAncestor(tip, head))) {
        const failed = await this.o.evaluate(taskId, merged.commit);
        if (failed)
          return {
            ok: false,
            into,
            reason: `the evals fail on the merge with ${into}'s newer commits (${failed}); fix it on ${branch} or send the task again, then approve`,
          };
      }
      // The task's branch first (a person reading the target finds the branch it came from), then
      // the target: both fast-forward only.
      if (this.o.stillLeads && !(await this.o.stillLeads())) return { ok: false, into, reason: NOT_LEADING };
      const pushed = await origin.push([`${head}:refs/heads/${branch}`, `${merged.commit}:refs/heads/${into}`]);
      if (pushed.ok) {
        // True only once the origin says so: its report of the push, else what it shows now.
        const now = pushed.confirmed ? merged.commit : await origin.remoteTip(into);
        if (now !== merged.commit) {
          await origin.fetch();
          const t = await origin.tracked(into);
          if (!t || !(await repo.isAncestor(merged.commit, t)))
            return {
              ok: false,
              into,
              reason: `the push was accepted but the origin's ${into} is at ${now?.slice(0, 10) ?? "nothing"}, without the merge`,
            };
        }
        return { ok: true, commit: merged.commit, into, already: false, retries: attempt };
      }
      if (!pushed.moved) {
        // A refusal may still be a race the client could not see (the ref moved after the origin
        // advertised it: "cannot lock ref … expected …"): the target's tip now tells.
        await origin.fetch();
        if ((await origin.tracked(into)) === tip) return { ok: false, into, reason: `the origin refused the merge: ${pushed.reason}` };
      }
      if (attempt >= this.o.movedTargetRetries)
        return { ok: false, into, reason: `the origin's ${into} kept moving (${attempt + 1} tries); approve to try again` };
      this.o.log.info({ taskId, into }, "the target branch moved on the origin; merging again on its new tip");
    }
  }

  /**
   * The task's merge on the target's first-parent line, looked for only since the task's branch
   * was cut (its merge base with the target), so the search does not grow with the history.
   */
  private async landedMerge(taskId: string, head: string, tip: string): Promise<string | null> {
    const git = this.o.repo.git;
    const base = (await git.raw(["merge-base", head, tip]).catch(() => "")).trim();
    if (!base) return null;
    const line = `^${taskTrailer(taskId).replace(/[.*[\]^$\\]/g, "\\$&")}$`; // basic regex, one whole line
    const out = await git
      .raw(["log", "--first-parent", "--merges", "--format=%H", `--grep=${line}`, "-n", "1", `${base}..${tip}`])
      .catch(() => "");
    return out.trim() || null;
  }

  /** The merge commit that brought `head` into `tip` (first parent line), if it is one of ours. */
  private async mergeOf(tip: string, head: string): Promise<string | null> {
    const out = await this.o.repo.git.raw(["rev-list", "--first-parent", "--merges", "--ancestry-path", `${head}..${tip}`]).catch(() => "");
    const merges = out.split("\n").filter(Boolean);
    return merges.at(-1) ?? null; // the oldest merge on the path: the one that took the branch in
  }

  /** After a merge: the task's branches go, locally and on the origin (unless kept by configuration). */
  async cleanUp(taskId: string): Promise<void> {
    if (this.o.keepBranches) return;
    const branch = integrationBranch(taskId);
    this.pushed.delete(branch);
    const head = await this.o.repo.revParse(`refs/heads/${branch}`);
    const mine = (await this.o.repo.ownBranches()).filter((b) => b === branch || b.startsWith(`${branch}--`));
    for (const b of mine) await this.o.repo.deleteBranch(b);
    await this.o.origin
      .deleteRemote(branch, head ?? undefined)
      .catch((err: Error) => this.o.log.warn({ taskId, err: err.message }, `could not delete ${branch} on the origin`));
    // Attempts published for a takeover (farm nodes sharing a store) go too.
    for (const b of await this.o.repo.trackedBranches(`${branch}--`))
      await this.o.origin
        .deleteRemote(b)
        .catch((err: Error) => this.o.log.warn({ taskId, err: err.message }, `could not delete ${b} on the origin`));
  }
}
