import { NOT_LEADING } from "../delivery/git-delivery.js";
import { redoAfterTakeover } from "./redo-after-takeover.js";
import { unitKey, type ServerConfig } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import { integrationBranch, unitTrailer, type FarmRepo } from "../git/farm-repo.js";
import type { AttemptFiles } from "./attempt-files.js";
import { heldAfterReviews, heldForSelfReview, type UnitHeld } from "./holds.js";
import { assessRisk, mayAutoMerge } from "./risk.js";
import type { TaskMerge } from "./task-merge.js";

export interface UnitMergeDeps {
  state: FarmState;
  config: ServerConfig;
  repo: FarmRepo;
  taskMerge: TaskMerge;
  files: AttemptFiles;
  /**
   * Among farm nodes sharing a store: a unit's merge is pushed before it is journaled (then again
   * with the task's files), so every merge the journal records is on the origin for the next leader.
   */
  publishFirst?: boolean;
}

/**
 * A unit's evaluated change on its way into the task's integration branch: once green and reviewed,
 * the policy merges it on its own (low risk), sends it back (its reviewer asked for changes) or holds
 * it for a person; a merge lands at most once per attempt, and may complete the task.
 */
export class UnitMerge {
  /** set when the farm delivers through a forge (see `hold`) */
  private throughForge = false;

  constructor(private readonly d: UnitMergeDeps) {}

  private get p() {
    return this.d.state.projection;
  }

  useForge(): void {
    this.throughForge = true;
  }

  /** The policy's decision on a green change whose reviewer has spoken (or that has none); anything else waits. */
  async decide(taskId: string, unitId: string, attempt: number): Promise<void> {
    const u = this.p.units.get(unitKey(taskId, unitId));
    if (!u || u.attempt !== attempt || !u.evaluation?.green || (u.state !== "reviewing" && u.state !== "evaluating")) return;
    const unreviewed = this.p.reviewersOf(u).length === 0;
    if (!unreviewed && !u.review) return; // its reviewer has not spoken yet
    if (u.review?.selfReview) {
      await this.hold(heldForSelfReview(u, this.d.config));
      return;
    }
    if (u.review?.verdict === "request_changes") {
      const text = [u.review.summary, ...u.review.comments.map((c) => `${c.path}:${c.line}: ${c.body}`)].filter(Boolean).join("\n");
      // A reviewer's "request changes" uses one of the unit's attempts; the last one goes to a person
      // (never another round, never dead-lettered in silence). A person's request gives one more.
      if (attempt >= (u.spec.maxAttempts ?? this.d.config.maxAttempts)) {
        await this.hold(heldAfterReviews(u, text, this.d.config));
        return;
      }
      await this.d.state.commit(
        [
          {
            type: "changes_requested",
            data: { taskId, unitId, attempt, feedback: `review by ${u.review.reviewUnitId}: ${text}`, reviewUnitId: u.review.reviewUnitId },
          },
        ],
        "farm",
      );
      return;
    }
    const input = { diff: u.evaluation.diff, evals: u.evaluation.evals, green: u.evaluation.green, review: u.review, unreviewed };
    const risk = assessRisk(input, this.d.config.policy, this.d.config.prloop.eval.length > 0);
    const verdict = mayAutoMerge(risk, input, this.d.config.policy);
    if (verdict.auto) await this.merge(taskId, unitId, attempt, true, "farm", risk);
    else await this.hold({ type: "unit_held", data: { taskId, unitId, attempt, risk: { level: risk.level, reasons: verdict.why } } });
  }

  /**
   * A change the policy holds. Without a forge it waits as a unit for a person (`unit_held`). With
   * one, a person approves on the pull request, and may only approve what it shows: the change is
   * merged into the integration branch (not automatically, its reasons kept) and the task's merge
   * waits for an approval of a version containing it (TaskMerge).
   */
  async hold(held: UnitHeld): Promise<void> {
    if (!this.throughForge) {
      await this.d.state.commit([held], "farm");
      return;
    }
    const { taskId, unitId, attempt, risk } = held.data;
    await this.merge(taskId, unitId, attempt, false, "farm", risk, true);
  }

  /**
   * The attempt's change merged into the task's integration branch (a change that no longer merges
   * is sent back), then published; the task merges too once this was its last unit.
   */
  async merge(
    taskId: string,
    unitId: string,
    attempt: number,
    auto: boolean,
    actor: string,
    risk = this.p.units.get(unitKey(taskId, unitId))?.risk,
    heldForTask = false,
  ): Promise<void> {
    const u = this.p.units.get(unitKey(taskId, unitId));
    if (!u || u.attempt !== attempt || u.state === "merged" || !u.evaluation) return;
    const into = integrationBranch(taskId);
    const trailer = unitTrailer(taskId, unitId, attempt);
    const r = { level: risk?.level ?? "low", reasons: risk?.reasons ?? [] } as const;
    // At most once per unit attempt: a merge that landed before a crash is found by its trailer.
    let commit = await this.d.repo.findMerge(into, trailer);
    if (!commit) {
      const how = auto ? " (auto)" : heldForTask ? " (held: the task waits for approval)" : ` (approved by ${actor})`;
      const res = await this.d.repo.mergeInto(
        into,
        u.evaluation.branch,
        `Merge ${taskId}/${unitId} attempt ${attempt}${how}\n\n${trailer}`,
      );
      if ("missing" in res) {
        // Evaluated by the farm node that led before a takeover: its branch is in that node's clone, not this one's.
        await this.d.state.commit([redoAfterTakeover(u, attempt)], "farm");
        return;
      }
      if (!res.ok) {
        await this.d.state.commit(
          [
            {
              type: "changes_requested",
              data: {
                taskId,
                unitId,
                attempt,
                feedback: `the change no longer merges into ${into} (${res.conflict}); redo it on the current branch`,
              },
            },
          ],
          "farm",
        );
        return;
      }
      commit = res.commit;
      // Published before it is journaled: a farm node that takes over finds every merge the journal
      // records in the origin's copy of the branch (see TaskMerge.adoptPublished), and a merge it
      // does not find there was never recorded, so the unit is evaluated and merged again.
      // A node that no longer leads journals nothing either (its writes would be refused); an origin
      // that cannot be reached does not stop the farm: the merge is journaled and published later.
      if (this.d.publishFirst && (await this.d.taskMerge.pushBranch(taskId)) === NOT_LEADING) return;
    }
    await this.d.state.commit(
      [
        {
          type: "unit_merged",
          data: { taskId, unitId, attempt, commit, into, auto, risk: r, ...(heldForTask ? { heldForTask: true as const } : {}) },
        },
      ],
      actor,
    );
    await this.d.repo.deleteBranch(u.evaluation.branch);
    // The change now lives in git; its patch file was only needed until the merge.
    this.d.files.removePatch(u, attempt);
    // The task's files now say the unit is merged: published with them (and the pull request follows).
    await this.d.taskMerge.publish(taskId);
    await this.d.taskMerge.maybeMergeTask(taskId);
  }
}
