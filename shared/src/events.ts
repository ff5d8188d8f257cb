import type { TaskState } from "./manifest.js";
import type { UnitAction } from "./lifecycle.js";
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
  /** files the change makes executable (a risk reason) */
  executables?: string[];
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
  /** `cause` absent: no heartbeat in time; `token_revoked`: an admin revoked the worker's token */
  lease_expired: { taskId: string; unitId: string; attempt: number; worker: string; cause?: "token_revoked" } & RetryDecision;
  unit_submitted: {
    taskId: string;
    unitId: string;
    attempt: number;
    leaseId?: string;
    worker: string;
    outcome: "succeeded" | "failed";
    summary: string;
    /** the submitting worker's token (with `worker`, the node: who authored the change; absent in older journals) */
    tokenId?: string;
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
    taskId: string;
    unitId: string;
    attempt: number;
    green: boolean;
    evals: EvalOutcome[];
    diff: DiffStat;
    branch: string;
    commit: string;
  };
  /** `selfReview`: the verdict came from the change's own author (its token or node), so it does not count */
  unit_reviewed: { taskId: string; unitId: string; attempt: number; reviewUnitId: string; verdict: ReviewVerdict; selfReview?: true };
  unit_held: { taskId: string; unitId: string; attempt: number; risk: RiskAssessment };
  /**
   * `by`: the person whose token approved (absent in older journals); `protectedPaths`: what needed the
   * approver right; `head`: the change's commit the person saw and approved (absent in older journals)
   */
  unit_approved: {
    taskId: string;
    unitId: string;
    attempt: number;
    by?: { tokenId: string; name: string; approver: boolean };
    protectedPaths?: string[];
    head?: string;
  };
  /**
   * `heldForTask`: with a forge, a change the policy would hold is merged into the integration branch
   * anyway, so the task's pull request shows it; the task's merge then waits for a person's approval
   * of a version containing it (`task_approved`). The reasons are `risk.reasons`.
   */
  unit_merged: {
    taskId: string;
    unitId: string;
    attempt: number;
    commit: string;
    into: string;
    auto: boolean;
    risk: RiskAssessment;
    heldForTask?: true;
  };
  /** `head`: the change's commit the person saw (absent in older journals) */
  unit_rejected: { taskId: string; unitId: string; attempt: number; reason: string; head?: string };
  /**
   * `head`: from a person, the change's commit they saw; `reviewUnitId`: from a review unit's verdict
   * (it counts against the unit's attempts). Neither: the farm sent the change back (it no longer merges).
   */
  changes_requested: { taskId: string; unitId: string; attempt: number; feedback: string; head?: string; reviewUnitId?: string };
  /** a planning unit's plan, checked, became these units (or the fallback: one unit for the whole task) */
  units_planned: { taskId: string; planUnitId: string; units: UnitSpec[]; fallback?: string; adr?: string };
  /** units added to a running task (e.g. to address review comments or a failing check on its pull request), with their first feedback */
  units_added: { taskId: string; units: UnitSpec[]; reason: string; feedback?: string[] };
  task_merged: { taskId: string; into: string; commit: string };
  task_merge_held: { taskId: string; into: string; reason: string; conflicts?: string[] };
  /**
   * A person approved the task's merge as of `head` (a commit of its integration branch they could
   * see: the pull request's head): it covers the held changes that `head` contains. `by`:
   * `github:<login>` for a review approval on the forge, else the farm's name of the token;
   * `forgeEvent`: the forge event it came from (so it is acted on once, also after a restart).
   */
  task_approved: { taskId: string; by: string; head: string; forgeEvent?: string };
  /** the task's pull request on the forge was opened (or found) */
  task_pull_request: { taskId: string; number: number; url: string; state: "open" | "merged" | "closed" };
  unit_cancelled: { taskId: string; unitId: string; reason?: string };
  /** a human (or the gate) asked for the frontier model on this unit's next attempt; the gateway admits it */
  escalation_requested: { taskId: string; unitId: string; attempt: number; reason?: string };
  /** a worker asked for the frontier and the gate let it through: it waits for admission under the limits */
  escalation_queued: {
    requestId: string;
    taskId: string;
    unitId: string;
    attempt: number;
    worker: string;
    priority: number;
    model: string;
    maxTokens: number;
    inputTokensMax: number;
    reservedUsd: number;
    gate: string;
    signals: Record<string, number | string | boolean>;
  };
  /** the gate kept the unit local: the frontier was not asked */
  escalation_denied: {
    requestId: string;
    taskId: string;
    unitId: string;
    attempt: number;
    worker: string;
    reason: string;
    signals: Record<string, number | string | boolean>;
  };
  /** capacity was reserved (worst case) and the call may fire; journaled before it does */
  escalation_admitted: { requestId: string; reservedUsd: number };
  /** the call ended: real usage replaces the reservation. `unknown`: the farm restarted mid-call and charges the reservation */
  escalation_settled: {
    requestId: string;
    inputTokens: number;
    outputTokens: number;
    costUsd: number;
    outcome: "answered" | "failed" | "unknown";
    errorClass?: string;
    message?: string;
  };
  /** the request ended without a call being charged (refused before generation, or never admitted) */
  escalation_failed: { requestId: string; errorClass: string; message: string };
  /** the provider said the spend cap is reached: nothing is admitted until a person resumes */
  escalations_paused: { reason: string };
  escalations_resumed: { by?: string };
  /** the egress proxy let a unit's check connect, or refused it */
  egress_decision: { principal: string | null; host: string; port: number; method: string; allowed: boolean; reason: string };
  report_rejected: { taskId: string; unitId: string; attempt: number; leaseId: string; worker: string; kind: string; reason: string };
  worker_registered: WorkerRegistration & { tokenId?: string };
  /** `ttlMs`: a token that expires unless used (every worker token; absent in older journals) */
  token_created: { tokenId: string; role: string; name: string; approver?: boolean; ttlMs?: number };
  token_revoked: { tokenId: string };
  /** the task manifests on the origin's default branch were imported as of `commit`: the next start reads only what changed since */
  manifests_imported: { ref: string; commit: string };
  /**
   * A finished task left the farm's hot state after its retention: its last views, kept here so
   * `task show` and the editor still answer for it (the journal's index finds them by id and order).
   */
  task_archived: ArchivedTask;
}

