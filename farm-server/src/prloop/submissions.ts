import type { Logger } from "pino";
import { unitKey, type EventBody, type ServerConfig, type UnitResult } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { UnitRecord } from "../store/projection.js";
import { FarmError } from "../errors/farm-error.js";
import { integrationBranch, type FarmRepo } from "../git/farm-repo.js";
import type { AttemptFiles } from "./attempt-files.js";
import type { CheckedPlans } from "./checked-plans.js";
import { heldForSelfReview } from "./holds.js";
import { checkChange, type ChangeLimits } from "./patch-policy.js";
import { isSelfReview } from "./separation.js";

/** The limits on one change, from the configuration (checked on the patch, and again on its commit). */
export function changeLimits(config: ServerConfig): ChangeLimits {
  const c = config.prloop;
  return {
    maxFileBytes: c.maxFileBytes,
    maxFilesPerPatch: c.maxFilesPerPatch,
    allowSymlinks: c.allowSymlinks,
    allowSubmodules: c.allowSubmodules,
  };
}

type Step = (taskId: string, unitId: string, attempt: number) => Promise<void>;

export interface SubmissionsDeps {
  state: FarmState;
  config: ServerConfig;
  repo: FarmRepo;
  log: Logger;
  files: AttemptFiles;
  plans: CheckedPlans;
  /** queues a step after the task's earlier ones */
  later(taskId: string, fn: () => Promise<unknown>): void;
  /** evaluates a submitted change */
  evaluate: Step;
  /** the policy's decision on a reviewed change */
  decide: Step;
}

/**
 * A worker's result on its way into the PR loop: refused when hostile or broken, else turned into
 * the events that complete the unit, plan the task, record a review, or send a change to evaluation.
 */
export class Submissions {
  constructor(private readonly d: SubmissionsDeps) {}

  private get p() {
    return this.d.state.projection;
  }

  /** Refuses hostile or broken output before anything is recorded: the worker gets the reason. */
  async validate(u: UnitRecord, result: UnitResult): Promise<void> {
    if (result.outcome !== "succeeded") return;
    if (u.spec.kind === "plan") {
      // A bad plan is not refused: the task falls back to one unit (and says why).
      await this.d.plans.check(u, result);
      return;
    }
    if (u.spec.role === "review") {
      // A review of a change must say what it thinks; a free-standing review unit just reports.
      if (u.spec.reviews && !result.review)
        throw new FarmError(
          "invalid",
          `review unit ${u.taskId}/${u.unitId} must submit a review verdict (approve or request_changes) for '${u.spec.reviews}'`,
        );
      return;
    }
    const patch = result.patch ?? "";
    if (!patch.trim()) return; // nothing to change: the unit completes as is
    const bytes = Buffer.byteLength(patch);
    if (bytes > this.d.config.prloop.maxPatchBytes)
      throw new FarmError("invalid", `patch refused: it is ${bytes} bytes; the limit is ${this.d.config.prloop.maxPatchBytes}`);
    const base = (await this.d.repo.revParse(`refs/heads/${integrationBranch(u.taskId)}`)) ?? (await this.d.repo.revParse("HEAD"));
    // What git would apply, read by git itself: the rules below judge exactly that.
    const reading = await this.d.repo.readPatch(base!, patch);
    if (!reading.ok) throw new FarmError("invalid", `patch refused: it does not apply to ${integrationBranch(u.taskId)}: ${reading.error}`);
    const check = checkChange(reading.entries, u.spec.files, changeLimits(this.d.config));
    if (!check.ok) throw new FarmError("invalid", `patch refused: ${check.error}`);
  }

  /** The events of a valid result (committed with the submission); the evaluation or decision it calls for is queued. */
  accept(u: UnitRecord, result: UnitResult): EventBody[] {
    const ref = { taskId: u.taskId, unitId: u.unitId, attempt: u.attempt };
    if (u.spec.kind === "plan") return [{ type: "unit_completed", data: ref }, this.d.plans.planned(u)];
    if (u.spec.role === "review" && u.spec.reviews && result.review) {
      const target = this.p.units.get(unitKey(u.taskId, u.spec.reviews));
      const events: EventBody[] = [{ type: "unit_completed", data: ref }];
      if (target?.state === "reviewing") {
        const reviewed = {
          taskId: u.taskId,
          unitId: target.unitId,
          attempt: target.attempt,
          reviewUnitId: u.unitId,
          verdict: result.review,
        };
        // u.worker is the node holding this review's lease; its token is the caller's (checked by the API).
        if (isSelfReview(this.p, { node: u.worker }, target)) {
          // Recorded for the audit trail, but it does not count: the change waits for a person.
          this.d.log.warn(
            { taskId: u.taskId, unitId: target.unitId, reviewer: u.worker },
            "a review from the change's own author does not count",
          );
          events.push({ type: "unit_reviewed", data: { ...reviewed, selfReview: true } }, heldForSelfReview(target, this.d.config));
        } else {
          events.push({ type: "unit_reviewed", data: reviewed });
          this.d.later(u.taskId, () => this.d.decide(target.taskId, target.unitId, target.attempt));
        }
      }
      return events;
    }
    if (result.transcript?.length) this.d.files.saveTranscript(u, result);
    if (u.spec.role !== "codegen" || !result.patch?.trim()) return [{ type: "unit_completed", data: ref }];
    // The patch is on disk (fsynced) before the journal says the unit is being evaluated.
    this.d.files.writePatch(u, result.patch);
    this.d.later(u.taskId, () => this.d.evaluate(u.taskId, u.unitId, u.attempt));
    return [{ type: "unit_evaluating", data: ref }];
  }

  resume(u: UnitRecord): EventBody[] {
    return [{ type: "unit_completed", data: { taskId: u.taskId, unitId: u.unitId, attempt: u.attempt } }];
  }
}
