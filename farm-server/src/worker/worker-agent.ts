import { randomBytes } from "node:crypto";
import {
  parseLease,
  type EscalationAnswer,
  type EscalationCallInput,
  type Lease,
  type LeaseRef,
  type UnitProgress,
  type UnitResultInput,
  type WorkerRegistrationInput,
} from "@optimus/shared";
import { FarmEndpoints } from "../client/farm-endpoints.js";
import type { FarmTrust } from "../client/farm-trust.js";
import { createFarmClient, errorCode, isFinalError, type FarmClient } from "../client/farm-client.js";
import { FarmReachability } from "./reachability.js";

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
  /** the farm's URL, or its nodes (the agent follows the one that leads) */
  farmUrl: string | FarmEndpoints;
  /** with a URL: what an https:// farm's certificate must satisfy (endpoints carry their own) */
  trust?: FarmTrust;
  token: string;
  registration: WorkerRegistrationInput;
  execute: ExecuteUnit;
  /** what happened to each lease, for logs and tests */
  onOutcome?: (lease: Lease, outcome: { accepted: boolean; duplicate?: boolean; error?: string }) => void;
  log?: (msg: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** While a lease runs, the farm is asked at least this often whether it still holds (a cancelled unit's check stops within about this long). */
const LEASE_WATCH_MS = 1_000;

/**
 * A worker's connection to the farm: registers, keeps its lease stream open across reconnects,
 * heartbeats what it holds, runs each lease once and delivers the result until the farm answers.
 */
export class WorkerAgent {
  private readonly client: FarmClient;
  private readonly closeClient: () => void;
  private readonly active = new Map<string, { lease: Lease; abort: AbortController; done?: Promise<void> }>();
  private readonly seen = new Set<string>();
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private subscription: { unsubscribe(): void } | null = null;
  private stopped = false;
  private heartbeatMs = 5_000;
  private lastBeat = 0;
  /** says every few seconds that the farm cannot be reached while the connection is down */
  private readonly reach: FarmReachability;
  readonly nodeId: string;
  /**
   * Settles with the farm's answer when it refuses this worker's token (401: revoked, expired):
   * nothing the worker does can succeed any more, so whoever runs it stops it and says why, rather
   * than have it retry for ever.
   */
  readonly refused: Promise<Error>;
  private refuse: (err: Error) => void = () => undefined;

  constructor(private readonly opts: WorkerAgentOptions) {
    this.nodeId = opts.registration.nodeId;
    this.refused = new Promise((r) => (this.refuse = r));
    const farm = typeof opts.farmUrl === "string" ? new FarmEndpoints(opts.farmUrl, opts.trust) : opts.farmUrl;
    this.reach = new FarmReachability(farm, (m) => opts.log?.(m));
    this.reach.down(); // until the socket first opens
    const c = createFarmClient({
      url: farm,
      token: opts.token,
      transport: "ws",
      maxRetryDelayMs: 500,
      onConnectionChange: (s) => (s === "open" ? this.reach.up() : !this.stopped && this.reach.down()),
    });
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

  /**
   * Stops taking leases and ends the running ones: their signals abort (checks are killed, model
   * turns cut short), and their leases are left to expire on the farm, which hands the units out
   * again. Waits for the running units to wind down, at most `graceMs`.
   */
  async stop(graceMs = 3_000): Promise<void> {
    this.stopped = true;
    this.reach.stop();
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.subscription?.unsubscribe();
    const running = [...this.active.values()];
    for (const a of running) a.abort.abort();
    if (running.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((r) => (timer = setTimeout(r, graceMs)));
      await Promise.race([Promise.all(running.map((a) => a.done)), late]);
      clearTimeout(timer);
    }
    this.closeClient();
  }

  private async register(): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      try {
        const r = await this.client.worker.register.mutate(this.opts.registration);
        if (r.heartbeatIntervalMs !== this.heartbeatMs || !this.heartbeatTimer) {
          this.heartbeatMs = r.heartbeatIntervalMs;
          if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
          // Beats at the farm's interval; while a lease runs, at least every LEASE_WATCH_MS, so a
          // cancelled, expired or re-leased unit stops its work (and its check) at once.
          const tick = Math.min(this.heartbeatMs, LEASE_WATCH_MS);
          this.heartbeatTimer = setInterval(() => {
            if (this.active.size > 0 || Date.now() - this.lastBeat >= this.heartbeatMs - tick / 2) void this.heartbeat();
          }, tick);
        }
        return;
      } catch (err) {
        this.noteRefusal(err);
        if (isFinalError(err)) throw new Error(`the farm refused to register ${this.nodeId}: ${(err as Error).message}`, { cause: err });
        await sleep(Math.min(2_000, 100 * 2 ** i));
      }
    }
  }

  private subscribe(): void {
    this.subscription = this.client.worker.leases.subscribe(
      { nodeId: this.nodeId },
      {
        onData: (env) => this.received(env.data),
        onError: (err) => {
          // The stream ended with an answer (e.g. the farm lost its journal and no longer knows us):
          // register again and reopen it.
          if (this.stopped || this.noteRefusal(err)) return;
          this.opts.log?.(`lease stream of ${this.nodeId} ended: ${err.message}`);
          void sleep(200)
            .then(() => this.register())
            .then(
              () => !this.stopped && this.subscribe(),
              () => undefined,
            );
        },
      },
    );
  }

  /**
   * A lease as it came over the wire: checked against the contract first. One this worker cannot
   * read (the farm is another version) is not worked on: the farm hears why, and the unit goes to
   * its next attempt (maybe on another worker) instead of being worked on a guess.
   */
  private received(raw: unknown): void {
    const parsed = parseLease(raw);
    if (parsed.ok) return this.onLease(parsed.lease);
    this.opts.log?.(`${this.nodeId}: ${parsed.error}`);
    const r = raw as Partial<LeaseRef> | null;
    if (
      !r ||
      typeof r.taskId !== "string" ||
      typeof r.unitId !== "string" ||
      typeof r.attempt !== "number" ||
      typeof r.leaseId !== "string" ||
      this.seen.has(r.leaseId)
    )
      return;
    this.seen.add(r.leaseId);
    const ref: LeaseRef = { taskId: r.taskId, unitId: r.unitId, attempt: r.attempt, leaseId: r.leaseId };
    void this.client.worker.submit
      .mutate({ nodeId: this.nodeId, lease: ref, result: { outcome: "failed", summary: `worker error: ${parsed.error}` } })
      .catch(() => undefined);
  }

  private onLease(lease: Lease): void {
    if (this.seen.has(lease.leaseId)) return; // handed back again after a reconnect: already ours
    this.seen.add(lease.leaseId);
    if (this.seen.size > 10_000) this.seen.delete(this.seen.values().next().value!); // oldest first
    const abort = new AbortController();
    const entry: { lease: Lease; abort: AbortController; done?: Promise<void> } = { lease, abort };
    this.active.set(lease.leaseId, entry);
    const ref: LeaseRef = { taskId: lease.taskId, unitId: lease.unitId, attempt: lease.attempt, leaseId: lease.leaseId };
    const ctx: LeaseContext = {
      signal: abort.signal,
      progress: (p) => void this.client.worker.progress.mutate({ nodeId: this.nodeId, lease: ref, progress: p }).catch(() => undefined),
      escalate: (ask) => this.escalate(ref, ask, abort.signal),
    };
    entry.done = (async () => {
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
    })().catch(() => undefined);
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
        this.noteRefusal(err);
        if (isFinalError(err)) {
          this.opts.onOutcome?.(lease, { accepted: false, error: `${errorCode(err)}: ${(err as Error).message}` });
          return;
        }
        await sleep(Math.min(1_000, 50 * 2 ** i));
      }
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped) return;
    // Never skipped while an earlier beat is still in flight: on a loaded farm a beat can take longer
    // than the interval, and waiting for it would let the lease expire (beats are idempotent).
    this.lastBeat = Date.now();
    await this.beat();
  }

  private async beat(): Promise<void> {
    const leases = [...this.active.values()].map(({ lease }) => ({
      taskId: lease.taskId,
      unitId: lease.unitId,
      attempt: lease.attempt,
      leaseId: lease.leaseId,
    }));
    try {
      const r = await this.client.worker.heartbeat.mutate({ nodeId: this.nodeId, leases });
      for (const l of r.lost) {
        const a = this.active.get(l.leaseId);
        if (a && !a.abort.signal.aborted) {
          this.opts.log?.(`lease ${l.leaseId} lost: ${l.reason}`);
          a.abort.abort();
        }
      }
    } catch (err) {
      this.noteRefusal(err);
      // The farm answered no (the token was revoked, the node is no longer ours): nothing this worker
      // holds can be delivered, so its work stops now.
      if (isFinalError(err) && !this.stopped) {
        for (const a of this.active.values()) {
          if (a.abort.signal.aborted) continue;
          this.opts.log?.(`lease ${a.lease.leaseId} ended: the farm refused the heartbeat (${(err as Error).message})`);
          a.abort.abort();
        }
      }
      // Otherwise the farm is unreachable; leases outlive a short outage, and the next beat tries again.
    }
  }

  /** Whether the farm refused the token itself (401); if so, `refused` settles with its answer. */
  private noteRefusal(err: unknown): boolean {
    if (errorCode(err) !== "UNAUTHORIZED") return false;
    this.refuse(err as Error);
    return true;
  }
}
