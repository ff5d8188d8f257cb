import { z } from "zod";
import { UnitId } from "./ids.js";
import { RepoPath } from "./repo-path.js";
import { multiLineText } from "./text.js";

export const UnitRole = z.enum(["codegen", "review"]);
export type UnitRole = z.infer<typeof UnitRole>;

/**
 * The unit lifecycle (what each state allows is one table: lifecycle.ts). With the PR loop:
 * leased → submitted → evaluating (the farm applies the patch and runs the eval suite) → reviewing
 * (its review unit runs) → merged, or
 * awaiting_approval (held for a human), or back to ready with the reviewer's or a human's feedback. `completed` is the terminal state of a unit whose accepted
 * result needs no merge (a review, or any unit while no PR loop is configured); `merged` is reached
 * through the PR loop.
 */
/**
 * Where a unit is in its lifecycle. Every state is entered by some event (see the projection);
 * "changes requested" and "failed" are what happened to an attempt (its reason, its feedback), the
 * unit itself is then `ready` for its next attempt or `dead`.
 */
export const UnitState = z.enum([
  "planned",
  "ready",
  "leased",
  "submitted",
  "evaluating",
  "reviewing",
  "awaiting_approval",
  "completed",
  "merged",
  "dead",
  "cancelled",
]);
export type UnitState = z.infer<typeof UnitState>;

export const TERMINAL_UNIT_STATES: readonly UnitState[] = ["completed", "merged", "dead", "cancelled"];
export const isTerminal = (s: UnitState): boolean => TERMINAL_UNIT_STATES.includes(s);
/** States that satisfy a dependency: the dependent unit may start. */
export const isDone = (s: UnitState): boolean => s === "completed" || s === "merged";

export const Complexity = z.enum(["trivial", "small", "medium", "large"]);
export type Complexity = z.infer<typeof Complexity>;

/** What a unit is: written by a human in a manifest or by the planner. */
export const UnitSpec = z.strictObject({
  id: UnitId,
  goal: multiLineText(1, 20_000, "must describe the goal"),
  role: UnitRole.default("codegen"),
  /** repository-relative files, or folders ending in '/', in the unit's scope (read into its prompt) */
  files: z.array(RepoPath).max(500).default([]),
  check: multiLineText(0, 4_000).optional().describe("shell command whose exit code proves the unit done"),
  dependsOn: z.array(UnitId).max(200).default([]),
  priority: z.number().int().min(-1000).max(1000).default(0),
  complexity: Complexity.default("small"),
  maxAttempts: z.number().int().min(1).max(50).optional(),
  /** for a review unit: the codegen unit whose change it reviews */
  reviews: UnitId.optional(),
  /** `plan`: the worker turns the goal into units (the planner) instead of changing code */
  kind: z.enum(["change", "plan"]).default("change"),
});
export type UnitSpec = z.infer<typeof UnitSpec>;
export type UnitSpecInput = z.input<typeof UnitSpec>;

/** Status of a unit as mirrored into its task's manifest file, so the farm can rebuild from files. */
export const UnitStatusMirror = z.strictObject({
  state: UnitState,
  attempt: z.number().int().min(0),
  worker: z.string().optional(),
  updatedAt: z.string(),
  reason: z.string().optional(),
});
export type UnitStatusMirror = z.infer<typeof UnitStatusMirror>;