/** A finished task as it was when it left the hot state: its views, and its place in creation order. */
export interface ArchivedTask {
  taskId: string;
  /** creation order among all tasks (history pages go by it) */
  order: number;
  task: TaskView;
  units: UnitView[];
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
  /** `selfReview`: it came from the change's own author and does not count */
  review?: ReviewVerdict & { reviewUnitId: string; selfReview?: true };
  risk?: RiskAssessment;
  mergedCommit?: string;
  /** the frontier escalation asked for this unit, if any: queued until the gateway admits it */
  escalation?: Escalation;
}
export interface Escalation {
  state: "queued" | "escalated";
  requestedBy: string;
  at: number;
  attempt: number;
  reason?: string;
  /** 1-based place in the gateway's admission queue while a worker's escalation waits */
  position?: number;
}
export interface TaskView {
  taskId: string;
  title: string;
  description?: string;
  priority: number;
  state: TaskState;
  createdBy?: string;
  createdAt: number;
  updatedAt: number;
  units: string[];
  counts: Partial<Record<UnitState, number>>;
  /** where the task's integration branch went, or why it waits */
  merge?: { into: string; commit?: string; heldReason?: string; conflicts?: string[] };
  /** the task's pull request on the forge, when the farm delivers through one */
  pullRequest?: { number: number; url: string; state: "open" | "merged" | "closed" };
  /** the planner's plan was not used and the task became one unit: why (the plan check's reason) */
  planFallback?: string;
}
export interface WorkerView {
  nodeId: string;
  role: UnitRole;
  maxConcurrentTasks: number;
  model: { primary: string; escalation?: string };
  connected: boolean;
  active: number;
  /** the farm's clock (compare with `ViewsMessage.serverTime`, not the client's clock) */
  lastSeenAt: number;
}

