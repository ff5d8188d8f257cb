/**
 * What the CLI's scriptable commands read from the farm (`worker list`, id prefixes, `unit diff`):
 * zod schemas, so the farm's answers and `--json` output keep one stable shape.
 */
import { z } from "zod";
import { NodeId, TaskId } from "./ids.js";
import { UnitRole } from "./unit.js";

/** One worker of the fleet as `optimus worker list` shows it; times on the farm's clock (ms). */
export const WorkerListEntry = z.strictObject({
  nodeId: NodeId,
  role: UnitRole,
  model: z.string(),
  /** units it may hold at once */
  capacity: z.number().int().min(0),
  /** whether its lease stream is open now */
  connected: z.boolean(),
  /** the units it holds leases on, as `<task>/<unit>` */
  leases: z.array(z.string()),
  /** when its current connection opened (absent while disconnected) */
  connectedSince: z.number().optional(),
  /** its last heartbeat (or, before the first, when it connected or registered) */
  lastHeartbeatAt: z.number(),
  registeredAt: z.number(),
});
export type WorkerListEntry = z.infer<typeof WorkerListEntry>;

/** How many matches `tasks.resolve` names at most (enough to list the candidates of an ambiguous prefix). */
export const MAX_PREFIX_MATCHES = 20;

/** The tasks, live or archived, whose id starts with a prefix; `exact`: one of them is the prefix itself. */
export const TaskMatches = z.strictObject({
  prefix: z.string(),
  exact: z.boolean(),
  matches: z.array(z.strictObject({ taskId: TaskId, archived: z.boolean() })),
  /** more tasks matched than are listed */
  more: z.boolean(),
});
export type TaskMatches = z.infer<typeof TaskMatches>;

/** An attempt's change as a unified patch (`git diff` of its commit, or the patch as submitted before evaluation). */
export const UnitPatch = z.strictObject({
  taskId: TaskId,
  unitId: z.string(),
  attempt: z.number().int().min(1),
  /** the evaluated commit, when the farm made one */
  commit: z.string().optional(),
  /** `evaluated`: from the farm's commit; `submitted`: the worker's patch as it arrived */
  source: z.enum(["evaluated", "submitted"]),
  patch: z.string(),
});
export type UnitPatch = z.infer<typeof UnitPatch>;
