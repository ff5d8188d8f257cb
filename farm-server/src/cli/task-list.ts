import { TaskState, type TaskView } from "@optimus/shared";
import { httpClient, type GlobalOptions } from "./context.js";
import { CliError, EXIT } from "./errors.js";
import { ago, positiveInt, printJson, table } from "./table.js";

/** A task's units in one cell: how many are done, and what needs a person. */
function unitsCell(t: TaskView): string {
  const done = (t.counts.completed ?? 0) + (t.counts.merged ?? 0);
  const held = t.counts.awaiting_approval ?? 0;
  const dead = t.counts.dead ?? 0;
  return [`${done}/${t.units.length} done`, ...(held ? [`${held} held`] : []), ...(dead ? [`${dead} dead`] : [])].join(", ");
}

/**
 * `optimus task list [--state s] [--limit n] [--json]`: the farm's tasks, oldest first (the newest
 * `n` with --limit); finished tasks stay listed until they are archived (`task show` finds those).
 */
export async function taskList(o: GlobalOptions & { state?: string; limit?: string; json?: boolean }): Promise<void> {
  const state = o.state === undefined ? undefined : TaskState.safeParse(o.state);
  if (state && !state.success) throw new CliError(`--state must be one of ${TaskState.options.join(", ")}, got '${o.state}'`, EXIT.usage);
  const limit = o.limit === undefined ? undefined : positiveInt("--limit", o.limit);
  const { client } = httpClient(o);
  const all = await client.tasks.list.query(state ? { state: state.data } : undefined);
  const tasks = limit === undefined ? all : all.slice(-limit);
  if (o.json) return printJson(tasks);
  if (tasks.length === 0) {
    console.log(state ? `no ${state.data} tasks` : 'no tasks yet: send one with `optimus send "<instruction>"`');
    return;
  }
  const now = Date.now();
  process.stdout.write(
    table(
      ["TASK", "STATE", "UNITS", "AGE", "TITLE"],
      tasks.map((t) => [t.taskId, t.state, unitsCell(t), ago(t.createdAt, now), t.title]),
    ),
  );
}
