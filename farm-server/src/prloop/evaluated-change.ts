import { unitKey, type ChangeFile, type EvalOutcome } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { UnitRecord } from "../store/projection.js";
import { FarmError } from "../errors/farm-error.js";
import type { FarmRepo } from "../git/farm-repo.js";
import { changeFiles } from "./change-view.js";

export interface ChangeView {
  taskId: string;
  unitId: string;
  attempt: number;
  state: UnitRecord["state"];
  base: string;
  head: string;
  files: ChangeFile[];
  truncated: boolean;
  evals: EvalOutcome[];
  green: boolean;
  review?: UnitRecord["review"];
  risk?: UnitRecord["risk"];
}

/** The evaluated change of a unit's latest evaluated attempt, file by file, for the editor's diff. */
export async function evaluatedChange(state: FarmState, repo: FarmRepo, taskId: string, unitId: string): Promise<ChangeView> {
  const u = state.projection.units.get(unitKey(taskId, unitId));
  if (!u) throw new FarmError("not_found", `unit ${taskId}/${unitId} not found`);
  const ev = u.evaluation;
  if (!ev) throw new FarmError("conflict", `unit ${taskId}/${unitId} has no evaluated change yet (it is ${u.state})`);
  const { base, files, truncated } = await changeFiles(repo, ev.commit);
  return {
    taskId,
    unitId,
    attempt: ev.attempt,
    state: u.state,
    base,
    head: ev.commit,
    files,
    truncated,
    evals: ev.evals,
    green: ev.green,
    review: u.review,
    risk: u.risk,
  };
}
