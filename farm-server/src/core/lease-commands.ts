import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  backoffMs,
  effectiveLeaseTtl,
  unitKey,
  type EventBody,
  type RetryDecision,
  type ServerConfig,
  type UnitProgress,
  type UnitResult,
  type WorkerRegistration,
} from "@optimus/shared";
import { FarmError, notFound } from "../errors/farm-error.js";
import type { FarmState } from "./farm-state.js";
import type { UnitRecord } from "../store/projection.js";

/**
 * A worker's claim on a unit. The lease id is the fencing token: it names the attempt and carries a
 * random part, so even an attempt number reused after the journal was rebuilt from files cannot
 * make a zombie's report look current.
 */
// The lease is a wire contract (shared/src/protocol.ts): the farm builds it, the worker parses it.
import type { Lease, LeaseRef, LeaseWorkContext } from "@optimus/shared";
export type { Lease, LeaseRef };

/**
 * What happens to an accepted, successful submission. The default completes the unit; the PR
 * loop replaces it with evaluate → merge or hold. `accept` events are committed in the same batch
 * as the submission (never half of it); `resume` picks up a unit found `submitted` at start-up.
 */
export interface SubmissionHandler {
  /** refuses a result before anything is recorded (throws a FarmError the worker sees) */
  validate?(u: UnitRecord, result: UnitResult): Promise<void>;
  accept(u: UnitRecord, result: UnitResult): EventBody[];
  resume(u: UnitRecord): EventBody[];
  /** what the worker needs beyond the spec (base branch, feedback, the change to review) */
  contextFor?(u: UnitRecord): LeaseWorkContext | undefined;
}
const complete = (u: UnitRecord): EventBody[] => [
  { type: "unit_completed", data: { taskId: u.taskId, unitId: u.unitId, attempt: u.attempt } },
];
export const completeOnSubmit: SubmissionHandler = { accept: complete, resume: complete };

export interface LiveProgress extends UnitProgress {
  attempt: number;
  at: number;
}

/**
 * The worker side of the unit lifecycle: leases, heartbeats, progress and results. The lease id
 * (`<task>/<unit>#<attempt>.<nonce><n>`) is the fencing token: a report is accepted only from the
 * worker that holds that very lease.
 */
export class LeaseCommands {
  readonly ttl: number;
  /** live progress per unit key; ephemeral by design (not journaled) */
  readonly progress = new Map<string, LiveProgress>();
  /** tells editors' view streams which unit's live progress moved (key = unit key) */
  readonly progressEvents = new EventEmitter<{ progress: [string] }>();
  submissionHandler: SubmissionHandler = completeOnSubmit;
  /** random per farm start, so lease ids never repeat, even across a journal rebuilt from files */
  private readonly leaseNonce = randomBytes(4).toString("hex");
  private leaseCounter = 0;

  constructor(
    private readonly state: FarmState,
    private readonly config: ServerConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.ttl = effectiveLeaseTtl(config);
  }

  private get p() {
    return this.state.projection;
  }

  async register(reg: WorkerRegistration, tokenId: string, actor: string): Promise<void> {
    const prev = this.p.workers.get(reg.nodeId);
    if (prev?.tokenId && prev.tokenId !== tokenId && !this.p.revokedTokens.has(prev.tokenId)) {
      throw new FarmError("forbidden", `node id '${reg.nodeId}' is registered with another worker token; revoke that token first`);
    }
    const same =
      prev &&
      prev.tokenId === tokenId &&
      prev.role === reg.role &&
      prev.maxConcurrentTasks === reg.maxConcurrentTasks &&
      JSON.stringify(prev.model) === JSON.stringify(reg.model) &&
      prev.version === reg.version;
    if (same) return; // re-registration after a reconnect changes nothing: keep the journal quiet
    await this.state.commit([{ type: "worker_registered", data: { ...reg, tokenId } }], actor);
  }

  /** The registered worker behind a call, checked against the caller's token. */
  workerFor(nodeId: string, tokenId: string) {
    const w = this.p.workers.get(nodeId);
    if (!w) throw new FarmError("forbidden", `worker '${nodeId}' is not registered; call worker.register first`);
    if (w.tokenId !== tokenId) throw new FarmError("forbidden", `worker '${nodeId}' belongs to another token`);
    return w;
  }

  /** Stages a lease of a ready unit to a worker; durable when the returned promise resolves. */
  lease(u: UnitRecord, nodeId: string): { lease: Lease; durable: Promise<unknown> } {
    const attempt = u.attempt + 1;
    const leaseId = `${unitKey(u.taskId, u.unitId)}#${attempt}.${this.leaseNonce}${(this.leaseCounter++).toString(36)}`;
    const expiresAt = this.now() + this.ttl;
    const durable = this.state.commit(
      [{ type: "unit_leased", data: { taskId: u.taskId, unitId: u.unitId, attempt, worker: nodeId, leaseId, expiresAt } }],
      `worker:${nodeId}`,
    );
    return { lease: this.toLease(u), durable };
  }

