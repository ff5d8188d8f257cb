import { actionRefusal, availableActions, escalationQueued, type ActionContext, type ServerConfig, type UnitAction } from "@optimus/shared";
import type { Projection, UnitRecord } from "../store/projection.js";
import { FarmError } from "../errors/farm-error.js";

/** The farm has a frontier model: the gateway has an API key and the gate lets units use it. */
export const frontierConfigured = (c: ServerConfig): boolean => c.gateway.apiKey !== undefined && c.gate.enabled;

/** What the lifecycle table needs to know about a unit, from the farm's own state. */
export function actionContextOf(p: Projection, config: ServerConfig, u: UnitRecord): ActionContext {
  return {
    state: u.state,
    role: u.spec.role,
    frontierConfigured: frontierConfigured(config),
    escalationQueued: escalationQueued(u),
    taskCancelled: p.tasks.get(u.taskId)?.cancelled ?? false,
  };
}

/** Every action the farm accepts for the unit now (what the editor offers). */
export const unitActions = (p: Projection, config: ServerConfig, u: UnitRecord): UnitAction[] =>
  availableActions(actionContextOf(p, config, u));

const VERB: Record<UnitAction, string> = {
  approve: "approve",
  reject: "reject",
  request_changes: "request changes on",
  escalate: "escalate",
  retry: "retry",
  cancel: "cancel",
};

/** Refuses (409) an action the lifecycle table does not allow for the unit now, with the table's sentence. */
export function assertAction(action: UnitAction, p: Projection, config: ServerConfig, u: UnitRecord): void {
  const why = actionRefusal(action, actionContextOf(p, config, u));
  if (why) throw new FarmError("conflict", `cannot ${VERB[action]} unit ${u.taskId}/${u.unitId}: ${why}`);
}
