import type { Logger } from "pino";
import {
  backoffMs,
  unitKey,
  type EscalationAnswer,
  type EscalationCall,
  type EscalationView,
  type GatePolicy,
  type GatewayConfig,
} from "@optimus/shared";
import { FarmError } from "../errors/farm-error.js";
import { SecretError } from "../secrets/index.js";
import type { FarmState } from "../core/farm-state.js";
import { admit, costUsd, inputTokensUpperBound, neverFits, worstCaseUsd } from "./admission.js";
import type { EscalationStore, StoredCall } from "./escalation-store.js";
import {
  callFrontier,
  classify,
  EDIT_TOOL_BYTES,
  type ClassifiedError,
  type FrontierRequest,
  type FrontierResult,
} from "./frontier-client.js";
import { gateDecision } from "./gate.js";
import { RateLimits } from "./token-bucket.js";

/** How the gateway reaches the key: resolved at each call, held only while the call runs. */
export interface KeySource {
  withSecret<T>(ref: string, fn: (value: string) => Promise<T>): Promise<T>;
}

export interface GatewayDeps {
  state: FarmState;
  config: GatewayConfig;
  gate: GatePolicy;
  keys: KeySource;
  store: EscalationStore;
  log: Logger;
  /** masks secret values in any text the gateway writes (log lines, journaled messages) */
  redact?: (text: string) => string;
  /** checks the worker holds the lease it escalates on (throws otherwise) */
  assertLease(nodeId: string, ref: { taskId: string; unitId: string; attempt: number; leaseId: string }): void;
  /** the call itself; tests may wrap it, production uses the SDK */
  call?: (r: FrontierRequest, usage: { inputTokens: number; outputTokens: number }) => Promise<FrontierResult>;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

type Waiter = { promise: Promise<EscalationAnswer>; resolve: (a: EscalationAnswer) => void; reject: (e: Error) => void };

/**
 * The only part of the farm that talks to the frontier API. A worker's request passes the gate
 * (journaled either way), waits in a durable priority queue until every budget and rate limit has
 * room for its worst case (reserved, journaled, then fired), and is settled to its real usage. The
 * provider's errors are handled by class; a spend cap pauses all escalations until a person resumes.
 */
export class Gateway {
  private readonly fleet: RateLimits;
  private readonly perWorker = new Map<string, RateLimits>();
  private readonly waiters = new Map<string, Waiter>();
  private readonly firing = new Set<string>();
  private pumpTimer: NodeJS.Timeout | undefined;
  private pumpAt = 0;
  private pumping = false;
  /** a pass was asked for while one ran: run another after it */
  private pumpAgain = false;
  private stopped = false;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly call: NonNullable<GatewayDeps["call"]>;

  constructor(private readonly d: GatewayDeps) {
    this.now = d.now ?? Date.now;
    this.sleep = d.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.call = d.call ?? callFrontier;
    this.fleet = new RateLimits(d.config.limits.fleet, this.now);
  }

  get configured(): boolean {
    return this.d.config.apiKey !== undefined;
  }

  private get ledger() {
    return this.d.state.projection.ledger;
  }

  private limitsOf(worker: string): RateLimits {
    let l = this.perWorker.get(worker);
    if (!l) this.perWorker.set(worker, (l = new RateLimits(this.d.config.limits.perWorker, this.now)));
    return l;
  }

  /**
   * At start: calls that were admitted when the farm stopped may have been fired and charged; they
   * are settled (at their real usage when the answer reached the disk, else at their reservation)
   * and never fired again. The last minute's admissions count
   * against the buckets again. Then the queue moves.
   */
  async start(): Promise<void> {
    const inFlight = this.ledger.inFlight();
    if (inFlight.length) {
      // An answer saved before the crash was charged its real usage; the rest at their reservation.
      const answers = await Promise.all(inFlight.map((x) => this.d.store.answer(x.requestId)));
      await this.d.state.commit(
        inFlight.map((x, i) => {
          const a = answers[i];
          return a
            ? {
                type: "escalation_settled" as const,
                data: {
                  requestId: x.requestId,
                  inputTokens: a.usage.inputTokens,
                  outputTokens: a.usage.outputTokens,
                  costUsd: Math.min(a.costUsd, x.reservedUsd),
                  outcome: "answered" as const,
                },
              }
            : {
                type: "escalation_settled" as const,
                data: {
                  requestId: x.requestId,
                  inputTokens: x.inputTokensMax,
                  outputTokens: x.maxTokens,
                  costUsd: x.reservedUsd,
                  outcome: "unknown" as const,
                  message: "the farm restarted during the call; charged at its reservation, not fired again",
                },
              };
        }),
        "farm",
      );
    }
    const minuteAgo = this.now() - 60_000;
    for (const x of this.ledger.entries.values()) {
      if ((x.state === "settled" || x.state === "failed") && x.queuedAt >= minuteAgo && x.reservedUsd > 0) {
        this.limitsOf(x.worker).take(x.inputTokensMax, x.maxTokens);
        this.fleet.take(x.inputTokensMax, x.maxTokens);
      }
    }
    this.schedulePump(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pumpTimer);
    for (const w of this.waiters.values()) w.reject(new FarmError("unavailable", "the farm is stopping; ask again when it is back"));
    this.waiters.clear();
  }