  /** the egress proxy's port, handed to workers in each lease when the farm offers one */
  egressPort: number | undefined;

  toLease(u: UnitRecord): Lease {
    const base = this.submissionHandler.contextFor?.(u);
    const context: LeaseWorkContext | undefined = this.egressPort !== undefined ? { ...base, egress: { port: this.egressPort } } : base;
    return {
      taskId: u.taskId,
      unitId: u.unitId,
      attempt: u.attempt,
      leaseId: u.leaseId!,
      expiresAt: u.leaseExpiresAt!,
      spec: u.spec,
      ...(context ? { context } : {}),
    };
  }

  /** True when `nodeId` holds exactly this lease. */
  private holds(u: UnitRecord, nodeId: string, ref: LeaseRef): boolean {
    return u.state === "leased" && u.worker === nodeId && u.leaseId === ref.leaseId;
  }

  /** Extends the worker's leases; returns the ones it no longer holds so it can stop working on them. */
  heartbeat(nodeId: string, leases: LeaseRef[]): { lost: Array<LeaseRef & { reason: string }>; leaseTtlMs: number } {
    const lost: Array<LeaseRef & { reason: string }> = [];
    const expiresAt = this.now() + this.ttl;
    for (const l of leases) {
      const u = this.p.units.get(unitKey(l.taskId, l.unitId));
      if (u && this.holds(u, nodeId, l)) u.leaseExpiresAt = Math.max(u.leaseExpiresAt ?? 0, expiresAt);
      else lost.push({ ...l, reason: u ? this.whyNotHeld(u, nodeId, l) : "unit does not exist" });
    }
    return { lost, leaseTtlMs: this.ttl };
  }

  /** Throws unless `nodeId` holds this lease now (the gateway's check before a frontier call). */
  assertHolds(nodeId: string, ref: LeaseRef): void {
    const u = this.unitOrThrow(ref);
    if (!this.holds(u, nodeId, ref)) throw new FarmError("lease_lost", this.leaseLostMessage(u, nodeId, ref));
  }

  reportProgress(nodeId: string, ref: LeaseRef, progress: UnitProgress): void {
    const u = this.unitOrThrow(ref);
    if (!this.holds(u, nodeId, ref)) throw new FarmError("lease_lost", this.leaseLostMessage(u, nodeId, ref));
    const key = unitKey(ref.taskId, ref.unitId);
    this.progress.set(key, { ...progress, attempt: ref.attempt, at: this.now() });
    this.progressEvents.emit("progress", key);
  }

  /** `tokenId`: the caller's worker token, journaled with the submission as the change's author */
  async submit(
    nodeId: string,
    ref: LeaseRef,
    result: UnitResult,
    tokenId?: string,
  ): Promise<{ accepted: true; duplicate: boolean; state: string }> {
    const u = this.unitOrThrow(ref);
    // The same worker repeating a submission whose answer it never got (farm restarted): say yes again.
    if (u.acceptedLeaseId === ref.leaseId && u.acceptedWorker === nodeId && result.outcome === "succeeded") {
      return { accepted: true, duplicate: true, state: u.state };
    }
    if (!this.holds(u, nodeId, ref)) {
      const reason = this.whyNotHeld(u, nodeId, ref);
      await this.state.commit([{ type: "report_rejected", data: { ...ref, worker: nodeId, kind: "submit", reason } }], `worker:${nodeId}`);
      throw new FarmError("lease_lost", this.leaseLostMessage(u, nodeId, ref));
    }
    if (result.outcome === "succeeded" && this.submissionHandler.validate) {
      try {
        await this.submissionHandler.validate(u, result);
      } catch (err) {
        const reason = (err as Error).message;
        await this.state.commit(
          [{ type: "report_rejected", data: { ...ref, worker: nodeId, kind: "submit", reason: reason.slice(0, 1_000) } }],
          `worker:${nodeId}`,
        );
        throw err;
      }
      // Checking took a while: the lease may have expired meanwhile.
      if (!this.holds(u, nodeId, ref)) throw new FarmError("lease_lost", this.leaseLostMessage(u, nodeId, ref));
    }
    this.progress.delete(unitKey(u.taskId, u.unitId));
    const submitted: EventBody = {
      type: "unit_submitted",
      data: {
        taskId: ref.taskId,
        unitId: ref.unitId,
        attempt: ref.attempt,
        leaseId: ref.leaseId,
        worker: nodeId,
        ...(tokenId ? { tokenId } : {}),
        outcome: result.outcome,
        summary: result.summary.slice(0, 2_000),
        ...(result.evidence ? { evidence: result.evidence.slice(-4_000) } : {}),
        ...(result.signals ? { signals: result.signals } : {}),
      },
    };
    if (result.outcome === "succeeded") {
      // One batch: a crash can never leave the unit submitted with nobody to finish it.
      await this.state.commit([submitted, ...this.submissionHandler.accept(u, result)], `worker:${nodeId}`);
    } else {
      const failed: EventBody = {
        type: "unit_failed",
        data: {
          taskId: ref.taskId,
          unitId: ref.unitId,
          attempt: ref.attempt,
          reason: result.summary.slice(0, 500) || "worker reported failure",
          ...this.retryDecision(u, true),
        },
      };
      await this.state.commit([submitted, failed], `worker:${nodeId}`);
    }
    return { accepted: true, duplicate: false, state: u.state };
  }

