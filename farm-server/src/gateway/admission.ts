import type { GatewayConfig } from "@optimus/shared";
import { utcDay, type Ledger } from "../store/ledger.js";
import type { RateLimits } from "./token-bucket.js";

/** Worst-case USD of a call: every input token counted, and every one of `max_tokens` generated. */
export function worstCaseUsd(prices: GatewayConfig["prices"], inputTokensMax: number, maxTokens: number): number {
  return (inputTokensMax * prices.inputPerMTok + maxTokens * prices.outputPerMTok) / 1e6;
}

export function costUsd(prices: GatewayConfig["prices"], inputTokens: number, outputTokens: number): number {
  return (inputTokens * prices.inputPerMTok + outputTokens * prices.outputPerMTok) / 1e6;
}

/**
 * An upper bound on a request's input tokens without asking the provider: one token is at least one
 * UTF-8 byte for the tokenizers in use, so the byte count never under-reserves.
 */
export function inputTokensUpperBound(system: string, messages: Array<{ content: string }>, toolSchemaBytes: number): number {
  let n = Buffer.byteLength(system) + toolSchemaBytes + 16;
  for (const m of messages) n += Buffer.byteLength(m.content) + 8;
  return n;
}

export interface Candidate {
  taskId: string;
  worker: string;
  day?: string;
  reservedUsd: number;
  inputTokensMax: number;
  maxTokens: number;
}

/** The money ceilings a call counts against, each as [name, limit, key in the ledger]. */
function ceilings(b: GatewayConfig["budgets"], c: Candidate, now: number): Array<[string, number, string]> {
  const out: Array<[string, number, string]> = [
    [`task ${c.taskId} budget`, b.perTaskUsd, `task:${c.taskId}`],
    [`daily budget (${c.day ?? utcDay(now)})`, b.perDayUsd, `day:${c.day ?? utcDay(now)}`],
  ];
  if (b.fleetUsd !== undefined) out.push(["fleet budget", b.fleetUsd, "all"]);
  return out;
}

/** Why a call can never be admitted whatever else happens (bigger than a ceiling or a bucket), or undefined. */
export function neverFits(cfg: GatewayConfig, c: Candidate, worker: RateLimits, fleet: RateLimits, now: number): string | undefined {
  for (const [name, limit] of ceilings(cfg.budgets, c, now)) {
    if (c.reservedUsd > limit) return `its worst-case cost $${c.reservedUsd.toFixed(4)} is more than the ${name} of $${limit.toFixed(2)}`;
  }
  if (worker.waitFor(c.inputTokensMax, c.maxTokens) === Infinity || fleet.waitFor(c.inputTokensMax, c.maxTokens) === Infinity) {
    return `it asks for more tokens (${c.inputTokensMax} in, ${c.maxTokens} out) than a minute of the rate limits allows`;
  }
  return undefined;
}

/**
 * Whether a call may be admitted now: every money ceiling holds with its worst case added to what
 * is spent and reserved, and the worker's and the fleet's buckets have room. Returns the reason it
 * must wait (and for how long, for buckets), or `ok`. `shared` says whether what blocks it blocks
 * everyone (a pause, the day or fleet budget, the fleet's buckets) or only this call's own task or
 * worker — those must not hold up the queue behind it.
 */
export function admit(
  cfg: GatewayConfig,
  ledger: Ledger,
  c: Candidate,
  worker: RateLimits,
  fleet: RateLimits,
  now: number,
): { ok: true } | { ok: false; reason: string; shared: boolean; retryInMs?: number } {
  if (ledger.paused) return { ok: false, shared: true, reason: `escalations are paused: ${ledger.paused}` };
  for (const [name, limit, key] of ceilings(cfg.budgets, c, now)) {
    const used = ledger.spentOn(key) + ledger.reservedOn(key);
    if (used + c.reservedUsd > limit + 1e-9)
      return {
        ok: false,
        shared: !key.startsWith("task:"),
        reason: `${name}: $${used.toFixed(4)} spent or reserved of $${limit.toFixed(2)}`,
      };
  }
  const fleetWait = fleet.waitFor(c.inputTokensMax, c.maxTokens);
  const workerWait = worker.waitFor(c.inputTokensMax, c.maxTokens);
  if (fleetWait > 0 || workerWait > 0)
    return {
      ok: false,
      shared: fleetWait > 0,
      reason: "rate limits (requests or tokens per minute)",
      retryInMs: Math.max(fleetWait, workerWait),
    };
  return { ok: true };
}
