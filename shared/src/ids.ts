import { z } from "zod";

/**
 * Ids are also folder and branch names (`.optimus/tasks/<id>/`, `optimus/<task>`,
 * `optimus/<task>--<unit>-<n>`), so they are checked here, before git or the file system sees them:
 * nothing git refuses in a branch name (`..`, a trailing '.', a '.lock' ending, a leading '-' or '.').
 */
export const Slug = z
  .string()
  .min(1, "must not be empty")
  .max(64, "must be at most 64 characters")
  .regex(/^[a-z0-9][a-z0-9._-]*$/, "use lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
  .refine((s) => !s.includes(".."), "must not contain '..'")
  .refine((s) => !s.endsWith("."), "must not end with '.' (git refuses such branch names)")
  .refine((s) => !s.endsWith(".lock"), "must not end with '.lock' (git reserves that ending for its lock files)");

/**
 * A task id may not contain "--": it separates task from unit in the farm's branch and file names
 * (`optimus/<task>--<unit>-<n>`), so task `a--b` with unit `c` and task `a` with unit `b--c` would share one.
 */
export const TaskId = Slug.refine(
  (s) => !s.includes("--"),
  "must not contain '--' (it separates task and unit in the farm's branch names)",
);
export const UnitId = Slug;
export const NodeId = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "use letters, digits, '.', '_' or '-'");

/** `<task>/<unit>`: a unit id is unique only within its task. */
export type UnitKey = string;
export const unitKey = (taskId: string, unitId: string): UnitKey => `${taskId}/${unitId}`;
export function splitUnitKey(key: UnitKey): { taskId: string; unitId: string } {
  const i = key.indexOf("/");
  if (i < 0) throw new Error(`not a unit key: ${key}`);
  return { taskId: key.slice(0, i), unitId: key.slice(i + 1) };
}

/** Turns free text into a slug for a task id: "Fix the login bug!" → "fix-the-login-bug". */
export function slugify(text: string, max = 40): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, max)
    .replace(/-+$/g, "");
  return s || "task";
}
