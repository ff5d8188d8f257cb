import { isTerminal, unitKey, type EventType, type FarmEvent } from "@optimus/shared";
import type { Fold, FoldHandlers } from "./projection-fold.js";

type Of<K extends EventType> = Extract<FarmEvent, { type: K }>;

/** A lease ended without a result: the unit goes back to ready, or dies past its attempts. */
function leaseEnded(f: Fold, e: Of<"lease_expired"> | Of<"unit_failed">): void {
  const { p } = f;
  const u = p.unit(e.data.taskId, e.data.unitId);
  u.failures++;
  const reason =
    e.type === "unit_failed"
      ? e.data.reason
      : e.data.cause === "token_revoked"
        ? `lease of ${e.data.worker} ended: its token was revoked`
        : `lease of ${e.data.worker} expired (no heartbeat)`;
  if (e.type === "unit_failed" && e.data.feedback) u.feedback = [...(u.feedback ?? []), e.data.feedback];
  if (e.data.next === "dead") p.settle(u, "dead", e, reason);
  else {
    p.clearLease(u);
    p.move(u, "ready", e);
    u.notBefore = e.data.notBefore;
    u.reason = reason;
    u.updatedAt = e.ts;
    f.ready(unitKey(u.taskId, u.unitId));
  }
  f.touch(u.taskId);
}

/**
 * How each unit event moves its unit (and the units that wait on it). Every state change goes
 * through `Projection.move`, which holds it to the lifecycle table (`UNIT_TRANSITIONS`).
 */
