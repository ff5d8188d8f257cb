/**
 * Task and unit ids as the CLI takes them: in full, or any prefix that names one task (or one unit
 * of the task) — `approve risky-change-1/fix` for `risky-change-1-3f2a9c/fix-parser`. One place,
 * so every command resolves alike: the farm lists the tasks a prefix matches (live and archived,
 * `tasks.resolve`); a unit's prefix is matched against its task's units. An id that is itself a
 * full id wins over longer ids it is a prefix of.
 */
import type { FarmClient } from "../client/farm-client.js";
import { CliError, EXIT } from "./errors.js";
import { printable } from "./printable.js";

export interface UnitRef {
  taskId: string;
  unitId: string;
}

/** Several candidates: the error names them (on its one line), so the user can copy the right one. */
function ambiguous(what: string, ref: string, ids: string[], more: boolean): CliError {
  return new CliError(
    `'${printable(ref)}' matches ${more ? "more than " : ""}${ids.length} ${what}s: ${ids.map((id) => printable(id)).join(", ")}${more ? ", …" : ""}; give more of the id`,
    EXIT.usage,
  );
}

/** The one task `ref` names (a full id or a unique prefix); exit 3 when none, 2 when several. */
export async function resolveTask(client: FarmClient, ref: string): Promise<{ taskId: string; archived: boolean }> {
  if (!ref.trim()) throw new CliError("name a task: its id or the start of it", EXIT.usage);
  const r = await client.tasks.resolve.query({ prefix: ref });
  const exact = r.matches.find((m) => m.taskId === ref);
  if (exact) return exact;
  if (r.matches.length === 0) throw new CliError(`no task matches '${printable(ref)}'`, EXIT.notFound);
  if (r.matches.length > 1 || r.more)
    throw ambiguous(
      "task",
      ref,
      r.matches.map((m) => m.taskId),
      r.more,
    );
  return r.matches[0]!;
}

export const resolveTaskId = async (client: FarmClient, ref: string): Promise<string> => (await resolveTask(client, ref)).taskId;

/** `<task>/<unit>`, each part a full id or a unique prefix. */
export async function resolveUnit(client: FarmClient, ref: string): Promise<UnitRef> {
  const slash = ref.indexOf("/");
  if (slash < 0) throw new CliError(`name the unit as <task>/<unit>, got '${printable(ref)}'`, EXIT.usage);
  const taskId = await resolveTaskId(client, ref.slice(0, slash));
  const unitPart = ref.slice(slash + 1);
  if (!unitPart) throw new CliError(`name the unit after the slash: ${printable(taskId)}/<unit>`, EXIT.usage);
  const { task } = await client.tasks.get.query({ taskId });
  if (task.units.includes(unitPart)) return { taskId, unitId: unitPart };
  const matches = task.units.filter((u) => u.startsWith(unitPart));
  if (matches.length === 0)
    throw new CliError(
      `no unit of task ${printable(taskId)} matches '${printable(unitPart)}' (its units: ${task.units.join(", ")})`,
      EXIT.notFound,
    );
  if (matches.length > 1)
    throw ambiguous(
      "unit",
      ref,
      matches.map((u) => `${taskId}/${u}`),
      false,
    );
  return { taskId, unitId: matches[0]! };
}

/** `<task>` or `<task>/<unit>`: what `approve` takes. */
export async function resolveTaskOrUnit(client: FarmClient, ref: string): Promise<{ taskId: string; unitId?: string }> {
  return ref.includes("/") ? resolveUnit(client, ref) : { taskId: await resolveTaskId(client, ref) };
}
