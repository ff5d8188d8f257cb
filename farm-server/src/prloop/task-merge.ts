import type { Logger } from "pino";
import type { FarmState } from "../core/farm-state.js";
import { FarmError } from "../errors/farm-error.js";
import type { Delivery, GitDelivery } from "../delivery/git-delivery.js";
import { unapprovedChanges, waitingReason, type ForgeChannel, type HeldChange } from "../delivery/held-changes.js";
export { unapprovedChanges, waitingReason, type ForgeChannel, type HeldChange };
import type { OriginClone } from "../delivery/origin.js";
import { integrationBranch, taskTrailer, type FarmRepo } from "../git/farm-repo.js";
import { FRESH_MS } from "./branch-cutter.js";

export interface TaskMergeDeps {
  state: FarmState;
  repo: FarmRepo;
  origin: OriginClone;
  delivery: GitDelivery;
  log: Logger;
  /** commits the task's own files (manifest, session notes, ADR drafts) onto its integration branch */
  commitTaskFiles?(taskId: string, what?: string): Promise<void>;
  /** the forge, when the farm delivers through pull requests (set once the forge is wired) */
  forge?: ForgeChannel;
}

/**
 * A task's way from its integration branch (cut by the BranchCutter) to its target branch on the
 * origin: once every unit is done, the task's files are committed on it and it is delivered
 * (GitDelivery, or the forge); a failure holds the task with the reason.
 */
export class TaskMerge {
  constructor(private readonly d: TaskMergeDeps) {}

  useForge(channel: ForgeChannel): void {
    this.d.forge = channel;
  }

  private get p() {
    return this.d.state.projection;
  }

  /** Once every unit is done, the integration branch goes into the target branch on the origin. */
  async maybeMergeTask(taskId: string, actor = "farm"): Promise<void> {
    const t = this.p.tasks.get(taskId);
    if (!t || t.cancelled || t.merge?.commit) return;
    const units = t.units.map((k) => this.p.units.get(k)!);
    if (!units.every((u) => u.state === "merged" || u.state === "completed") || !units.some((u) => u.state === "merged")) return;
    const into = t.targetBranch ?? (await this.d.origin.defaultBranch());
    // With a forge, held changes are in the pull request: the task waits until a person approved a
    // version containing them (nothing is asked of the origin or the forge meanwhile).
    const waiting = this.d.forge ? await this.unapproved(taskId) : [];
    let res: Delivery;
    if (waiting.length > 0) res = { ok: false, into, reason: waitingReason(taskId, waiting) };
    else {
      // The task's files arrive with its change (no bookkeeping commits on the target branch).
      await this.d.commitTaskFiles?.(taskId);
      const message = `Merge task ${taskId}: ${t.title.slice(0, 60)}\n\n${taskTrailer(taskId)}`;
      try {
        if (this.d.forge) {
          const why = await this.d.delivery.pushBranch(taskId, { unlessPushed: true });
          res = why
            ? { ok: false, into, reason: `the task's branch could not be pushed: ${why}` }
            : await this.d.forge.deliver(taskId, into);
        } else res = await this.d.delivery.deliver(taskId, into, message);
      } catch (err) {
        // The origin could not be reached (network, auth): nothing moved; held until it can be.
        res = { ok: false as const, into, reason: `the origin could not be reached: ${(err as Error).message.split("\n")[0]}` };
      }
    }
    if (!res.ok) this.d.delivery.forgetPush(taskId);
    if (res.ok) {
      await this.d.state.commit([{ type: "task_merged", data: { taskId, into, commit: res.commit } }], actor);
      // (with a forge, `res.commit` is what the forge reports its base branch holds)
      this.d.log.info(
        { taskId, into, commit: res.commit, retries: res.retries, already: res.already },
        `task merged into ${into} on the origin`,
      );
      await this.d.delivery
        .cleanUp(taskId)
        .catch((err: Error) => this.d.log.warn({ taskId, err: err.message }, "could not delete the task's branches"));
    } else if (t.merge?.heldReason !== res.reason) {
      await this.d.state.commit(
        [
          {
            type: "task_merge_held",
            data: { taskId, into, reason: res.reason, ...(res.conflicts?.length ? { conflicts: res.conflicts } : {}) },
          },
        ],
        actor,
      );
    }
  }

