/**
 * What a person may do with a unit in each state: one table, read by the farm (which refuses
 * anything else) and by the editor and CLI (which offer only what the farm will accept). Keyed by
 * `Record<UnitState, …>`, so a new state does not compile until it says what it allows.
 *
 * The contract between the farm and its clients (issue 16):
 * - `reviews.approve | reject | requestChanges` take `attempt` and `head` (`ChangeVersion`): the
 *   attempt and head commit the person saw (`ChangeView.attempt` / `ChangeView.head`, the same as
 *   `unit.evaluation.attempt` / `unit.evaluation.commit`). If the unit's evaluated change is another
 *   one, the farm refuses with tRPC code `CONFLICT`, the message `this change was updated to attempt
 *   N since you opened it (you reviewed attempt M)` (or `… (you reviewed commit abc1234)` when only
 *   the commit differs), and `error.data.stale: StaleChange` — nothing is journaled then.
 * - Any action this table (with `actionRefusal`) does not allow is refused with `CONFLICT` and the
 *   message `cannot <action> unit <task>/<unit>: <actionRefusal's sentence>`.
 * - `UnitLiveView.actions` is `availableActions(…)` as the farm computes it; `needsApprover` is true
 *   when approving needs a token with the approver right (`me.approver` says whether the caller has it).
 * - `SpendSummary.frontierConfigured`: the farm has a frontier model (gateway key and gate enabled).
 * - Every `ViewsMessage` carries `serverTime` (the farm's clock, ms); `WorkerView.lastSeenAt` is on that clock.
 * - A rejected unit is `cancelled` with the reason `rejected by <actor>: <reason>` (it may be retried).
 * - A reviewer's "request changes" counts against the unit's attempts (`maxAttempts`); past the limit
 *   the unit is `awaiting_approval` with a risk reason `the reviewer requested changes N times; last: …`.
 */
import { z } from "zod";
import type { UnitRole, UnitState } from "./unit.js";

/** The version of a change a person decides on (every human decision names it). */
export const ChangeVersion = z.strictObject({
  attempt: z.number().int().min(1),
  /** the change's head commit as the person saw it (40 hex digits; 64 in SHA-256 repositories) */
  head: z.string().regex(/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/, "must be the change's head commit (hex)"),
});
export type ChangeVersion = z.infer<typeof ChangeVersion>;

/** `error.data.stale` of a refused decision: the change's current version, to offer instead. */
export type StaleChange = ChangeVersion;

export const UnitAction = z.enum(["approve", "reject", "request_changes", "escalate", "retry", "cancel"]);
export type UnitAction = z.infer<typeof UnitAction>;

const HUMAN_REVIEW: readonly UnitAction[] = ["approve", "reject", "request_changes"];

/** The actions each state allows before the conditions below (role, frontier, a queued escalation). */
export const ACTIONS_BY_STATE: Readonly<Record<UnitState, readonly UnitAction[]>> = {
  planned: ["cancel"],
  ready: ["escalate", "cancel"],
  leased: ["escalate", "cancel"],
  submitted: ["cancel"],
  evaluating: ["cancel"],
  reviewing: ["reject", "request_changes", "cancel"],
  awaiting_approval: [...HUMAN_REVIEW, "escalate", "cancel"],
  completed: [],
  merged: [],
  dead: ["retry", "escalate"],
  cancelled: ["retry"],
};

/** The words every view uses for a state (tree, panel, dashboard, CLI). */
export const STATE_LABELS: Readonly<Record<UnitState, string>> = {
  planned: "planned",
  ready: "ready",
  leased: "running",
  submitted: "submitted",
  evaluating: "evaluating",
  reviewing: "in review",
  awaiting_approval: "awaiting approval",
  completed: "completed",
  merged: "merged",
  dead: "dead",
  cancelled: "cancelled",
};

export interface ActionContext {
  state: UnitState;
  role: UnitRole;
  /** the farm has a frontier model configured (gateway key set, gate enabled) */
  frontierConfigured: boolean;
  /** an escalation for the current attempt is already queued */
  escalationQueued: boolean;
  /** the unit's task is cancelled: nothing of it runs again */
  taskCancelled?: boolean;
}

