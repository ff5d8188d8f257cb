import type { UnitLiveView } from "@optimus/shared";
import { httpClient, type GlobalOptions } from "./context.js";
import { printJson } from "./table.js";

/**
 * `optimus status --json` (always once): the tasks the status screen shows and their units, as the
 * farm's wire objects (`TaskView`, `UnitLiveView`), for scripts.
 */
export async function statusJson(o: GlobalOptions & { task?: string }): Promise<void> {
  const { client } = httpClient(o);
  if (o.task) {
    const r = await client.tasks.get.query({ taskId: o.task });
    return printJson({ tasks: [r.task], units: r.units });
  }
  const tasks = await client.tasks.list.query();
  const units: UnitLiveView[] = [];
  for (const t of tasks) units.push(...((await client.units.list.query({ taskId: t.taskId, limit: 10_000 })) as UnitLiveView[]));
  printJson({ tasks, units });
}