/** One file of a unit's change, as the editor's diff shows it. Content is absent for binary or too large files. */
export interface ChangeFile {
  path: string;
  status: "added" | "modified" | "deleted";
  binary: boolean;
  tooLarge: boolean;
  base?: string;
  proposed?: string;
}

/** Live progress of a unit's current attempt, as its worker last reported it. */
export interface UnitProgressView {
  phase: string;
  step?: string;
  tokens?: number;
  elapsedMs?: number;
  attempt: number;
  at: number;
}

/**
 * A unit as clients show it. `actions`: what the farm accepts for it now (`availableActions` of the
 * lifecycle table, computed by the farm); `needsApprover`: approving its change needs a token with
 * the approver right (it touches protected paths).
 */
export type UnitLiveView = UnitView & { progress?: UnitProgressView; actions: UnitAction[]; needsApprover?: boolean };

/**
 * What an editor keeps in sync with (the `views.stream` subscription): a snapshot, then deltas of the
 * tasks and units that changed, live worker progress and the fleet. `seq` is the journal position the
 * views reflect; resuming from `epoch:seq` sends only what changed since.
 */
/**
 * `serverTime` (every message): the farm's clock when it sent the message, in ms, so a client measures
 * ages (offline for, running for, last seen) on the farm's clock rather than its own.
 */
export type ViewsMessage =
  /** `history`: finished tasks older than those sent, fetched on demand (`views.history`) — absent from older farms */
  | {
      kind: "snapshot";
      epoch: number;
      seq: number;
      serverTime: number;
      tasks: TaskView[];
      units: UnitLiveView[];
      workers: WorkerView[];
      spend: SpendSummary;
      history?: HistoryCursor;
    }
  | { kind: "delta"; epoch: number; seq: number; serverTime: number; tasks: TaskView[]; units: UnitLiveView[]; spend?: SpendSummary }
  | {
      kind: "progress";
      epoch: number;
      seq: number;
      serverTime: number;
      units: Array<{ taskId: string; unitId: string; progress: UnitProgressView | null }>;
    }
  | { kind: "fleet"; epoch: number; seq: number; serverTime: number; workers: WorkerView[] };

/** Finished tasks a client has not been sent yet: how many, and where the next page starts. */
export interface HistoryCursor {
  more: number;
  /** pass as `before` to `views.history` for the next page (absent when `more` is 0) */
  before?: number;
}

/** A page of finished tasks (newest first) with their units, from `views.history`. */
export interface HistoryPage extends HistoryCursor {
  tasks: TaskView[];
  units: UnitLiveView[];
}

/** Frontier spend as the editor shows it (the gateway's ledger; zero while nothing escalated). */
export interface SpendSummary {
  todayUsd: number;
  dailyBudgetUsd?: number;
  days: Array<{ day: string; usd: number }>;
  /** why escalations are paused (the provider's spend cap), when they are */
  paused?: string;
  /** the farm has a frontier model: the gateway has an API key and the gate is enabled (else escalate is refused) */
  frontierConfigured: boolean;
  /** the gate's policy, so the editor can say when a unit may escalate */
  gate?: { enabled: boolean; confidenceBelow: number; failuresAtLeast: number; complexityAtLeast: string };
}

/** Everything the editor's unit detail panel shows, in one answer. */
export interface UnitDetail {
  unit: UnitLiveView;
  task: TaskView;
  /** the agent's conversation on the latest attempt that kept one */
  transcript: Array<{ role: "system" | "user" | "assistant"; content: string }>;
  transcriptAttempt?: number;
  /** the unit's journal entries, oldest first, each as one readable line */
  history: Array<{ seq: number; at: number; type: string; actor: string; summary: string }>;
  /** frontier spend on this unit in USD (0 until it escalates through the gateway) */
  costUsd: number;
  /** the unit's frontier escalations (the gateway's ledger), oldest first */
  escalations?: Array<{ at: number; state: string; by: string; reason?: string; costUsd: number; position?: number }>;
  /** what the latest submission reported: its signals and the end of its check output */
  signals?: EventPayloads["unit_submitted"]["signals"];
  evidence?: string;
  /** the latest submission's own summary of its change (its attempt in `submittedAttempt`) */
  summary?: string;
  submittedAttempt?: number;
}