  /** Ends every lease whose heartbeat is overdue; the unit is offered again at once (the worker failed, not the unit). */
  /** when the expiry scan last ran: a long gap means the farm itself was not running (paused, stalled) */
  private lastScanAt = 0;

  async expireLeases(): Promise<number> {
    const now = this.now();
    const gap = this.lastScanAt ? now - this.lastScanAt : 0;
    this.lastScanAt = now;
    // The farm was stopped or stalled for half a lease or more (scans run every quarter of one):
    // the workers' heartbeats of that time wait unread in its sockets. Judged now, healthy workers
    // would lose their leases in the very millisecond the farm resumes; they get a lease's time instead.
    if (gap > this.ttl / 2) {
      this.graceLeases();
      return 0;
    }
    const bodies: EventBody[] = [];
    for (const u of this.p.leasedUnits()) {
      if ((u.leaseExpiresAt ?? 0) > now) continue;
      bodies.push({
        type: "lease_expired",
        data: { taskId: u.taskId, unitId: u.unitId, attempt: u.attempt, worker: u.worker!, ...this.retryDecision(u, false) },
      });
    }
    if (bodies.length > 0) await this.state.commit(bodies, "farm");
    return bodies.length;
  }

  /**
   * A revoked worker token's leases end at once, journaled like expired leases (cause
   * `token_revoked`): its units go back to be leased again, and whatever it still sends is refused.
   */
  async endLeasesOfToken(tokenId: string): Promise<number> {
    const bodies: EventBody[] = [];
    for (const w of this.p.workers.values()) {
      if (w.tokenId !== tokenId) continue;
      for (const u of this.p.leasesOf(w.nodeId)) {
        this.progress.delete(unitKey(u.taskId, u.unitId));
        bodies.push({
          type: "lease_expired",
          data: {
            taskId: u.taskId,
            unitId: u.unitId,
            attempt: u.attempt,
            worker: w.nodeId,
            cause: "token_revoked",
            ...this.retryDecision(u, false),
          },
        });
      }
    }
    if (bodies.length > 0) await this.state.commit(bodies, "farm");
    return bodies.length;
  }

  /** At start-up: hands every unit left `submitted` back to the submission handler. */
  async resumeSubmitted(): Promise<number> {
    const bodies: EventBody[] = [];
    for (const u of this.p.units.values()) if (u.state === "submitted") bodies.push(...this.submissionHandler.resume(u));
    if (bodies.length > 0) await this.state.commit(bodies, "farm");
    return bodies.length;
  }

  /**
   * After a restart the journal's lease expiry times are stale (heartbeats are not journaled), so
   * every lease gets a full TTL for its worker to reconnect and carry on.
   */
  graceLeases(atLeastMs = 0): void {
    const until = this.now() + Math.max(this.ttl, atLeastMs);
    for (const u of this.p.leasedUnits()) u.leaseExpiresAt = Math.max(u.leaseExpiresAt ?? 0, until);
  }

  retryDecision(u: UnitRecord, backoff: boolean): RetryDecision {
    const failures = u.failures + 1;
    const max = u.spec.maxAttempts ?? this.config.maxAttempts;
    if (failures >= max) return { next: "dead" };
    const wait = backoff ? backoffMs(failures, this.config.retryBackoff.baseMs, this.config.retryBackoff.maxMs) : 0;
    return { next: "retry", notBefore: this.now() + wait };
  }

  private unitOrThrow(ref: LeaseRef): UnitRecord {
    const u = this.p.units.get(unitKey(ref.taskId, ref.unitId));
    if (!u) throw notFound(`unit '${ref.unitId}' of task '${ref.taskId}'`);
    return u;
  }

  private whyNotHeld(u: UnitRecord, nodeId: string, ref: LeaseRef): string {
    if (u.state === "leased" && u.leaseId !== ref.leaseId)
      return `that lease expired; the unit is now attempt ${u.attempt}, leased to ${u.worker}`;
    if (u.state === "leased" && u.worker !== nodeId) return `the unit is leased to ${u.worker}`;
    if (u.attempt > ref.attempt) return `that lease expired; the unit is now ${u.state} at attempt ${u.attempt}`;
    return `the unit is ${u.state}${u.reason ? ` (${u.reason})` : ""}`;
  }

  private leaseLostMessage(u: UnitRecord, nodeId: string, ref: LeaseRef): string {
    return `lease lost: ${nodeId} no longer holds unit ${u.taskId}/${u.unitId} attempt ${ref.attempt}: ${this.whyNotHeld(u, nodeId, ref)}`;
  }
}