  /** The queue as the editor shows it: position, reservation, why it waits. */
  queue(): EscalationView[] {
    return this.ledger.queue().map((x, i) => ({ ...x, position: i + 1, reason: x.reason ?? this.ledger.paused }));
  }

  async resume(actor: string): Promise<void> {
    if (!this.ledger.paused) throw new FarmError("conflict", "escalations are not paused");
    await this.d.state.commit([{ type: "escalations_resumed", data: { by: actor } }], actor);
    this.schedulePump(0);
  }

  /** A worker's escalation: answered when admitted and called, or refused with the reason. */
  async request(call: EscalationCall): Promise<EscalationAnswer> {
    this.d.assertLease(call.nodeId, call);
    const known = this.ledger.entries.get(call.requestId);
    if (known) return this.rejoin(call, known.state, known.reason);
    const u = this.d.state.projection.units.get(unitKey(call.taskId, call.unitId));
    if (!u) throw new FarmError("not_found", `unit ${call.taskId}/${call.unitId} not found`);
    const worker = `worker:${call.nodeId}`;
    const gate = gateDecision(this.d.gate, u, call.signals);
    const signals = { ...gate.signals };
    if (!gate.escalate) {
      await this.d.state.commit(
        [
          {
            type: "escalation_denied",
            data: {
              requestId: call.requestId,
              taskId: call.taskId,
              unitId: call.unitId,
              attempt: call.attempt,
              worker,
              reason: gate.reason,
              signals,
            },
          },
        ],
        worker,
      );
      throw new FarmError("forbidden", `local only: ${gate.reason}`);
    }
    if (!this.configured)
      throw new FarmError("conflict", "no frontier model is configured on this farm (gateway.apiKey in .optimus/config.yaml)");
    const maxTokens = Math.min(call.maxTokens, this.d.config.maxTokensCap);
    const inputTokensMax = inputTokensUpperBound(call.system, call.messages, call.editTool ? EDIT_TOOL_BYTES : 0);
    const reservedUsd = worstCaseUsd(this.d.config.prices, inputTokensMax, maxTokens);
    const task = this.d.state.projection.tasks.get(call.taskId);
    const priority = (task?.priority ?? 0) * 1000 + u.spec.priority;
    const never = neverFits(
      this.d.config,
      { taskId: call.taskId, worker, reservedUsd, inputTokensMax, maxTokens },
      this.limitsOf(worker),
      this.fleet,
      this.now(),
    );
    if (never) {
      await this.d.state.commit(
        [
          {
            type: "escalation_denied",
            data: {
              requestId: call.requestId,
              taskId: call.taskId,
              unitId: call.unitId,
              attempt: call.attempt,
              worker,
              reason: `can never be admitted: ${never}`,
              signals,
            },
          },
        ],
        worker,
      );
      throw new FarmError("invalid", `this escalation can never be admitted: ${never}; ask for fewer max tokens or raise the limit`);
    }
    // The body is on disk before the journal says the call is queued, so a restart can still fire it.
    await this.d.store.save({
      requestId: call.requestId,
      system: call.system,
      messages: call.messages,
      maxTokens,
      editTool: call.editTool,
    });
    const waiter = this.waiter(call.requestId);
    await this.d.state.commit(
      [
        {
          type: "escalation_queued",
          data: {
            requestId: call.requestId,
            taskId: call.taskId,
            unitId: call.unitId,
            attempt: call.attempt,
            worker,
            priority,
            model: this.d.config.model,
            maxTokens,
            inputTokensMax,
            reservedUsd,
            gate: gate.reason,
            signals,
          },
        },
      ],
      worker,
    );
    this.schedulePump(0);
    return waiter.promise;
  }

