import type { UnitRole, UnitSpec, UnitState, UnitStatusMirror } from "./unit.js";
import type { ReviewVerdict, WorkerRegistration } from "./worker.js";

export type TaskSource = "api" | "manifest" | "files";

/** One eval command's outcome on a change. */
export interface EvalOutcome {
  name: string;
  exitCode: number | null;
  timedOut: boolean;
  durationMs: number;
  /** the end of its output */
  output: string;
}

export interface RiskAssessment {
  level: "low" | "medium" | "high";
  reasons: string[];
}

export interface DiffStat {
  files: string[];
  added: number;
  removed: number;
}
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
  unit_submitted: {
    taskId: string; unitId: string; attempt: number; leaseId?: string; worker: string; outcome: "succeeded" | "failed"; summary: string;
    /** the end of the worker's check output, and what it used: for session notes and the escalation gate */
    evidence?: string;
    signals?: { model?: string; tokens?: number; confidence?: number; checksFailed?: number; iterations?: number };
  };
  unit_completed: { taskId: string; unitId: string; attempt: number };
  unit_failed: { taskId: string; unitId: string; attempt: number; reason: string; feedback?: string } & RetryDecision;
  unit_retried: { taskId: string; unitId: string };
  /** the farm took a successful submission's patch and is applying and evaluating it */
  unit_evaluating: { taskId: string; unitId: string; attempt: number };
  unit_evaluated: {
    taskId: string; unitId: string; attempt: number; green: boolean; evals: EvalOutcome[]; diff: DiffStat; branch: string; commit: string;
  };
  unit_reviewed: { taskId: string; unitId: string; attempt: number; reviewUnitId: string; verdict: ReviewVerdict };
  unit_held: { taskId: string; unitId: string; attempt: number; risk: RiskAssessment };
  unit_approved: { taskId: string; unitId: string; attempt: number };
  unit_merged: { taskId: string; unitId: string; attempt: number; commit: string; into: string; auto: boolean; risk: RiskAssessment };
  unit_rejected: { taskId: string; unitId: string; attempt: number; reason: string };
  changes_requested: { taskId: string; unitId: string; attempt: number; feedback: string };
  /** a planning unit's plan, checked, became these units (or the fallback: one unit for the whole task) */
  units_planned: { taskId: string; planUnitId: string; units: UnitSpec[]; fallback?: string; adr?: string };
  task_merged: { taskId: string; into: string; commit: string };
  task_merge_held: { taskId: string; into: string; reason: string };
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
  /** what the next attempt must address: review comments, a human's words, failed evals */
  feedback?: string[];
  evaluation?: { green: boolean; evals: EvalOutcome[]; diff: DiffStat; branch: string; commit: string; attempt: number };
  review?: ReviewVerdict & { reviewUnitId: string };
  risk?: RiskAssessment;
  mergedCommit?: string;
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
  /** where the task's integration branch went, or why it waits */
  merge?: { into: string; commit?: string; heldReason?: string };
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
