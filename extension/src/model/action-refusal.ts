import { actionRefusal, type UnitAction, type UnitLiveView } from "@optimus/shared";
import { offeredActions, type ViewContext } from "./unit-presentation.js";

/**
 * Why a person cannot take `action` on a unit now, in the words of the farm's lifecycle table, or
 * null when they can. Used when a command arrives for a unit whose button should not have been there
 * (the palette, a stale notification), so the click is refused before anything is sent.
 */
export function actionRefusalForPerson(u: UnitLiveView, action: UnitAction, c: ViewContext): string | null {
  if (offeredActions(u, c).includes(action)) return null;
  if (action === "approve" && u.needsApprover && !c.approver)
    return "its change touches protected paths, and only a token with the approver right may approve it (ask an approver, or create one with `optimus token create --role editor --name <you> --approver`)";
  const why = actionRefusal(action, {
    state: u.state,
    role: u.spec.role,
    frontierConfigured: c.frontierConfigured === true,
    escalationQueued: u.escalation?.state === "queued",
  });
  return why ?? `the farm does not allow ${action.replace("_", " ")} on it now`;
}
