import { unitKey, type ChangeVersion, type ServerConfig } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import { assertAction } from "../core/unit-actions.js";
import type { UnitRecord } from "../store/projection.js";
import { FarmError, StaleChangeError } from "../errors/farm-error.js";
import { approverNeeded, protectedPathsIn, type Approver } from "./separation.js";
import type { TaskMerge } from "./task-merge.js";
import type { TaskQueue } from "./task-queue.js";
import type { UnitMerge } from "./unit-merge.js";

export interface HumanDecisionsDeps {
  state: FarmState;
  config: ServerConfig;
  queue: TaskQueue;
  unitMerge: UnitMerge;
  taskMerge: TaskMerge;
}

/**
 * What a person decides on a held change or task: approve (merge), reject, or request changes. A
 * decision binds to the version the person saw, never to a newer attempt; changes touching protected
 * paths need the approver right.
 */
export class HumanDecisions {
  constructor(private readonly d: HumanDecisionsDeps) {}

  private get p() {
    return this.d.state.projection;
  }

  async approve(taskId: string, unitId: string, by: Approver, seen: ChangeVersion): Promise<void> {
    const u = this.decisionTarget("approve", taskId, unitId, seen);
    const guarded = protectedPathsIn(u.evaluation?.diff.files ?? [], this.d.config.policy);
    if (guarded.length > 0 && !by.approver) throw new FarmError("forbidden", approverNeeded(taskId, unitId, guarded));
    const approval = {
      taskId,
      unitId,
      attempt: u.attempt,
      head: seen.head,
      by: { tokenId: by.tokenId, name: by.name, approver: by.approver },
      ...(guarded.length ? { protectedPaths: guarded } : {}),
    };
    await this.d.state.commit([{ type: "unit_approved", data: approval }], by.actor);
    await this.d.queue.queue(taskId, () => this.d.unitMerge.merge(taskId, unitId, u.attempt, false, by.actor));
  }

  /**
   * The unit a person's decision is about, once the decision is known to fit: the change they saw is
   * still the evaluated one (else 409 naming the current version, nothing journaled), and the
   * lifecycle table allows the action in the unit's state. Checked and committed in one turn of the
   * event loop, so no new attempt can slip in between.
   */
  private decisionTarget(
    action: "approve" | "reject" | "request_changes",
    taskId: string,
    unitId: string,
    seen: ChangeVersion,
  ): UnitRecord {
    const u = this.p.units.get(unitKey(taskId, unitId));
    if (!u) throw new FarmError("not_found", `unit '${unitId}' of task '${taskId}' not found`);
    const ev = u.evaluation;
    if (ev && (ev.attempt !== seen.attempt || ev.commit !== seen.head))
      throw new StaleChangeError({ attempt: ev.attempt, head: ev.commit }, seen);
    assertAction(action, this.p, this.d.config, u);
    // The table allows these only in states that have an evaluated change of the current attempt.
    if (!ev || ev.attempt !== u.attempt)
      throw new FarmError("conflict", `cannot decide on unit ${taskId}/${unitId}: attempt ${u.attempt} has no evaluated change yet`);
    return u;
  }

  async approveTaskMerge(taskId: string, by: string | Approver): Promise<void> {
    const who = typeof by === "string" ? { actor: by, approver: false } : by;
    const guard = (changes: { unitId: string }[]) => {
      const files = changes.flatMap((c) => this.p.units.get(unitKey(taskId, c.unitId))?.evaluation?.diff.files ?? []);
      const guarded = [...new Set(protectedPathsIn(files, this.d.config.policy))];
      if (guarded.length > 0 && !who.approver)
        throw new FarmError("forbidden", approverNeeded(taskId, changes.map((c) => c.unitId).join(","), guarded));
    };
    await this.d.taskMerge.approve(taskId, who.actor, (fn) => this.d.queue.queue(taskId, fn), guard);
  }

  async reject(taskId: string, unitId: string, reason: string, actor: string, seen: ChangeVersion): Promise<void> {
    const u = this.decisionTarget("reject", taskId, unitId, seen);
    await this.d.state.commit([{ type: "unit_rejected", data: { taskId, unitId, attempt: u.attempt, reason, head: seen.head } }], actor);
  }

  async requestChanges(taskId: string, unitId: string, feedback: string, actor: string, seen: ChangeVersion): Promise<void> {
    const u = this.decisionTarget("request_changes", taskId, unitId, seen);
    await this.d.state.commit(
      [{ type: "changes_requested", data: { taskId, unitId, attempt: u.attempt, feedback, head: seen.head } }],
      actor,
    );
  }
}
