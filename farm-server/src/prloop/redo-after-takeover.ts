import type { EventBody } from "@optimus/shared";
import type { UnitRecord } from "../store/projection-records.js";

/**
 * An attempt whose change only the farm node that led before a takeover holds (its patch in that
 * node's home, its branch in that node's clone): the unit is done again, as a change sent back is —
 * without counting a failure against it, since nothing failed but the node.
 */
export function redoAfterTakeover(u: Pick<UnitRecord, "taskId" | "unitId">, attempt: number): EventBody {
  return {
    type: "changes_requested",
    data: {
      taskId: u.taskId,
      unitId: u.unitId,
      attempt,
      feedback:
        "the farm node that led before a takeover kept this attempt's change, and this node does not have it: do the unit again on the current branch",
    },
  };
}