/** Why `action` is not possible now, in one sentence; null when it is. */
export function actionRefusal(action: UnitAction, c: ActionContext): string | null {
  if (!ACTIONS_BY_STATE[c.state].includes(action))
    return `it is ${STATE_LABELS[c.state]}, where ${action.replace("_", " ")} does not apply`;
  if ((action === "retry" || action === "escalate") && c.taskCancelled) return "its task is cancelled";
  if (action === "escalate") {
    if (!c.frontierConfigured)
      return "no frontier model is configured on this farm (set gateway.apiKey, with gate.enabled, in its .optimus/config.yaml)";
    if (c.escalationQueued) return "an escalation is already queued for it";
  }
  return null;
}

/**
 * Whether a person's escalation still waits for the unit's current or next attempt: asked during
 * attempt N (or after it, while the unit waits for N+1), it covers attempts N and N+1; once N+1 is
 * over a person may ask again. The farm's guard and the editor's badge both read it here.
 */
export function escalationQueued(u: { attempt: number; escalation?: { state: string; attempt: number } }): boolean {
  return u.escalation?.state === "queued" && u.escalation.attempt >= u.attempt - 1;
}

/** Every action possible now, in table order. */
export function availableActions(c: ActionContext): UnitAction[] {
  return UnitAction.options.filter((a) => actionRefusal(a, c) === null);
}

/**
 * Every move of a unit's state, and the events that make it: the projection moves a unit only along
 * these (a move outside them is a bug it reports), and docs/lifecycle.md is drawn from them.
 * `planned → ready` happens when the unit's dependencies are done (its reviewed change evaluated, for
 * a review unit), as part of whichever event did that.
 */
/** A review unit whose change went back for another attempt reviews that attempt afresh. */
const REVIEW_AGAIN = "changes_requested (a review unit: its change went back)";

export const UNIT_TRANSITIONS: Readonly<Record<UnitState, Readonly<Partial<Record<UnitState, readonly string[]>>>>> = {
  planned: {
    ready: ["dependencies done"],
    completed: ["unit_completed (nothing to review)"],
    cancelled: ["unit_cancelled", "task_cancelled", "unit_rejected"],
  },
  ready: { leased: ["unit_leased"], planned: [REVIEW_AGAIN], cancelled: ["unit_cancelled", "task_cancelled", "unit_rejected"] },
  leased: {
    planned: [REVIEW_AGAIN],
    submitted: ["unit_submitted"],
    ready: ["lease_expired", "unit_failed"],
    dead: ["lease_expired", "unit_failed"],
    cancelled: ["unit_cancelled", "task_cancelled"],
  },
  submitted: {
    evaluating: ["unit_evaluating"],
    completed: ["unit_completed"],
    ready: ["unit_failed"],
    dead: ["unit_failed"],
    cancelled: ["unit_cancelled", "task_cancelled"],
  },
  evaluating: {
    reviewing: ["unit_evaluated (green, with a review unit)"],
    ready: ["unit_failed", "changes_requested"],
    dead: ["unit_failed"],
    awaiting_approval: ["unit_held"],
    merged: ["unit_merged"],
    cancelled: ["unit_cancelled", "task_cancelled"],
  },
  reviewing: {
    awaiting_approval: ["unit_held"],
    merged: ["unit_merged"],
    ready: ["changes_requested"],
    cancelled: ["unit_cancelled", "task_cancelled", "unit_rejected"],
  },
  awaiting_approval: {
    merged: ["unit_merged"],
    ready: ["changes_requested"],
    cancelled: ["unit_cancelled", "task_cancelled", "unit_rejected"],
  },
  completed: { planned: [REVIEW_AGAIN] },
  merged: {},
  dead: { planned: ["unit_retried"] },
  cancelled: { planned: ["unit_retried"] },
};

/** Whether the lifecycle lets a unit move from one state to another (staying put is always allowed). */
export const mayMove = (from: UnitState, to: UnitState): boolean => from === to || UNIT_TRANSITIONS[from][to] !== undefined;

/**
 * Task states in which nothing more happens by itself (a failed task waits only for a person's
 * retry): the editor's history holds these, and they leave the farm's hot state after retention.
 */
export const FINISHED_TASK_STATES: ReadonlySet<string> = new Set(["completed", "cancelled", "failed"]);
