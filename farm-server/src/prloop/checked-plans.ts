import type { EventBody, PlanProposal, ServerConfig, UnitResult, UnitSpec } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import { withReviewUnits } from "../core/task-commands.js";
import type { UnitRecord } from "../store/projection.js";
import { writeAdrDraft } from "../planner/adr-draft.js";
import { checkPlan } from "../planner/plan-check.js";
import { integrationBranch, type FarmRepo } from "../git/farm-repo.js";

export interface CheckedPlansDeps {
  state: FarmState;
  config: ServerConfig;
  repo: FarmRepo;
  /** where the farm's task files live before they are committed (ADR drafts are written there) */
  filesDir: string;
}

/**
 * A plan unit's plan, checked when it is submitted and turned into the task's units when it is
 * accepted; a plan that fails the check leaves its reason instead of units.
 */
export class CheckedPlans {
  /** checked plans between validate and accept, by lease id */
  private readonly byLease = new Map<string, { units: UnitSpec[]; plan: PlanProposal; adrNames: string[] } | { fallback: string }>();

  constructor(private readonly d: CheckedPlansDeps) {}

  async check(u: UnitRecord, result: UnitResult): Promise<void> {
    const taken = new Set(this.d.state.projection.tasks.get(u.taskId)!.units.map((k) => k.slice(u.taskId.length + 1)));
    const check = result.plan
      ? await checkPlan(result.plan, this.d.repo, integrationBranch(u.taskId), taken)
      : { ok: false as const, reason: "the worker returned no plan" };
    // ADR numbers continue those on the task's branch (its tree, read by git: nothing is checked out).
    const adrNames = check.ok && result.plan?.decision?.needed ? await this.d.repo.namesIn(integrationBranch(u.taskId), "docs/adr") : [];
    this.byLease.set(u.leaseId!, check.ok ? { units: check.units, plan: result.plan!, adrNames } : { fallback: check.reason });
  }

  /** The units the plan unit's submission gives its task (an ADR draft written when the plan asks for one). */
  planned(u: UnitRecord): EventBody {
    const checked = this.byLease.get(u.leaseId!) ?? { fallback: "the plan was not checked" };
    this.byLease.delete(u.leaseId!);
    let units: UnitSpec[];
    let adr: string | undefined;
    if ("units" in checked) {
      units = checked.units;
      const d = checked.plan.decision;
      if (d?.needed && d.title) adr = writeAdrDraft(this.d.filesDir, u.taskId, d, checked.adrNames);
    } else {
      units = [
        {
          id: "u1",
          goal: u.spec.goal,
          role: "codegen",
          files: u.spec.files,
          dependsOn: [],
          priority: u.spec.priority,
          complexity: u.spec.complexity,
          kind: "change",
        },
      ];
    }
    if (this.d.config.prloop.reviewEveryCodegenUnit) units = withReviewUnits(units);
    return {
      type: "units_planned",
      data: {
        taskId: u.taskId,
        planUnitId: u.unitId,
        units,
        ...("fallback" in checked ? { fallback: checked.fallback } : {}),
        ...(adr ? { adr } : {}),
      },
    };
  }
}
