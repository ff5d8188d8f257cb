import { randomBytes } from "node:crypto";
import type { EscalationAnswer, EscalationCallInput, UnitProgress, UnitResultInput, WorkerRegistrationInput } from "@optimus/shared";
import type { Lease, LeaseRef } from "../core/lease-commands.js";
import { createFarmClient, errorCode, isFinalError, type FarmClient } from "../client/farm-client.js";

/** What a worker asks the frontier through the farm's gateway (the farm fills in the lease). */
export type EscalationAsk = Omit<EscalationCallInput, "requestId" | "taskId" | "unitId" | "attempt" | "leaseId" | "nodeId">;

export interface LeaseContext {
  /** aborted when the farm says the lease is gone (expired, re-leased, cancelled) or the agent stops */
  signal: AbortSignal;
  progress(p: UnitProgress): void;
  /**
   * One frontier completion through the farm's gateway. Waits while the escalation is queued; a
   * dropped connection asks again with the same request id, so the farm never calls twice. Rejects
   * with the farm's answer when the gate keeps the unit local or the call fails.
   */
  escalate(ask: EscalationAsk): Promise<EscalationAnswer>;
}

export type ExecuteUnit = (lease: Lease, ctx: LeaseContext) => Promise<UnitResultInput>;

export interface WorkerAgentOptions {
  farmUrl: string;
  token: string;
  registration: WorkerRegistrationInput;
  execute: ExecuteUnit;
  /** what happened to each lease, for logs and tests */
  onOutcome?: (lease: Lease, outcome: { accepted: boolean; duplicate?: boolean; error?: string }) => void;
  log?: (msg: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A worker's connection to the farm: registers, keeps its lease stream open across reconnects,
 * heartbeats what it holds, runs each lease once and delivers the result until the farm answers.
 */
export class WorkerAgent {
  private readonly client: FarmClient;
  private readonly closeClient: () => void;
  private readonly active = new Map<string, { lease: Lease; abort: AbortController }>();
  private readonly seen = new Set<string>();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private subscription: { unsubscribe(): void } | null = null;
  private stopped = false;
  private heartbeatMs = 5_000;
  readonly nodeId: string;

  constructor(private readonly opts: WorkerAgentOptions) {
    this.nodeId = opts.registration.nodeId;
    const c = createFarmClient({ url: opts.farmUrl, token: opts.token, transport: "ws", maxRetryDelayMs: 500 });
    this.client = c.client;
    this.closeClient = c.close;
  }

  get activeLeases(): number {
    return this.active.size;
  }

  async start(): Promise<void> {
    await this.register();
    this.subscribe();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.subscription?.unsubscribe();
    for (const a of this.active.values()) a.abort.abort();
    this.closeClient();
  }

  private async register(): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      try {
        const r = await this.client.worker.register.mutate(this.opts.registration);
        if (r.heartbeatIntervalMs !== this.heartbeatMs || !this.heartbeatTimer) {
          this.heartbeatMs = r.heartbeatIntervalMs;
          if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
          this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
        }
        return;
      } catch (err) {
        if (isFinalError(err)) throw new Error(`the farm refused to register ${this.nodeId}: ${(err as Error).message}`);
        await sleep(Math.min(2_000, 100 * 2 ** i));
      }
    }
  }

  private subscribe(): void {
    this.subscription = this.client.worker.leases.subscribe(
      { nodeId: this.nodeId },
      {
        onData: (env) => this.onLease(env.data as Lease),
        onError: (err) => {
          // The stream ended with an answer (e.g. the farm lost its journal and no longer knows us):
          // register again and reopen it.
          if (this.stopped) return;
          this.opts.log?.(`lease stream of ${this.nodeId} ended: ${err.message}`);
          void sleep(200).then(() => this.register()).then(() => !this.stopped && this.subscribe(), () => undefined);
        },
      },
    );
  }

  private onLease(lease: Lease): void {
    if (this.seen.has(lease.leaseId)) return; // handed back again after a reconnect: already ours
    this.seen.add(lease.leaseId);
    if (this.seen.size > 10_000) this.seen.delete(this.seen.values().next().value!); // oldest first
    const abort = new AbortController();
    this.active.set(lease.leaseId, { lease, abort });
    const ref: LeaseRef = { taskId: lease.taskId, unitId: lease.unitId, attempt: lease.attempt, leaseId: lease.leaseId };
    const ctx: LeaseContext = {
      signal: abort.signal,
      progress: (p) => void this.client.worker.progress.mutate({ nodeId: this.nodeId, lease: ref, progress: p }).catch(() => undefined),
      escalate: (ask) => this.escalate(ref, ask, abort.signal),
    };
    void (async () => {
      let result: UnitResultInput;
      try {
        result = await this.opts.execute(lease, ctx);
      } catch (err) {
        result = { outcome: "failed", summary: `worker error: ${(err as Error).message}` };
      }
      if (abort.signal.aborted) {
        this.active.delete(lease.leaseId);
        this.opts.onOutcome?.(lease, { accepted: false, error: "lease lost before the result was ready" });
        return;
      }
      await this.deliver(lease, ref, result);
      this.active.delete(lease.leaseId);
    })();
  }

  private async escalate(ref: LeaseRef, ask: EscalationAsk, signal: AbortSignal): Promise<EscalationAnswer> {
    const requestId = `esc_${randomBytes(9).toString("base64url")}`;
    for (let i = 0; ; i++) {
      if (signal.aborted || this.stopped) throw new Error("the lease ended before the escalation was answered");
      try {
        return await this.client.worker.escalate.mutate({ ...ask, ...ref, requestId, nodeId: this.nodeId });
      } catch (err) {
        if (isFinalError(err)) throw err;
        await sleep(Math.min(2_000, 100 * 2 ** i));
      }
    }
  }

  /** Sends the result until the farm answers; a restart of the farm in between is survived. */
  private async deliver(lease: Lease, ref: LeaseRef, result: UnitResultInput): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      try {
        const r = await this.client.worker.submit.mutate({ nodeId: this.nodeId, lease: ref, result });
        this.opts.onOutcome?.(lease, { accepted: true, duplicate: r.duplicate });
        return;
      } catch (err) {
        if (isFinalError(err)) {
          this.opts.onOutcome?.(lease, { accepted: false, error: `${errorCode(err)}: ${(err as Error).message}` });
          return;
        }
        await sleep(Math.min(1_000, 50 * 2 ** i));
      }
    }
  }

  private async heartbeat(): Promise<void> {
    const leases = [...this.active.values()].map(({ lease }) => ({ taskId: lease.taskId, unitId: lease.unitId, attempt: lease.attempt, leaseId: lease.leaseId }));
    try {
      const r = await this.client.worker.heartbeat.mutate({ nodeId: this.nodeId, leases });
      for (const l of r.lost) {
        const a = this.active.get(l.leaseId);
        if (a) {
          this.opts.log?.(`lease ${l.leaseId} lost: ${l.reason}`);
          a.abort.abort();
        }
      }
    } catch {
      // The farm is unreachable; leases outlive a short outage, and the next beat tries again.
    }
  }
}
