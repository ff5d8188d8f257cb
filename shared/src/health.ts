import { z } from "zod";
import { UnitRole, UnitState } from "./unit.js";

/** What a farm node is now: the one that leads (serves the API, writes the journal) or one standing by. */
export const FarmRole = z.enum(["leader", "standby"]);
export type FarmRole = z.infer<typeof FarmRole>;

const count = z.number().int().min(0);

/**
 * `GET /healthz`: what a load balancer, a service manager or a person asks a farm node. `ok` and
 * `epoch` are what it answered before (kept for those that read them). Public: it says nothing a
 * token would protect (no task, unit or worker names).
 */
export const FarmHealth = z.strictObject({
  ok: z.boolean(),
  /** the farm server's version */
  version: z.string().min(1),
  role: FarmRole,
  /** the epoch this node leads with (a standby: the last epoch it read) */
  epoch: count,
  /** where the leader is, when this node is a standby and knows it */
  leaderUrl: z.string().optional(),
  /** journal events the leader committed that this node has not applied yet (0 on a leader) */
  journalLag: count,
  /** how long this farm server has run */
  uptimeMs: count,
  /** workers with an open lease stream, by role */
  workers: z.record(UnitRole, count),
  /** units not yet finished (planned, ready, leased … awaiting approval), by role and state */
  queue: z.record(UnitRole, z.partialRecord(UnitState, count)),
});
export type FarmHealth = z.infer<typeof FarmHealth>;
