/**
 * What the farm's delivery of a task needs to know about approvals: the changes merged into a
 * task's integration branch that wait for a person's approval of the task, and the channel through
 * which the PR loop hands a task to a forge. Delivery owns these; the PR loop uses them.
 */
import type { FarmRepo } from "../git/farm-repo.js";
import type { TaskRecord } from "../store/projection.js";
import type { Delivery } from "./git-delivery.js";

/**
 * Delivery through a forge (a pull request per task): given, the task's final merge goes through
 * the forge's API instead of a push to the target branch. Implemented by delivery/forge-delivery.ts.
 */
export interface ForgeChannel {
  /** after the task's integration branch was pushed: open or update its pull request; report new evals and reviews */
  published(taskId: string): Promise<void>;
  /** merges the task's pull request (its branch is pushed, its files committed): merged, or held with why */
  deliver(taskId: string, into: string): Promise<Delivery>;
}

/** A change merged into a task's integration branch that waits for a person's approval of the task. */
export type HeldChange = NonNullable<TaskRecord["heldChanges"]>[number];

/** Why a task waits (its merge is held): the held changes' reasons, and what a person can do. */
export function waitingReason(taskId: string, waiting: HeldChange[]): string {
  const reasons = [...new Set(waiting.flatMap((c) => c.reasons))];
  return `waiting for approval: ${reasons.join("; ") || `changes of ${waiting.map((c) => c.unitId).join(", ")}`} (approve the pull request with a review, or run \`optimus approve ${taskId}\`)`;
}

/** The held changes of a task that no approval covers: none was given as of a head containing them. */
export async function unapprovedChanges(t: TaskRecord | undefined, repo: Pick<FarmRepo, "isAncestor">): Promise<HeldChange[]> {
  const out: HeldChange[] = [];
  for (const c of t?.heldChanges ?? []) {
    let covered = false;
    for (const a of t?.approvals ?? [])
      if (a.head === c.commit || (await repo.isAncestor(c.commit, a.head).catch(() => false))) covered = true;
    if (!covered) out.push(c);
  }
  return out;
}
