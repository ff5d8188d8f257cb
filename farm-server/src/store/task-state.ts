import type { TaskView, UnitState } from "@optimus/shared";
import type { TaskRecord } from "./projection-records.js";

/** A task's state, from its own flags and how many of its units are in each state. */
export function taskState(t: Pick<TaskRecord, "cancelled" | "merge">, counts: Partial<Record<UnitState, number>>): TaskView["state"] {
  if (t.cancelled) return "cancelled";
  const n = (s: UnitState) => counts[s] ?? 0;
  const total = Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
  // Done only once its change is on the target branch (a task without a change is done at once).
  if (n("completed") + n("merged") === total)
    return n("merged") === 0 || t.merge?.commit ? "completed" : t.merge?.heldReason ? "held" : "merging";
  const active = n("leased") + n("submitted") + n("evaluating") + n("reviewing") + n("awaiting_approval");
  if (active > 0) return "running";
  if (n("dead") > 0 && n("ready") === 0) return "failed";
  // Units cancelled or rejected one by one, the rest done: nothing of the task runs any more.
  if (n("cancelled") > 0 && n("cancelled") + n("completed") + n("merged") === total) return "cancelled";
  if (n("completed") + n("merged") + n("dead") + n("cancelled") > 0 && n("ready") > 0) return "running";
  return "open";
}