  /** The same request id again (a worker whose answer was lost in a reconnect): never a second call. */
  private async rejoin(call: EscalationCall, state: string, reason: string | undefined): Promise<EscalationAnswer> {
    if (state === "denied") throw new FarmError("forbidden", `local only: ${reason ?? "the gate kept this unit local"}`);
    if (state === "queued" || state === "admitted") return this.waiter(call.requestId).promise;
    const answer = await this.d.store.answer(call.requestId);
    if (answer) return answer;
    if (state === "failed") throw new FarmError("conflict", `this escalation failed: ${reason ?? "unknown error"}`);
    throw new FarmError(
      "conflict",
      "this escalation's answer was lost when the farm restarted (it was charged); ask again with a new request id",
    );
  }

  private waiter(id: string): Waiter {
    let w = this.waiters.get(id);
    if (!w) {
      let resolve!: (a: EscalationAnswer) => void, reject!: (e: Error) => void;
      const promise = new Promise<EscalationAnswer>((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => undefined);
      w = { promise, resolve, reject };
      this.waiters.set(id, w);
    }
    return w;
  }

  private settleWaiter(id: string, answer: EscalationAnswer | Error): void {
    const w = this.waiters.get(id);
    if (!w) return;
    this.waiters.delete(id);
    if (answer instanceof Error) w.reject(answer);
    else w.resolve(answer);
  }

  /** Runs a pass after `ms`, or sooner if one is already due sooner. */
  private schedulePump(ms: number): void {
    if (this.stopped) return;
    const delay = Math.max(0, Math.min(ms, 60_000));
    const at = Date.now() + delay;
    if (this.pumpTimer && at >= this.pumpAt) return;
    clearTimeout(this.pumpTimer);
    this.pumpAt = at;
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = undefined;
      void this.pump();
    }, delay);
  }

  /**
   * Admits from the head of the queue, in priority order, while everything fits. Each admission is
   * staged before the next check (so the ledger already holds its reservation) and durable before
   * its call fires. A head blocked by a shared ceiling holds the queue: nothing jumps ahead of it;
   * one blocked only by its own task's budget or its worker's bucket is passed over.
   */
  private async pump(): Promise<void> {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.pumpAgain = false;
    try {
      // One ordering per pass; a request that arrives meanwhile schedules the next pass.
      for (const head of this.ledger.queue()) {
        if (this.firing.has(head.requestId) || head.state !== "queued") continue;
        const verdict = admit(
          this.d.config,
          this.ledger,
          {
            taskId: head.taskId,
            worker: head.worker,
            reservedUsd: head.reservedUsd,
            inputTokensMax: head.inputTokensMax,
            maxTokens: head.maxTokens,
          },
          this.limitsOf(head.worker),
          this.fleet,
          this.now(),
        );
        if (!verdict.ok) {
          head.reason = verdict.reason;
          if (verdict.retryInMs !== undefined) this.schedulePump(verdict.retryInMs);
          // A shared ceiling holds the queue (nothing jumps ahead); a call's own task budget or
          // worker's bucket holds only that call.
          if (verdict.shared) return;
          continue;
        }
        const body = await this.d.store.load(head.requestId);
        if (!body) {
          // Its body never reached the disk (a crash between the two): it cannot be fired.
          await this.d.state.commit(
            [
              {
                type: "escalation_failed",
                data: { requestId: head.requestId, errorClass: "lost", message: "the request's body was not saved; the worker asks again" },
              },
            ],
            "farm",
          );
          continue;
        }
        this.limitsOf(head.worker).take(head.inputTokensMax, head.maxTokens);
        this.fleet.take(head.inputTokensMax, head.maxTokens);
        this.firing.add(head.requestId);
        const admitted = this.d.state.commit(
          [{ type: "escalation_admitted", data: { requestId: head.requestId, reservedUsd: head.reservedUsd } }],
          "farm",
        );
        void admitted.then(() => this.fire(head, body)).catch((err) => this.d.log.error({ err }, "escalation admission failed"));
      }
    } finally {
      this.pumping = false;
      if (this.pumpAgain) this.schedulePump(0);
    }
  }

