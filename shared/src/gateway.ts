import { z } from "zod";
import { Complexity } from "./unit.js";
import { NodeId, TaskId, UnitId } from "./ids.js";

/**
 * The gate: when a unit may use the frontier model. Anything else stays local and never reaches the
 * frontier (docs/adr/0009-gateway-budgets-secrets-egress.md).
 */
export const GatePolicy = z.strictObject({
  /** false: the whole farm is local-only */
  enabled: z.boolean().default(true),
  /** the worker's lowest token confidence on its last attempt is below this */
  confidenceBelow: z.number().min(0).max(1).default(0.35),
  /** the unit's checks or the farm's evals failed this many times (across attempts) */
  failuresAtLeast: z.number().int().min(1).max(50).default(2),
  /** the unit's complexity is this or more */
  complexityAtLeast: Complexity.default("large"),
});
export type GatePolicy = z.infer<typeof GatePolicy>;

const Bucket = z.strictObject({
  requestsPerMin: z.number().int().min(1).max(100_000),
  inputTokensPerMin: z.number().int().min(1).max(1e9),
  outputTokensPerMin: z.number().int().min(1).max(1e9),
});
export type BucketLimits = z.infer<typeof Bucket>;

/** The frontier gateway: the only place that calls the frontier API. Off until `apiKey` is set. */
export const GatewayConfig = z.strictObject({
  /** a `secrets-manager://vault/item/field` reference, resolved at each call; never the key itself */
  apiKey: z
    .string()
    .regex(/^secrets-manager:\/\//, "must be a secrets-manager://vault/item/field reference, not a key")
    .optional(),
  baseUrl: z.string().url().optional(),
  model: z.string().min(1).max(200).default("claude-sonnet-5-5"),
  /** USD per million tokens, for reservations and the ledger */
  prices: z.strictObject({ inputPerMTok: z.number().min(0).default(3), outputPerMTok: z.number().min(0).default(15) }).prefault({}),
  /** the largest max_tokens a worker may ask for */
  maxTokensCap: z.number().int().min(1).max(128_000).default(8_192),
  limits: z
    .strictObject({
      perWorker: Bucket.default({ requestsPerMin: 10, inputTokensPerMin: 200_000, outputTokensPerMin: 40_000 }),
      fleet: Bucket.default({ requestsPerMin: 50, inputTokensPerMin: 800_000, outputTokensPerMin: 160_000 }),
    })
    .prefault({}),
  /** USD ceilings; reserved + spent never exceeds any of them */
  budgets: z
    .strictObject({
      perTaskUsd: z.number().min(0).default(5),
      perDayUsd: z.number().min(0).default(20),
      /** all-time ceiling for the whole farm; absent = none */
      fleetUsd: z.number().min(0).optional(),
    })
    .prefault({}),
  retry: z
    .strictObject({
      maxAttempts: z.number().int().min(1).max(20).default(4),
      /** a `retry-after` longer than this is cut to it */
      maxRetryAfterMs: z.number().int().min(0).default(60_000),
      overloadBaseMs: z.number().int().min(1).default(1_000),
    })
    .prefault({}),
  callTimeoutMs: z.number().int().min(1_000).default(120_000),
});
export type GatewayConfig = z.infer<typeof GatewayConfig>;

/** A worker's request for one frontier completion, on a unit it holds a lease for. */
export const EscalationCall = z.strictObject({
  /** the worker's idempotency key: asking again with it never fires a second call */
  requestId: z.string().regex(/^[A-Za-z0-9_-]{8,80}$/),
  taskId: TaskId,
  unitId: UnitId,
  attempt: z.number().int().min(1),
  leaseId: z.string().min(1).max(300),
  nodeId: NodeId,
  system: z.string().max(200_000).default(""),
  messages: z
    .array(z.strictObject({ role: z.enum(["user", "assistant"]), content: z.string().min(1).max(400_000) }))
    .min(1)
    .max(100),
  maxTokens: z.number().int().min(1).max(128_000),
  /** ask for the answer through the edit tool (the worker's edit protocol) */
  editTool: z.boolean().default(true),
  /** what made the worker ask: the gate checks these against the unit's journaled history too */
  signals: z
    .strictObject({ confidence: z.number().min(0).max(1).optional(), checksFailed: z.number().int().min(0).optional() })
    .default({}),
});
export type EscalationCall = z.infer<typeof EscalationCall>;
export type EscalationCallInput = z.input<typeof EscalationCall>;

export interface EscalationAnswer {
  requestId: string;
  text: string;
  /** the edit tool's input when the model used it */
  edits?: unknown;
  stopReason: string | null;
  usage: { inputTokens: number; outputTokens: number };
  costUsd: number;
  model: string;
}

export type EscalationState = "queued" | "admitted" | "settled" | "failed" | "denied";

/** One escalation as the ledger keeps it (also what the editor shows). */
export interface EscalationView {
  requestId: string;
  taskId: string;
  unitId: string;
  worker: string;
  priority: number;
  state: EscalationState;
  model: string;
  maxTokens: number;
  inputTokensMax: number;
  reservedUsd: number;
  spentUsd: number;
  queuedAt: number;
  /** 1-based place in the admission queue while queued */
  position?: number;
  /** why it waits, or why it failed or was denied */
  reason?: string;
}

export const SPEND_CAP_REASON_PREFIX = "frontier spend cap reached";
