/**
 * Why a unit that could run does not: the words the CLI's status, the farm's log and the editor
 * share. A unit is leased only by a connected worker of its role (`UnitSpec.role`), so a ready
 * unit with no such worker waits for ever in silence unless someone says so.
 */
import type { UnitView, WorkerView } from "./events.js";
import { UnitRole } from "./unit.js";

/** Workers of each role with an open lease stream, and the units they can take at once. */
export type RoleCapacity = Record<UnitRole, { connected: number; slots: number; active: number }>;

export function capacityByRole(workers: readonly Pick<WorkerView, "role" | "connected" | "maxConcurrentTasks" | "active">[]): RoleCapacity {
  const out = Object.fromEntries(UnitRole.options.map((r) => [r, { connected: 0, slots: 0, active: 0 }])) as RoleCapacity;
  for (const w of workers) {
    if (!w.connected) continue;
    const c = out[w.role];
    c.connected++;
    c.slots += w.maxConcurrentTasks;
    c.active += w.active;
  }
  return out;
}

/** The one sentence for a role nobody serves (the status screen, `optimus send` and the farm's log say it alike). */
export const noWorkerConnected = (role: UnitRole): string => `no ${role} worker connected`;

/**
 * Why a unit in `ready` is not running yet, or undefined when it is simply next in line (or not
 * ready). `blocked`: nobody can take it until a person starts a worker; otherwise it only queues.
 * `now` is on the farm's clock (`notBefore` is).
 */
export function unitWait(
  u: Pick<UnitView, "state" | "spec" | "notBefore">,
  capacity: RoleCapacity,
  now: number,
): { text: string; blocked: boolean } | undefined {
  if (u.state !== "ready") return undefined;
  const c = capacity[u.spec.role];
  if (c.connected === 0) return { text: noWorkerConnected(u.spec.role), blocked: true };
  if (u.notBefore !== undefined && u.notBefore > now)
    return { text: `next attempt in ${Math.ceil((u.notBefore - now) / 1000)}s (backing off after a failure)`, blocked: false };
  if (c.active >= c.slots)
    return {
      text: `queued: ${c.connected === 1 ? "the" : `all ${c.connected}`} ${u.spec.role} worker${c.connected === 1 ? " is" : "s are"} busy`,
      blocked: false,
    };
  return undefined;
}
