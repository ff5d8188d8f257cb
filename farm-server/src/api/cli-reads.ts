import { MAX_PREFIX_MATCHES, type FarmEvent, type TaskMatches, type UnitPatch } from "@optimus/shared";
import { FarmError } from "../errors/farm-error.js";
import type { FarmServices } from "./services.js";
import { taskWithUnits } from "./views.js";

/**
 * Tasks whose id starts with `prefix`, live and archived, in id order: the CLI takes a unique prefix
 * wherever a task id goes, and names the candidates when it is not unique.
 */
export async function tasksByPrefix(s: FarmServices, prefix: string): Promise<TaskMatches> {
  const live = [...s.state.projection.tasks.keys()].filter((id) => id.startsWith(prefix));
  const liveSet = new Set(live);
  // One more than shown from the archive, so `more` is known without counting it all.
  const cold = (await s.state.journal.archivedTaskIds(prefix, MAX_PREFIX_MATCHES + 1)).filter((id) => !liveSet.has(id));
  const all = [...live.map((taskId) => ({ taskId, archived: false })), ...cold.map((taskId) => ({ taskId, archived: true }))].sort(
    (a, b) => (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0),
  );
  return {
    prefix,
    exact: all.some((m) => m.taskId === prefix),
    matches: all.slice(0, MAX_PREFIX_MATCHES),
    more: all.length > MAX_PREFIX_MATCHES,
  };
}

/**
 * One attempt's change as a unified patch (`optimus unit diff`): the diff of the commit the farm
 * evaluated for it (the latest evaluated attempt by default), or, before evaluation, the patch as
 * the worker submitted it. Archived units answer too, while git still has their commit.
 */
export async function unitPatch(s: FarmServices, taskId: string, unitId: string, attempt?: number): Promise<UnitPatch> {
  const found = await taskWithUnits(s, taskId);
  if (!found) throw new FarmError("not_found", `task '${taskId}' not found`);
  const unit = found.units.find((u) => u.unitId === unitId);
  if (!unit) throw new FarmError("not_found", `unit ${taskId}/${unitId} not found`);
  if (!s.prloop) throw new FarmError("conflict", "this farm does not work on a git repository, so there are no changes to show");
  const want = attempt ?? unit.evaluation?.attempt ?? unit.attempt;
  if (want < 1 || want > unit.attempt)
    throw new FarmError("not_found", `unit ${taskId}/${unitId} has no attempt ${want} (its latest is ${unit.attempt})`);
  let commit = unit.evaluation?.attempt === want ? unit.evaluation.commit : undefined;
  if (!commit) {
    // An older attempt's commit is in the unit's journal history.
    const events = await s.state.journal.readForTask(taskId, unitId, 1_000);
    const ev = events
      .filter((e): e is Extract<FarmEvent, { type: "unit_evaluated" }> => e.type === "unit_evaluated")
      .filter((e) => e.data.unitId === unitId && e.data.attempt === want)
      .pop();
    commit = ev?.data.commit;
  }
  const got = await s.prloop.attemptPatch(taskId, unitId, want, commit);
  if (!got) throw new FarmError("not_found", `unit ${taskId}/${unitId} has no change for attempt ${want} (it is ${unit.state})`);
  return {
    taskId,
    unitId,
    attempt: want,
    ...(got.commit ? { commit: got.commit } : {}),
    source: got.commit ? "evaluated" : "submitted",
    patch: got.patch,
  };
}
