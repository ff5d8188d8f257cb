import { FINISHED_TASK_STATES } from "@optimus/shared";
import { connection, httpClient, type GlobalOptions } from "./context.js";
import { CliError } from "./errors.js";
import { statusLines, type UnitRow } from "./status/rows.js";
import { watchStatus } from "./status/watch.js";

export type StatusCommandOptions = GlobalOptions & { once?: boolean; watch?: boolean; task?: string; width?: string };

/** finished tasks `status --once` lists (the rest are counted) */
const FINISHED_SHOWN = 10;

function widthOf(o: StatusCommandOptions): number | undefined {
  if (o.width === undefined) return undefined;
  const n = Number(o.width);
  if (!Number.isInteger(n) || n < 20 || n > 1000)
    throw new CliError(`--width must be a whole number of columns from 20 to 1000, got '${o.width}'`, 2);
  return n;
}

/**
 * `optimus status`: on a terminal, a live screen redrawn as the farm changes (`--watch`, the
 * default there); otherwise, or with `--once`, printed once in the terminal's width (80 when
 * there is no terminal; `--width` forces one).
 */
export async function status(o: StatusCommandOptions): Promise<void> {
  const width = widthOf(o);
  const tty = process.stdout.isTTY === true;
  if (o.watch && o.once) throw new CliError("--watch and --once exclude each other: pick one", 2);
  if (o.watch && !tty) throw new CliError("--watch draws on a terminal and stdout is not one: use --once (the default here)", 2);
  if (tty && !o.once) {
    const { client } = httpClient(o);
    // One call first: a wrong token or an unreachable farm is said plainly, before the screen takes over.
    await client.me.query();
    const c = connection(o);
    await watchStatus({ url: c.url, token: c.token, trust: c.trust, task: o.task, width, out: process.stdout, input: process.stdin });
    return;
  }
  const { client } = httpClient(o);
  const [all, workers] = await Promise.all([client.tasks.list.query(), client.fleet.workers.query()]);
  const tasks = o.task ? all.filter((t) => t.taskId === o.task) : all;
  if (o.task && tasks.length === 0)
    throw new CliError(`task '${o.task}' not found among the farm's live tasks; \`optimus status\` lists them`);
  // Units only for what is shown: every live task, and the most recent finished ones.
  const finished = tasks.filter((t) => FINISHED_TASK_STATES.has(t.state)).sort((a, b) => b.updatedAt - a.updatedAt);
  const wanted = [...tasks.filter((t) => !FINISHED_TASK_STATES.has(t.state)), ...finished.slice(0, FINISHED_SHOWN)];
  // A finished task archived since the list is shown without its units.
  const unitsOf = (taskId: string) => client.units.list.query({ taskId, limit: 200 }).catch(() => []) as Promise<UnitRow[]>;
  const units = new Map<string, UnitRow[]>(await Promise.all(wanted.map(async (t) => [t.taskId, await unitsOf(t.taskId)] as const)));
  const lines = statusLines(
    { tasks, units, workers },
    { width: width ?? (tty ? process.stdout.columns : 80), maxFinished: FINISHED_SHOWN },
  );
  process.stdout.write(lines.join("\n") + "\n");
}
