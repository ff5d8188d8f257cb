import { readFileSync } from "node:fs";
import { unitKey, type LeaseWorkContext, type ServerConfig } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { UnitRecord } from "../store/projection.js";
import { integrationBranch } from "../git/farm-repo.js";
import type { AttemptFiles } from "./attempt-files.js";

export interface LeaseContextDeps {
  state: FarmState;
  config: ServerConfig;
  files: AttemptFiles;
  /** earlier attempts' notes for a unit, if any */
  notesOf?(taskId: string, unitId: string): string | undefined;
}

/**
 * What a worker needs beyond the unit's spec: the branch to start from, the set-up, the feedback and
 * notes of earlier attempts, and, for a review unit, the change it reviews with its evals.
 */
export function leaseWorkContext(u: UnitRecord, d: LeaseContextDeps): LeaseWorkContext {
  const ctx: LeaseWorkContext = { base: { branch: integrationBranch(u.taskId) } };
  if (d.config.setup !== undefined) ctx.setup = d.config.setup;
  if (u.feedback?.length) ctx.feedback = u.feedback;
  const notes = u.attempt > 1 ? d.notesOf?.(u.taskId, u.unitId) : undefined;
  if (notes) ctx.notes = notes;
  if (u.spec.reviews) {
    const target = d.state.projection.units.get(unitKey(u.taskId, u.spec.reviews));
    if (target?.evaluation) {
      let patch = "";
      try {
        patch = readFileSync(d.files.patchPath(target, target.evaluation.attempt), "utf8");
      } catch {
        // the change is still in its unit branch; the reviewer can fetch it
      }
      ctx.review = {
        unitId: target.unitId,
        attempt: target.evaluation.attempt,
        patch,
        evals: target.evaluation.evals.map((e) => ({ name: e.name, exitCode: e.exitCode, output: e.output.slice(-4_000) })),
      };
    }
  }
  return ctx;
}