export const unitEvents: FoldHandlers = {
  unit_leased: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    f.p.clearLease(u);
    f.p.move(u, "leased", e);
    f.p.leaseSet(e.data.worker).add(unitKey(u.taskId, u.unitId));
    u.attempt = e.data.attempt;
    u.worker = e.data.worker;
    u.leaseId = e.data.leaseId;
    u.leaseExpiresAt = e.data.expiresAt;
    u.notBefore = undefined;
    u.reason = undefined;
    u.updatedAt = e.ts;
    f.touch(u.taskId);
  },
  lease_expired: leaseEnded,
  unit_failed: leaseEnded,
  unit_submitted: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    // The worker is done with it: its capacity frees at once, whatever evaluation follows.
    f.p.clearLease(u);
    f.p.move(u, "submitted", e);
    u.worker = e.data.worker;
    u.updatedAt = e.ts;
    if (e.data.outcome === "succeeded") {
      u.acceptedAttempt = e.data.attempt;
      u.acceptedLeaseId = e.data.leaseId;
      u.acceptedWorker = e.data.worker;
      u.author = { node: e.data.worker, tokenId: e.data.tokenId ?? f.p.workers.get(e.data.worker)?.tokenId, attempt: e.data.attempt };
    }
    f.touch(u.taskId);
  },
  unit_completed: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    f.p.settle(u, "completed", e);
    // A codegen unit that needed no change leaves its reviewers nothing to review.
    if (u.spec.role === "codegen") {
      for (const r of f.p.reviewersOf(u)) {
        const ru = f.p.units.get(r)!;
        if (ru.state === "planned") f.p.settle(ru, "completed", e, "nothing to review: the unit made no change");
      }
    }
    for (const k of u.dependents) if (f.p.promote(k, e)) f.ready(k);
    f.touch(u.taskId);
  },
  unit_retried: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    f.p.clearLease(u);
    f.p.move(u, "planned", e);
    u.failures = 0;
    u.notBefore = undefined;
    u.reason = undefined;
    u.updatedAt = e.ts;
    if (f.p.promote(unitKey(u.taskId, u.unitId), e)) f.ready(unitKey(u.taskId, u.unitId));
    f.touch(u.taskId);
  },
  escalation_requested: (f, e) => {
    const u = f.p.units.get(unitKey(e.data.taskId, e.data.unitId));
    if (u) u.escalation = { state: "queued", requestedBy: e.actor, at: e.ts, attempt: e.data.attempt, reason: e.data.reason };
    f.touch(e.data.taskId);
  },
  unit_cancelled: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    f.p.settle(u, "cancelled", e, e.data.reason ?? "cancelled");
    f.touch(u.taskId);
  },
  unit_evaluating: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    f.p.move(u, "evaluating", e);
    u.updatedAt = e.ts;
    f.touch(u.taskId);
  },
  unit_evaluated: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    const { taskId: _t, unitId: _u, ...evaluation } = e.data;
    u.evaluation = evaluation;
    u.updatedAt = e.ts;
    // Green changes go to their review unit; a red one is followed by unit_failed in the same batch.
    if (e.data.green && f.p.reviewersOf(u).length > 0) {
      f.p.move(u, "reviewing", e);
      for (const r of f.p.reviewersOf(u)) if (f.p.promote(r, e)) f.ready(r);
    }
    f.touch(u.taskId);
  },
  unit_reviewed: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    u.review = { ...e.data.verdict, reviewUnitId: e.data.reviewUnitId, ...(e.data.selfReview ? { selfReview: true as const } : {}) };
    if (e.data.verdict.verdict === "request_changes" && !e.data.selfReview) u.reviewRequests = (u.reviewRequests ?? 0) + 1;
    u.updatedAt = e.ts;
    f.touch(u.taskId);
  },
  unit_held: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    f.p.move(u, "awaiting_approval", e);
    u.risk = e.data.risk;
    u.reason = `held for approval: ${e.data.risk.reasons.join("; ")}`;
    u.updatedAt = e.ts;
    f.touch(u.taskId);
  },
  unit_approved: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    u.approvedAttempt = e.data.attempt;
    f.touch(u.taskId);
  },
  unit_merged: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    u.risk = e.data.risk;
    u.mergedCommit = e.data.commit;
    u.feedback = undefined;
    f.p.settle(u, "merged", e);
    for (const k of u.dependents) if (f.p.promote(k, e)) f.ready(k);
    const t = f.p.tasks.get(u.taskId);
    if (e.data.heldForTask && t)
      t.heldChanges = [
        ...(t.heldChanges ?? []),
        { unitId: u.unitId, attempt: e.data.attempt, commit: e.data.commit, reasons: e.data.risk.reasons },
      ];
    f.touch(u.taskId);
  },
  unit_rejected: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    // A person's decision, not a failure: the unit is cancelled (it may be retried), and its
    // reason says who rejected it and why, so no view reads it as "failed" or "dead".
    f.p.settle(u, "cancelled", e, `rejected by ${e.actor}: ${e.data.reason}`);
    for (const r of f.p.reviewersOf(u)) {
      const ru = f.p.units.get(r)!;
      if (!isTerminal(ru.state)) f.p.settle(ru, "cancelled", e, "the change it reviews was rejected");
    }
    f.touch(u.taskId);
  },
  changes_requested: (f, e) => {
    const u = f.p.unit(e.data.taskId, e.data.unitId);
    f.p.clearLease(u);
    f.p.move(u, "ready", e);
    u.feedback = [...(u.feedback ?? []), e.data.feedback];
    u.reason = "changes requested";
    u.review = undefined;
    u.updatedAt = e.ts;
    f.ready(unitKey(u.taskId, u.unitId));
    // Its reviewers review the next attempt afresh; one that held a lease gives it up (the worker's
    // capacity frees, and its late verdict on the old attempt is fenced off by the state).
    for (const r of f.p.reviewersOf(u)) {
      const ru = f.p.units.get(r)!;
      f.p.clearLease(ru);
      f.p.move(ru, "planned", e);
      ru.reason = undefined;
      ru.acceptedLeaseId = undefined;
      ru.acceptedAttempt = undefined;
    }
    f.touch(u.taskId);
  },
};