  /**
   * A person asks for a held task's merge: tried again now; still impossible (a conflict, a refusal
   * of the origin), the request is refused with the reason — never reported as merged.
   * With a forge, held changes waiting for approval are approved as of the branch's head, pushed
   * first so the approval covers what the pull request shows; `guard` refuses a person who may not
   * approve them (protected paths).
   */
  async approve(
    taskId: string,
    actor: string,
    run: (fn: () => Promise<void>) => Promise<void>,
    guard?: (changes: HeldChange[]) => void,
  ): Promise<void> {
    const t = this.p.tasks.get(taskId);
    if (!t) throw new FarmError("not_found", `task '${taskId}' not found`);
    if (t.merge?.commit)
      throw new FarmError("conflict", `task ${taskId} is merged already (into ${t.merge.into} as ${t.merge.commit.slice(0, 10)})`);
    if (!t.merge?.heldReason) throw new FarmError("conflict", `task ${taskId} has no merge waiting for approval`);
    let approved = false;
    await run(async () => {
      const waiting = this.d.forge ? await this.unapproved(taskId) : [];
      if (waiting.length > 0) {
        guard?.(waiting);
        const why = await this.d.delivery.pushBranch(taskId);
        const head = await this.d.repo.revParse(`refs/heads/${integrationBranch(taskId)}`);
        if (why || !head)
          throw new FarmError(
            "conflict",
            `task ${taskId} cannot be approved: its branch could not be pushed to the pull request: ${why ?? "the branch is missing"}`,
          );
        await this.d.state.commit([{ type: "task_approved", data: { taskId, by: actor, head } }], actor);
        approved = true;
      }
      await this.maybeMergeTask(taskId, actor);
    });
    const after = this.p.tasks.get(taskId)!;
    // An approval taken is not refused: the forge merges once it allows (the task says why it waits).
    if (!after.merge?.commit && !approved)
      throw new FarmError("conflict", `task ${taskId} cannot be merged: ${after.merge?.heldReason ?? "it is not ready"}`);
  }

  /**
   * The changes merged for the pull request to show whose approval is missing: no approval of the
   * task was given as of a head that contains them (a person never approves what they could not see).
   */
  unapproved(taskId: string): Promise<HeldChange[]> {
    return unapprovedChanges(this.p.tasks.get(taskId), this.d.repo);
  }

  /** The integration branch after a unit merged into it: on the origin too (best effort; the final delivery pushes it again). */
  async publish(taskId: string): Promise<void> {
    if ((await this.pushBranch(taskId)) === null) await this.announce(taskId);
  }

  /** The task's branch to the origin, with its files; why it could not be pushed (logged), or null. */
  async pushBranch(taskId: string): Promise<string | null> {
    // The task's files (manifest, notes) ride along with each publication of its branch.
    await this.d
      .commitTaskFiles?.(taskId, "files")
      .catch((err: Error) => this.d.log.warn({ taskId, err: err.message }, "could not commit the task's files"));
    const why = await this.d.delivery.pushBranch(taskId).catch((err: Error) => err.message);
    if (why) this.d.log.warn({ taskId }, `could not push ${integrationBranch(taskId)}: ${why}`);
    return why;
  }

  /** Publishes an evaluated attempt's branch for a node that may take over (see GitDelivery.pushAttempt). */
  async pushAttempt(taskId: string, branch: string): Promise<string | null> {
    const why = await this.d.delivery.pushAttempt(branch).catch((err: Error) => err.message);
    if (why) this.d.log.warn({ taskId }, `could not publish ${branch}: ${why}`);
    return why;
  }

  /** The task's pull request follows its pushed branch (with a forge). */
  async announce(taskId: string): Promise<void> {
    await this.d.forge
      ?.published(taskId)
      .catch((err: Error) => this.d.log.warn({ taskId, err: err.message }, "could not update the task's pull request"));
  }

  /** A cancelled task: its branches go, locally and on the origin. */
  async cancelled(taskId: string): Promise<void> {
    await this.d.delivery
      .cleanUp(taskId)
      .catch((err: Error) => this.d.log.warn({ taskId, err: err.message }, "could not delete the cancelled task's branches"));
  }

