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
import { FarmError, notFound } from "./errors.js";
import type { FarmState } from "./farm-state.js";
import type { UnitRecord } from "../store/projection.js";

export interface LeaseRef {
  taskId: string;
  unitId: string;
  attempt: number;
}

export interface Lease extends LeaseRef {
  leaseId: string;
  expiresAt: number;
  spec: UnitRecord["spec"];
}

/**
 * What happens to an accepted, successful submission. The default completes the unit; the PR
 * loop replaces it with evaluate → merge or hold.
 */
export type SubmissionHandler = (u: UnitRecord, result: UnitResult) => EventBody[];
export const completeOnSubmit: SubmissionHandler = (u) => [{ type: "unit_completed", data: { taskId: u.taskId, unitId: u.unitId, attempt: u.attempt } }];

export interface LiveProgress extends UnitProgress {
  attempt: number;
  at: number;
}

/**
 * The worker side of the unit lifecycle: leases, heartbeats, progress and results. The attempt
 * number is the fencing token: a report is accepted only from the worker that holds the lease of
 * that very attempt.
 */
export class LeaseCommands {
  readonly ttl: number;
  /** live progress per unit key; ephemeral by design (not journaled) */
  readonly progress = new Map<string, LiveProgress>();
  submissionHandler: SubmissionHandler = completeOnSubmit;

  constructor(private readonly state: FarmState, private readonly config: ServerConfig, private readonly now: () => number = Date.now) {
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
    const same = prev && prev.tokenId === tokenId && prev.role === reg.role && prev.maxConcurrentTasks === reg.maxConcurrentTasks &&
      JSON.stringify(prev.model) === JSON.stringify(reg.model) && prev.version === reg.version;
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
    const leaseId = `${unitKey(u.taskId, u.unitId)}#${attempt}`;
    const expiresAt = this.now() + this.ttl;
    const durable = this.state.commit(
      [{ type: "unit_leased", data: { taskId: u.taskId, unitId: u.unitId, attempt, worker: nodeId, leaseId, expiresAt } }],
      `worker:${nodeId}`,
    );
    return { lease: this.toLease(u), durable };
  }

  toLease(u: UnitRecord): Lease {
    return { taskId: u.taskId, unitId: u.unitId, attempt: u.attempt, leaseId: u.leaseId!, expiresAt: u.leaseExpiresAt!, spec: u.spec };
  }

  /** True when `nodeId` holds the lease of exactly this attempt. */
  private holds(u: UnitRecord, nodeId: string, attempt: number): boolean {
    return u.state === "leased" && u.worker === nodeId && u.attempt === attempt;
  }

  /** Extends the worker's leases; returns the ones it no longer holds so it can stop working on them. */
  heartbeat(nodeId: string, leases: LeaseRef[]): { lost: Array<LeaseRef & { reason: string }>; leaseTtlMs: number } {
    const lost: Array<LeaseRef & { reason: string }> = [];
    const expiresAt = this.now() + this.ttl;
    for (const l of leases) {
      const u = this.p.units.get(unitKey(l.taskId, l.unitId));
      if (u && this.holds(u, nodeId, l.attempt)) u.leaseExpiresAt = Math.max(u.leaseExpiresAt ?? 0, expiresAt);
      else lost.push({ ...l, reason: u ? this.whyNotHeld(u, nodeId, l.attempt) : "unit does not exist" });
    }
    return { lost, leaseTtlMs: this.ttl };
  }

  reportProgress(nodeId: string, ref: LeaseRef, progress: UnitProgress): void {
    const u = this.unitOrThrow(ref);
    if (!this.holds(u, nodeId, ref.attempt)) throw new FarmError("lease_lost", this.leaseLostMessage(u, nodeId, ref.attempt));
    this.progress.set(unitKey(ref.taskId, ref.unitId), { ...progress, attempt: ref.attempt, at: this.now() });
  }

  async submit(nodeId: string, ref: LeaseRef, result: UnitResult): Promise<{ accepted: true; duplicate: boolean; state: string }> {
    const u = this.unitOrThrow(ref);
    // The same worker repeating a submission whose answer it never got (farm restarted): say yes again.
    if (u.acceptedAttempt === ref.attempt && u.acceptedWorker === nodeId && result.outcome === "succeeded") {
      return { accepted: true, duplicate: true, state: u.state };
    }
    if (!this.holds(u, nodeId, ref.attempt)) {
      const reason = this.whyNotHeld(u, nodeId, ref.attempt);
      await this.state.commit([{ type: "report_rejected", data: { ...ref, worker: nodeId, kind: "submit", reason } }], `worker:${nodeId}`);
      throw new FarmError("lease_lost", this.leaseLostMessage(u, nodeId, ref.attempt));
    }
    this.progress.delete(unitKey(u.taskId, u.unitId));
    const submitted: EventBody = {
      type: "unit_submitted",
      data: { ...ref, worker: nodeId, outcome: result.outcome, summary: result.summary.slice(0, 2_000) },
    };
    if (result.outcome === "succeeded") {
      await this.state.commit([submitted], `worker:${nodeId}`);
      const next = this.submissionHandler(u, result);
      if (next.length > 0) await this.state.commit(next, "farm");
    } else {
      const failed: EventBody = { type: "unit_failed", data: { ...ref, reason: result.summary.slice(0, 500) || "worker reported failure", ...this.retryDecision(u, true) } };
      await this.state.commit([submitted, failed], `worker:${nodeId}`);
    }
    return { accepted: true, duplicate: false, state: u.state };
  }

  /** Ends every lease whose heartbeat is overdue; the unit is offered again at once (the worker failed, not the unit). */
  async expireLeases(): Promise<number> {
    const now = this.now();
    const bodies: EventBody[] = [];
    for (const u of this.p.leasedUnits()) {
      if ((u.leaseExpiresAt ?? 0) > now) continue;
      bodies.push({ type: "lease_expired", data: { taskId: u.taskId, unitId: u.unitId, attempt: u.attempt, worker: u.worker!, ...this.retryDecision(u, false) } });
    }
    if (bodies.length > 0) await this.state.commit(bodies, "farm");
    return bodies.length;
  }

  /**
   * After a restart the journal's lease expiry times are stale (heartbeats are not journaled), so
   * every lease gets a full TTL for its worker to reconnect and carry on.
   */
  graceLeases(): void {
    const until = this.now() + this.ttl;
    for (const u of this.p.leasedUnits()) u.leaseExpiresAt = Math.max(u.leaseExpiresAt ?? 0, until);
  }

  private retryDecision(u: UnitRecord, backoff: boolean): RetryDecision {
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

  private whyNotHeld(u: UnitRecord, nodeId: string, attempt: number): string {
    if (u.state === "leased" && u.attempt !== attempt) return `attempt ${attempt} expired; the unit is now attempt ${u.attempt}, leased to ${u.worker}`;
    if (u.state === "leased" && u.worker !== nodeId) return `the unit is leased to ${u.worker}`;
    if (u.attempt > attempt) return `attempt ${attempt} expired; the unit is now ${u.state} at attempt ${u.attempt}`;
    return `the unit is ${u.state}${u.reason ? ` (${u.reason})` : ""}`;
  }

  private leaseLostMessage(u: UnitRecord, nodeId: string, attempt: number): string {
    return `lease lost: ${nodeId} no longer holds unit ${u.taskId}/${u.unitId} attempt ${attempt}: ${this.whyNotHeld(u, nodeId, attempt)}`;
  }
}
