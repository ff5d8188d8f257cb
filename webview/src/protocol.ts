/**
 * Messages between the extension host (extension/src/panels) and the webview pages built here.
 * The host owns all farm access; a page only renders what it is sent and posts the user's intent back.
 * Plain data only (structured-clone safe); no functions, no class instances.
 */

/** One step of the agent's work on an attempt, as the worker reported it in its transcript. */
export interface TranscriptStep {
  /** e.g. "prompt", "model", "edit", "check", "review", "note" */
  kind: string;
  /** ms since epoch, when known */
  at?: number;
  title: string;
  text: string;
}

export interface EvalRow {
  name: string;
  exitCode: number | null;
  timedOut: boolean;
  durationMs: number;
  output: string;
}

export interface HistoryRow {
  seq: number;
  at: number;
  /** the journal event type, e.g. unit_leased, unit_failed, unit_merged */
  type: string;
  actor: string;
  /** one line a person can read */
  summary: string;
}

export interface UnitDetailModel {
  taskId: string;
  unitId: string;
  title: string;
  state: string;
  /** the state's name as every view shows it (the farm's STATE_LABELS) */
  stateLabel: string;
  attempt: number;
  /** the evaluated change the buttons decide on (what this page shows), when there is one */
  change?: { attempt: number; head: string };
  /** the editor is connected to the farm: what is shown is its latest answer and buttons can act */
  live: boolean;
  worker?: string;
  role: string;
  instruction: string;
  files: string[];
  check?: string;
  progress?: { phase: string; step?: string; tokens?: number; elapsedMs?: number };
  signals?: { model?: string; tokens?: number; confidence?: number; checksFailed?: number; iterations?: number };
  /** money spent on this unit at the frontier, in USD; 0 when it never escalated */
  costUsd: number;
  evidence?: string;
  evals: EvalRow[];
  review?: { verdict: string; risk: string; summary: string; comments: { path?: string; line?: number; body: string }[] };
  risk?: { level: string; reasons: string[] };
  transcript: TranscriptStep[];
  escalations: { at: number; state: string; by: string; reason?: string }[];
  history: HistoryRow[];
  /** which actions the farm allows now for this token (none while disconnected); a button for each */
  actions: UnitAction[];
}

export type UnitAction = "approve" | "reject" | "requestChanges" | "escalate" | "retry" | "cancel" | "openDiff";

export interface DashboardModel {
  /** connection state of the extension to its farm */
  connection: "connected" | "connecting" | "disconnected";
  farmUrl?: string;
  /** the farm's clock when the model was made: ages ("seen 5s ago") are measured on it */
  now: number;
  /** `health`: what the Fleet view says ("healthy", "busy", "offline 2m 05s", "unknown (…)") */
  workers: {
    nodeId: string;
    role: string;
    model: string;
    connected: boolean;
    active: number;
    capacity: number;
    lastSeenAt: number;
    health: string;
  }[];
  /** spend per day, oldest first; budget is the daily ceiling when one is configured */
  spend: { day: string; usd: number }[];
  dailyBudgetUsd?: number;
  todayUsd: number;
  /** counts of units per state across the farm */
  unitCounts: Record<string, number>;
  /** each state's name as every view shows it (the farm's STATE_LABELS) */
  stateLabels: Record<string, string>;
  /** samples of fleet load over time (active leases / capacity), oldest first */
  load: { at: number; active: number; capacity: number }[];
}

/** host → page */
export type HostMessage =
  { type: "unitDetail"; model: UnitDetailModel } | { type: "dashboard"; model: DashboardModel } | { type: "error"; message: string };

/** page → host */
export type PageMessage =
  | { type: "ready" }
  | { type: "action"; action: UnitAction; taskId: string; unitId: string; attempt?: number; head?: string }
  | { type: "refresh" };
