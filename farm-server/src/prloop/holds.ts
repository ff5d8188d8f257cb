import type { EventBody, ServerConfig } from "@optimus/shared";
import type { UnitRecord } from "../store/projection.js";
import type { AttemptRef } from "./current-attempt.js";
import { assessRisk } from "./risk.js";
import { SELF_REVIEW_REASON } from "./separation.js";

/** A change held for a person, with the level and reasons they see. */
export type UnitHeld = Extract<EventBody, { type: "unit_held" }>;

/** The hold of a change whose only review came from its author (same token or node). */
export function heldForSelfReview(target: UnitRecord, config: ServerConfig): UnitHeld {
  const ev = target.evaluation!;
  const risk = assessRisk(
    { diff: ev.diff, evals: ev.evals, green: ev.green, unreviewed: false },
    config.policy,
    config.prloop.eval.length > 0,
  );
  return {
    type: "unit_held",
    data: {
      taskId: target.taskId,
      unitId: target.unitId,
      attempt: target.attempt,
      risk: { level: risk.level === "high" ? "high" : "medium", reasons: [SELF_REVIEW_REASON, ...risk.reasons] },
    },
  };
}

/** The hold of a change its reviewer kept sending back until the unit ran out of attempts. */
export function heldAfterReviews(target: UnitRecord, lastComments: string, config: ServerConfig): UnitHeld {
  const ev = target.evaluation!;
  const risk = assessRisk(
    { diff: ev.diff, evals: ev.evals, green: ev.green, review: target.review, unreviewed: false },
    config.policy,
    config.prloop.eval.length > 0,
  );
  const times = Math.max(1, target.reviewRequests ?? 0);
  const last = lastComments.length > 1_000 ? `${lastComments.slice(0, 999)}…` : lastComments;
  const why = `the reviewer requested changes ${times} time${times === 1 ? "" : "s"}; last: ${last || "(no comments)"}`;
  return {
    type: "unit_held",
    data: {
      taskId: target.taskId,
      unitId: target.unitId,
      attempt: target.attempt,
      risk: { level: risk.level === "high" ? "high" : "medium", reasons: [why, ...risk.reasons.filter((r) => r !== why)] },
    },
  };
}

/** The hold of a change whose review unit died: it goes to a person rather than staying stuck in review. */
export function heldForDeadReview({ taskId, unitId, attempt }: AttemptRef, reviewer: UnitRecord): UnitHeld {
  return {
    type: "unit_held",
    data: {
      taskId,
      unitId,
      attempt,
      risk: { level: "medium", reasons: [`its review unit '${reviewer.unitId}' failed: ${reviewer.reason ?? "no verdict"}`] },
    },
  };
}
