import { unitKey, type EventBody } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { UnitRecord } from "../store/projection.js";

/** One attempt of one unit. */
export interface AttemptRef {
  taskId: string;
  unitId: string;
  attempt: number;
}

/** The unit, when it is still at this attempt and in this state (else it was cancelled or superseded meanwhile). */
export function currentAttempt(state: FarmState, ref: AttemptRef, unitState: UnitRecord["state"]): UnitRecord | null {
  const u = state.projection.units.get(unitKey(ref.taskId, ref.unitId));
  return u && u.attempt === ref.attempt && u.state === unitState ? u : null;
}

/** Journals `events` (as the farm) only while the attempt is still current in that state; says whether it did. */
export async function commitIfCurrent(
  state: FarmState,
  ref: AttemptRef,
  unitState: UnitRecord["state"],
  events: EventBody[],
): Promise<boolean> {
  if (!currentAttempt(state, ref, unitState)) return false;
  await state.commit(events, "farm");
  return true;
}