  /**
   * At start, among nodes sharing a store: a live task's branch as the origin has it published
   * (never published: as it was cut), where that differs from this clone's copy. Another farm node
   * led meanwhile and merged units into it; the origin's copy is the truth (the farm only
   * fast-forwards it, and publishes a unit's merge before journaling it), so this node carries on
   * from there. One listing and one batch of ref updates; a git call of its own only for a task
   * whose branch was never published.
   */
  async adoptPublished(): Promise<number> {
    // The farm's start fetched after it took the lead (nothing can be pushed by a node that no
    // longer leads since then); fetched again only if that was a while ago.
    await this.d.origin.fetchIfOlder(FRESH_MS);
    const refs = await this.d.repo.git.raw([
      "for-each-ref",
      "--format=%(refname) %(objectname)",
      "refs/heads/optimus/",
      "refs/remotes/origin/optimus/",
    ]);
    const local = new Map<string, string>();
    const published = new Map<string, string>();
    for (const line of refs.split("\n")) {
      const [ref, oid] = line.split(" ");
      if (!ref || !oid) continue;
      if (ref.startsWith("refs/heads/")) local.set(ref.slice("refs/heads/".length), oid);
      else published.set(ref.slice("refs/remotes/origin/".length), oid);
    }
    const updates: string[] = [];
    for (const t of this.p.tasks.values()) {
      if (t.cancelled || t.merge?.commit) continue;
      const branch = integrationBranch(t.taskId);
      const ours = local.get(branch);
      // Never published: this clone's copy may hold merges this node made when it led before and
      // never journaled; the task starts again from where its branch was cut.
      const theirs = published.get(branch) ?? (ours ? await this.cutPoint(ours, t.targetBranch) : undefined);
      if (!theirs || theirs === ours) continue;
      // This clone's copy has merges the origin lacks: kept when the journal records one of them
      // (this node merged it and could not publish it: a single farm whose origin was away).
      if (ours && !(await this.d.repo.isAncestor(ours, theirs)) && (await this.recordedOnlyIn(t.units, ours, theirs))) continue;
      updates.push(`update refs/heads/${branch} ${theirs}\n`);
    }
    // Attempts another node evaluated and published: their changes merge from here, not done again.
    for (const [name, oid] of published) {
      const taskId = name.slice("optimus/".length).split("--")[0]!;
      const t = this.p.tasks.get(taskId);
      if (name.includes("--") && t && !t.cancelled && !t.merge?.commit && !local.has(name))
        updates.push(`create refs/heads/${name} ${oid}\n`);
    }
    if (updates.length > 0) await this.d.repo.git.raw(["update-ref", "--stdin"], { input: updates.join("") });
    return updates.length;
  }

  /** Where a branch was cut from its target: their merge base with the origin's target as last fetched. */
  private async cutPoint(ours: string, target: string | undefined): Promise<string | undefined> {
    const tip = await this.d.origin.tracked(target ?? (await this.d.origin.defaultBranch()));
    if (!tip) return undefined;
    const base = (await this.d.repo.git.raw(["merge-base", ours, tip]).catch(() => "")).trim();
    return base || undefined;
  }

  /** Whether a unit merge the journal records is in `ours` and not in `published` (a commit this clone lacks is neither). */
  private async recordedOnlyIn(units: Iterable<string>, ours: string, published: string): Promise<boolean> {
    const within = (c: string, tip: string) => this.d.repo.isAncestor(c, tip).catch(() => false);
    for (const k of units) {
      const c = this.p.units.get(k)?.mergedCommit;
      if (c && (await within(c, ours)) && !(await within(c, published))) return true;
    }
    return false;
  }

  /** At start: the farm's branches of tasks that are merged, cancelled or unknown are deleted (strays of a crash). */
  async sweep(): Promise<void> {
    const gone = new Set<string>();
    for (const b of await this.d.repo.ownBranches()) {
      const taskId = b.slice("optimus/".length).split("--")[0]!;
      const t = this.p.tasks.get(taskId);
      if (!t || t.cancelled || t.merge?.commit) gone.add(taskId);
    }
    for (const taskId of gone) {
      const t = this.p.tasks.get(taskId);
      if (!t) continue; // not the farm's knowledge to delete (a rebuild may still need it)
      await this.d.delivery
        .cleanUp(taskId)
        .catch((err: Error) => this.d.log.warn({ taskId, err: err.message }, "could not delete a stray branch"));
    }
  }
}
