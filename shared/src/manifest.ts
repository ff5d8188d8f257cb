import { z } from "zod";
import { TargetBranch } from "./git-names.js";
import { TaskId } from "./ids.js";
import { multiLineText, singleLineText } from "./text.js";
import { UnitSpec, UnitStatusMirror } from "./unit.js";

export const MANIFEST_API_VERSION = "optimus/v1";

/** `merging`: every unit is done and the task is on its way to its target; `held`: its merge waits for a person (see merge.heldReason). */
export const TaskState = z.enum(["open", "running", "merging", "held", "completed", "failed", "cancelled"]);
export type TaskState = z.infer<typeof TaskState>;

const ManifestUnit = UnitSpec.extend({ status: UnitStatusMirror.optional() });

/**
 * `.optimus/tasks/<id>/manifest.yaml`: a task and its unit DAG. Humans may write it by hand (then
 * `status` is absent); the farm mirrors each unit's status into it.
 */
export const TaskManifest = z.strictObject({
  apiVersion: z.literal(MANIFEST_API_VERSION).default(MANIFEST_API_VERSION),
  kind: z.literal("Task").default("Task"),
  id: TaskId.optional().describe("defaults to the folder name, or a slug of the title"),
  title: singleLineText(1, 200),
  description: multiLineText(0, 50_000).optional(),
  priority: z.number().int().min(-1000).max(1000).default(0),
  targetBranch: TargetBranch.optional(),
  createdBy: singleLineText(0, 200).optional(),
  units: z.array(ManifestUnit).min(1, "a task needs at least one unit").max(2_000),
  status: z
    .strictObject({
      state: TaskState,
      updatedAt: z.string(),
      /** the task's outcome in git: where its integration branch was merged, or why it waits */
      merge: z.strictObject({ into: z.string(), commit: z.string().optional(), heldReason: z.string().optional() }).optional(),
    })
    .optional(),
});
export type TaskManifest = z.infer<typeof TaskManifest>;
export type TaskManifestInput = z.input<typeof TaskManifest>;

/** Returns the first dependency cycle as a path of unit ids, or null. */
export function findCycle(units: ReadonlyArray<{ id: string; dependsOn: readonly string[] }>): string[] | null {
  const deps = new Map(units.map((u) => [u.id, u.dependsOn]));
  const state = new Map<string, 1 | 2>(); // 1 = on stack, 2 = done
  const stack: string[] = [];
  const visit = (id: string): string[] | null => {
    state.set(id, 1);
    stack.push(id);
    for (const d of deps.get(id) ?? []) {
      const s = state.get(d);
      if (s === 1) return [...stack.slice(stack.indexOf(d)), d];
      if (s === undefined && deps.has(d)) {
        const c = visit(d);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(id, 2);
    return null;
  };
  for (const u of units)
    if (!state.has(u.id)) {
      const c = visit(u.id);
      if (c) return c;
    }
  return null;
}

export interface ManifestProblem {
  /** path into the manifest, e.g. ["units", 2, "dependsOn", 0] */
  path: (string | number)[];
  message: string;
}

/** Checks a parsed manifest beyond its shape: unique ids, known dependencies, no cycles. */
export function checkManifestGraph(m: {
  units: ReadonlyArray<{ id: string; dependsOn: readonly string[]; reviews?: string; role?: string }>;
}): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  const seen = new Map<string, number>();
  m.units.forEach((u, i) => {
    if (seen.has(u.id))
      problems.push({ path: ["units", i, "id"], message: `duplicate unit id '${u.id}' (also unit ${seen.get(u.id)! + 1})` });
    else seen.set(u.id, i);
  });
  m.units.forEach((u, i) => {
    u.dependsOn.forEach((d, j) => {
      if (!seen.has(d)) problems.push({ path: ["units", i, "dependsOn", j], message: `unknown unit '${d}'` });
      if (d === u.id) problems.push({ path: ["units", i, "dependsOn", j], message: `unit '${u.id}' depends on itself` });
    });
  });
  m.units.forEach((u, i) => {
    if (u.reviews === undefined) return;
    const target = m.units.find((x) => x.id === u.reviews);
    if (!target) problems.push({ path: ["units", i, "reviews"], message: `unknown unit '${u.reviews}'` });
    else if (u.role !== "review") problems.push({ path: ["units", i, "role"], message: "only a review unit can review another unit" });
    else if (target.role === "review")
      problems.push({ path: ["units", i, "reviews"], message: `'${u.reviews}' is a review unit; review a codegen unit` });
  });
  if (problems.length === 0) {
    const cycle = findCycle(m.units);
    if (cycle) {
      const i = m.units.findIndex((u) => u.id === cycle[0]);
      problems.push({ path: ["units", i, "dependsOn"], message: `dependency cycle: ${cycle.join(" → ")}` });
    }
  }
  return problems;
}
