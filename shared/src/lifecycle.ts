/**
 * What a person may do with a unit in each state: one table, read by the farm (which refuses
 * anything else) and by the editor and CLI (which offer only what the farm will accept). Keyed by
 * `Record<UnitState, …>`, so a new state does not compile until it says what it allows.
 */
import { z } from "zod";
import type { UnitRole, UnitState } from "./unit.js";

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
  changes_requested: ["escalate", "cancel"],
  failed: ["retry", "escalate", "cancel"],
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
  changes_requested: "changes requested",
  failed: "failed",
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
}

/** Why `action` is not possible now, in one sentence; null when it is. */
export function actionRefusal(action: UnitAction, c: ActionContext): string | null {
  if (!ACTIONS_BY_STATE[c.state].includes(action)) return `it is ${STATE_LABELS[c.state]}, where ${action.replace("_", " ")} does not apply`;
  if (action === "escalate") {
    if (!c.frontierConfigured) return "no frontier model is configured on this farm (gateway.apiKey in its configuration)";
    if (c.escalationQueued) return "an escalation is already queued for it";
  }
  return null;
}

/** Every action possible now, in table order. */
export function availableActions(c: ActionContext): UnitAction[] {
  return UnitAction.options.filter((a) => actionRefusal(a, c) === null);
}
