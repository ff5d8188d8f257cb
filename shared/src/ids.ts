import { z } from "zod";

/** Ids are also folder and branch names (`.optimus/tasks/<id>/`, `optimus/<id>`), so keep them path-safe. */
export const Slug = z
  .string()
  .min(1, "must not be empty")
  .max(64, "must be at most 64 characters")
  .regex(/^[a-z0-9][a-z0-9._-]*$/, "use lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
  .refine((s) => !s.includes(".."), "must not contain '..'");

export const TaskId = Slug;
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
