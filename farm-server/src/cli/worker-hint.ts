import { capacityByRole, noWorkerConnected, type UnitRole } from "@optimus/shared";
import type { FarmClient } from "../client/farm-client.js";

/**
 * The line `optimus send` adds after "created" when no connected worker can take the new task's
 * units: without it the task would wait in silence. Undefined when a worker of every role it needs
 * is connected, or when the farm cannot be asked (the hint never fails a send).
 */
export async function waitHint(client: FarmClient, taskId: string): Promise<string | undefined> {
  try {
    const [units, workers] = await Promise.all([client.units.list.query({ taskId }), client.fleet.workers.query()]);
    const capacity = capacityByRole(workers);
    const waiting = units.filter((u) => u.state === "ready" || u.state === "planned").map((u) => u.spec.role);
    const missing = [...new Set<UnitRole>(waiting)].filter((r) => capacity[r].connected === 0);
    if (missing.length === 0) return undefined;
    const start = missing.map((r) => `\`optimus worker --role ${r} --model <file.gguf|url>\``).join(" and ");
    return `it waits: ${missing.map(noWorkerConnected).join(", ")}; start one with ${start} (\`optimus status\` shows what waits)`;
  } catch {
    return undefined;
  }
}