  /** Calls the provider for an admitted escalation, retrying by error class, and settles it. */
  private async fire(x: EscalationView, body: StoredCall): Promise<void> {
    const r = this.d.config.retry;
    const usage = { inputTokens: 0, outputTokens: 0 };
    let last: ClassifiedError | undefined;
    try {
      for (let attempt = 1; attempt <= r.maxAttempts && !this.stopped; attempt++) {
        try {
          const res = await this.d.keys.withSecret(this.d.config.apiKey!, (apiKey) =>
            this.call(
              {
                apiKey,
                baseUrl: this.d.config.baseUrl,
                model: this.d.config.model,
                system: body.system,
                messages: body.messages,
                maxTokens: body.maxTokens,
                editTool: body.editTool,
                timeoutMs: this.d.config.callTimeoutMs,
                requestId: x.requestId,
              },
              usage,
            ),
          );
          const cost = costUsd(this.d.config.prices, res.usage.inputTokens, res.usage.outputTokens);
          const answer: EscalationAnswer = {
            requestId: x.requestId,
            text: res.text,
            edits: res.edits,
            stopReason: res.stopReason,
            usage: res.usage,
            costUsd: cost,
            model: res.model,
          };
          await this.d.store.saveAnswer(answer);
          await this.d.state.commit(
            [
              {
                type: "escalation_settled",
                data: {
                  requestId: x.requestId,
                  inputTokens: res.usage.inputTokens,
                  outputTokens: res.usage.outputTokens,
                  costUsd: Math.min(cost, x.reservedUsd),
                  outcome: "answered",
                },
              },
            ],
            "farm",
          );
          this.settleWaiter(x.requestId, answer);
          return;
        } catch (err) {
          last =
            err instanceof SecretError
              ? { errorClass: "secret", message: err.message, mayHaveCharged: false }
              : err instanceof FarmError
                ? { errorClass: "refused", message: err.message, mayHaveCharged: false }
                : classify(err, usage.inputTokens > 0);
          last.message = this.d.redact ? this.d.redact(last.message) : last.message;
          this.d.log.warn({ requestId: x.requestId, errorClass: last.errorClass, attempt }, `frontier call failed: ${last.message}`);
          if (last.errorClass === "spend_cap") {
            await this.d.state.commit(
              [{ type: "escalations_paused", data: { reason: `frontier spend cap reached: ${last.message}` } }],
              "farm",
            );
            break;
          }
          if (last.errorClass === "rate_limited") {
            // Counts against the bucket: believe the provider's remaining counts, then wait (capped).
            if (last.remaining?.requests !== undefined) this.fleet.requests.clampTo(last.remaining.requests);
            if (last.remaining?.inputTokens !== undefined) this.fleet.input.clampTo(last.remaining.inputTokens);
            if (last.remaining?.outputTokens !== undefined) this.fleet.output.clampTo(last.remaining.outputTokens);
            await this.sleep(Math.min(last.retryAfterMs ?? r.overloadBaseMs, r.maxRetryAfterMs));
            continue;
          }
          if (last.errorClass === "overloaded" || last.errorClass === "network" || last.errorClass === "server") {
            await this.sleep(backoffMs(attempt, r.overloadBaseMs, r.maxRetryAfterMs));
            continue;
          }
          break; // refused, mid-stream, aborted: not retried
        }
      }
      // Ended without an answer. A call that may have generated tokens is charged what it used.
      const charged = last?.mayHaveCharged ? costUsd(this.d.config.prices, usage.inputTokens || x.inputTokensMax, usage.outputTokens) : 0;
      const message = last ? `${last.errorClass}: ${last.message}` : "the gateway stopped";
      await this.d.state.commit(
        [
          {
            type: "escalation_settled",
            data: {
              requestId: x.requestId,
              inputTokens: usage.inputTokens,
              outputTokens: usage.outputTokens,
              costUsd: Math.min(charged, x.reservedUsd),
              outcome: "failed",
              errorClass: last?.errorClass,
              message: message.slice(0, 500),
            },
          },
        ],
        "farm",
      );
      // A final answer (409), so the worker does not ask again with the same id.
      this.settleWaiter(
        x.requestId,
        new FarmError(
          "conflict",
          last?.errorClass === "spend_cap"
            ? `escalations are paused: the frontier spend cap is reached (${last.message})`
            : `the frontier call failed: ${message}`,
        ),
      );
    } finally {
      this.firing.delete(x.requestId);
      await this.d.store.remove(x.requestId).catch(() => undefined);
      this.schedulePump(0);
    }
  }
}
