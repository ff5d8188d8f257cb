import { unitKey, type FarmEvent } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { ChangeEvaluation } from "./change-evaluation.js";
import { commitIfCurrent } from "./current-attempt.js";
import { heldForDeadReview } from "./holds.js";
import type { TaskMerge } from "./task-merge.js";
import type { TaskQueue } from "./task-queue.js";
import type { UnitMerge } from "./unit-merge.js";

/** The parts of the PR loop whose steps the triggers queue. */
export interface LoopParts {
  state: FarmState;
  queue: TaskQueue;
  evaluation: ChangeEvaluation;
  unitMerge: UnitMerge;
  taskMerge: TaskMerge;
}

/** Queues again whatever a crash interrupted: evaluations, decisions, approved merges, tasks' merges. */
export function pickUpInterrupted(d: LoopParts): void {
  const p = d.state.projection;
  for (const u of p.units.values()) {
    if (u.state === "evaluating") d.queue.later(u.taskId, () => d.evaluation.evaluate(u.taskId, u.unitId, u.attempt));
    else if (u.state === "reviewing" && u.review) d.queue.later(u.taskId, () => d.unitMerge.decide(u.taskId, u.unitId, u.attempt));
    else if (u.state === "reviewing" && p.reviewersOf(u).length === 0)
      d.queue.later(u.taskId, () => d.unitMerge.decide(u.taskId, u.unitId, u.attempt));
    else if (u.state === "awaiting_approval" && u.approvedAttempt === u.attempt)
      d.queue.later(u.taskId, () => d.unitMerge.merge(u.taskId, u.unitId, u.attempt, false, "farm"));
  }
  for (const t of p.tasks.values()) if (!t.merge?.commit) d.queue.later(t.taskId, () => d.taskMerge.maybeMergeTask(t.taskId));
}

/** What committed events set going: tasks' merges, a cancelled task's clean-up, the hold of a change whose reviewer died. */
export function reactToCommitted(events: FarmEvent[], d: LoopParts): void {
  const p = d.state.projection;
  for (const e of events) {
    // A task merges once its last unit is done, whichever unit finished last: a review unit's
    // completion may land after the merge of the change it reviewed (they commit separately).
    if (e.type === "unit_rejected" || e.type === "unit_completed")
      d.queue.later(e.data.taskId, () => d.taskMerge.maybeMergeTask(e.data.taskId));
    // A cancelled task leaves no branches behind (unless the configuration keeps them).
    if (e.type === "task_cancelled") d.queue.later(e.data.taskId, () => d.taskMerge.cancelled(e.data.taskId));
    // A review unit that died leaves its change to a human rather than stuck in review.
    if ((e.type === "unit_failed" || e.type === "lease_expired") && e.data.next === "dead") {
      const r = p.units.get(unitKey(e.data.taskId, e.data.unitId));
      const target = r?.spec.reviews ? p.units.get(unitKey(r.taskId, r.spec.reviews)) : undefined;
      if (target?.state === "reviewing") {
        const ref = { taskId: target.taskId, unitId: target.unitId, attempt: target.attempt };
        d.queue.later(ref.taskId, () => commitIfCurrent(d.state, ref, "reviewing", [heldForDeadReview(ref, r!)]).then(() => undefined));
      }
    }
  }
}

/** Tries the merge of every task whose merge is held (e.g. the forge's checks went green). */
export function retryHeldMerges(d: LoopParts): void {
  for (const t of d.state.projection.tasks.values())
    if (t.merge?.heldReason && !t.merge.commit && !t.cancelled) d.queue.later(t.taskId, () => d.taskMerge.maybeMergeTask(t.taskId));
}
