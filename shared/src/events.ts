import type { UnitRole, UnitSpec, UnitState, UnitStatusMirror } from "./unit.js";
import type { WorkerRegistration } from "./worker.js";

export type TaskSource = "api" | "manifest" | "files";
export type RetryDecision = { next: "retry"; notBefore: number } | { next: "dead" };

/** What a task is, apart from its units: the same in the event that creates it and in every view. */
export interface TaskHeader {
  taskId: string;
  title: string;
  description?: string;
  priority: number;
  targetBranch?: string;
  createdBy?: string;
}

/** The payload of each journal event type. Every transition of the farm is one of these. */
export interface EventPayloads {
  epoch_started: { epoch: number; pid: number; host: string; rebuiltFromFiles?: number };
  task_created: TaskHeader & {
    source: TaskSource;
    units: UnitSpec[];
    /** present when the task was rebuilt from its manifest file: the mirrored unit states */
    restored?: Record<string, UnitStatusMirror>;
  };
  task_cancelled: { taskId: string; reason?: string };
  unit_leased: { taskId: string; unitId: string; attempt: number; worker: string; leaseId: string; expiresAt: number };
  lease_expired: { taskId: string; unitId: string; attempt: number; worker: string } & RetryDecision;
  unit_submitted: { taskId: string; unitId: string; attempt: number; leaseId?: string; worker: string; outcome: "succeeded" | "failed"; summary: string };
  unit_completed: { taskId: string; unitId: string; attempt: number };
  unit_failed: { taskId: string; unitId: string; attempt: number; reason: string } & RetryDecision;
  unit_retried: { taskId: string; unitId: string };
  unit_cancelled: { taskId: string; unitId: string; reason?: string };
  report_rejected: { taskId: string; unitId: string; attempt: number; leaseId: string; worker: string; kind: string; reason: string };
  worker_registered: WorkerRegistration & { tokenId?: string };
  token_created: { tokenId: string; role: string; name: string };
  token_revoked: { tokenId: string };
}
export type EventType = keyof EventPayloads;

export type EventBody = { [K in EventType]: { type: K; data: EventPayloads[K] } }[EventType];

/** A journal entry: a body stamped with its place in the chain. */
export type FarmEvent = EventBody & {
  seq: number;
  ts: number;
  epoch: number;
  /** who caused it: a token's name (`editor:alice`), a worker node, or `farm` */
  actor: string;
  prevHash: string;
  hash: string;
};

export interface UnitView {
  taskId: string;
  unitId: string;
  spec: UnitSpec;
  state: UnitState;
  attempt: number;
  failures: number;
  worker?: string;
  leaseId?: string;
  leaseExpiresAt?: number;
  notBefore?: number;
  reason?: string;
  updatedAt: number;
}
export interface TaskView {
  taskId: string;
  title: string;
  description?: string;
  priority: number;
  state: "open" | "running" | "completed" | "failed" | "cancelled";
  createdBy?: string;
  createdAt: number;
  updatedAt: number;
  units: string[];
  counts: Partial<Record<UnitState, number>>;
}
export interface WorkerView {
  nodeId: string;
  role: UnitRole;
  maxConcurrentTasks: number;
  model: { primary: string; escalation?: string };
  connected: boolean;
  active: number;
  lastSeenAt: number;
}
