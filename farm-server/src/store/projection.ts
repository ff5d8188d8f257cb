import { Ledger } from "./ledger.js";
import {
  isDone,
  isTerminal,
  unitKey,
  type EventPayloads,
  type FarmEvent,
  type TaskHeader,
  type TaskView,
  type UnitSpec,
  type UnitState,
  type UnitStatusMirror,
  type UnitView,
  type WorkerRegistration,
} from "@optimus/shared";

export interface WorkerRecord extends WorkerRegistration {
  tokenId?: string;
  registeredAt: number;
}

export interface TaskRecord extends TaskHeader {
  createdAt: number;
  updatedAt: number;
  cancelled: boolean;
  units: string[]; // unit keys, in manifest order
  order: number; // creation order, for FIFO among equal priorities
  merge?: { into: string; commit?: string; heldReason?: string; conflicts?: string[] };
  pullRequest?: TaskView["pullRequest"];
  /** changes merged into the integration branch that the task's merge waits on a person's approval for (with a forge) */
  heldChanges?: { unitId: string; attempt: number; commit: string; reasons: string[] }[];
  /** people's approvals of the task's merge, each as of the head they saw */
  approvals?: { by: string; head: string; at: number; forgeEvent?: string }[];
  /** ADR drafts the planner wrote for this task (committed with its milestones) */
  adrs?: string[];
  /** why the planner's plan was not used (the task fell back to one unit) */
  planFallback?: string;
}

export interface UnitRecord extends UnitView {
  /** the attempt whose result was accepted, so a repeated submission is recognised, not redone */
  acceptedAttempt?: number;
  acceptedLeaseId?: string;
  acceptedWorker?: string;
  /**
   * Who wrote the latest accepted attempt: its node and worker token. A review of that attempt counts
   * only from another node and token (separation of duties). The token is missing in journals from
   * before it was recorded; the node's registration then says which token it was.
   */
  author?: { node: string; tokenId?: string; attempt: number };
  /** a human approved this attempt's merge (the merge itself may still be pending after a crash) */
  approvedAttempt?: number;
  /** how many times its review unit sent the change back (counts against its attempts) */
  reviewRequests?: number;
  dependents: string[];
}

/**
 * The shape of a saved projection. A snapshot of another format is not read but discarded, and the
 * journal replayed from its start (always correct, only slower). 2: the archive count; snapshots
 * before formats were numbered have none and are replayed.
 */
export const SNAPSHOT_FORMAT = 2;

/** Where a state change touched the projection, for the dispatcher and the file mirror. */
export interface Touched {
  tasks: Set<string>;
  readyUnits: Set<string>;
}

/**
 * The farm's state as a fold of the journal. Pure and deterministic: the same events give the
 * same state, which is what lets a snapshot plus the tail of the journal replace a full replay.
 */
export class Projection {
  tasks = new Map<string, TaskRecord>();
  units = new Map<string, UnitRecord>();
  workers = new Map<string, WorkerRecord>();
  revokedTokens = new Set<string>();
  /** derived index: the unit keys each worker holds a lease on (not snapshotted, rebuilt) */
  workerLeases = new Map<string, Set<string>>();
  lastSeq = 0;
  /** the commit of the origin's default branch whose task manifests were imported last */
  imported?: { ref: string; commit: string };
  /** frontier reservations and spend (the gateway's ledger) */
  ledger = new Ledger();
  /** how many finished tasks left for the archive (they are in the journal, not here) */
  archived = 0;
  private taskOrder = 0;

  apply(e: FarmEvent, touched?: Touched): void {
    this.lastSeq = e.seq;
    if (e.type.startsWith("escalation")) this.ledger.apply(e);
    const ready = (k: string) => touched?.readyUnits.add(k);
    const touch = (taskId: string) => {
      touched?.tasks.add(taskId);
      const t = this.tasks.get(taskId);
      if (t) t.updatedAt = e.ts;
    };
    switch (e.type) {
      case "task_created": {
        const d = e.data;
        this.tasks.set(d.taskId, {
          taskId: d.taskId, title: d.title, description: d.description, priority: d.priority, targetBranch: d.targetBranch,
          createdBy: d.createdBy, createdAt: e.ts, updatedAt: e.ts, cancelled: false, units: [], order: this.taskOrder++,
        });
        for (const k of this.addUnits(this.tasks.get(d.taskId)!, d.units, e.ts, d.restored)) ready(k);
        touch(d.taskId);
        break;
      }
      case "task_cancelled": {
        const t = this.tasks.get(e.data.taskId);
        if (!t) break;
        t.cancelled = true;
        for (const k of t.units) {
          const u = this.units.get(k)!;
          if (!isTerminal(u.state)) this.settle(u, "cancelled", e.ts, e.data.reason ?? "task cancelled");
        }
        touch(t.taskId);
        break;
      }
      case "unit_leased": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        this.clearLease(u);
        u.state = "leased";
        this.leaseSet(e.data.worker).add(unitKey(u.taskId, u.unitId));
        u.attempt = e.data.attempt;
        u.worker = e.data.worker;
        u.leaseId = e.data.leaseId;
        u.leaseExpiresAt = e.data.expiresAt;
        u.notBefore = undefined;
        u.reason = undefined;
        u.updatedAt = e.ts;
        touch(u.taskId);
        break;
      }
      case "lease_expired":
      case "unit_failed": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        u.failures++;
        const reason = e.type === "unit_failed" ? e.data.reason
          : e.data.cause === "token_revoked" ? `lease of ${e.data.worker} ended: its token was revoked` : `lease of ${e.data.worker} expired (no heartbeat)`;
        if (e.type === "unit_failed" && e.data.feedback) u.feedback = [...(u.feedback ?? []), e.data.feedback];
        if (e.data.next === "dead") this.settle(u, "dead", e.ts, reason);
        else {
          this.clearLease(u);
          u.state = "ready";
          u.notBefore = e.data.notBefore;
          u.reason = reason;
          u.updatedAt = e.ts;
          ready(unitKey(u.taskId, u.unitId));
        }
        touch(u.taskId);
        break;
      }
      case "unit_submitted": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        // The worker is done with it: its capacity frees at once, whatever evaluation follows.
        this.clearLease(u);
        u.state = "submitted";
        u.worker = e.data.worker;
        u.updatedAt = e.ts;
        if (e.data.outcome === "succeeded") {
          u.acceptedAttempt = e.data.attempt;
          u.acceptedLeaseId = e.data.leaseId;
          u.acceptedWorker = e.data.worker;
          u.author = { node: e.data.worker, tokenId: e.data.tokenId ?? this.workers.get(e.data.worker)?.tokenId, attempt: e.data.attempt };
        }
        touch(u.taskId);
        break;
      }
      case "unit_completed": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        this.settle(u, "completed", e.ts);
        // A codegen unit that needed no change leaves its reviewers nothing to review.
        if (u.spec.role === "codegen") {
          for (const r of this.reviewersOf(u)) {
            const ru = this.units.get(r)!;
            if (ru.state === "planned") this.settle(ru, "completed", e.ts, "nothing to review: the unit made no change");
          }
        }
        for (const k of u.dependents) if (this.promote(k)) ready(k);
        touch(u.taskId);
        break;
      }
      case "unit_retried": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        this.clearLease(u);
        u.state = "planned";
        u.failures = 0;
        u.notBefore = undefined;
        u.reason = undefined;
        u.updatedAt = e.ts;
        if (this.promote(unitKey(u.taskId, u.unitId))) ready(unitKey(u.taskId, u.unitId));
        touch(u.taskId);
        break;
      }
      case "escalation_requested": {
        const u = this.units.get(unitKey(e.data.taskId, e.data.unitId));
        if (u) u.escalation = { state: "queued", requestedBy: e.actor, at: e.ts, attempt: e.data.attempt, reason: e.data.reason };
        touch(e.data.taskId);
        break;
      }
      case "unit_cancelled": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        this.settle(u, "cancelled", e.ts, e.data.reason ?? "cancelled");
        touch(u.taskId);
        break;
      }
      case "unit_evaluating": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        u.state = "evaluating";
        u.updatedAt = e.ts;
        touch(u.taskId);
        break;
      }
      case "unit_evaluated": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        const { taskId: _t, unitId: _u, ...evaluation } = e.data;
        u.evaluation = evaluation;
        u.updatedAt = e.ts;
        // Green changes go to their review unit; a red one is followed by unit_failed in the same batch.
        if (e.data.green && this.reviewersOf(u).length > 0) {
          u.state = "reviewing";
          for (const r of this.reviewersOf(u)) if (this.promote(r)) ready(r);
        }
        touch(u.taskId);
        break;
      }
      case "unit_reviewed": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        u.review = { ...e.data.verdict, reviewUnitId: e.data.reviewUnitId, ...(e.data.selfReview ? { selfReview: true as const } : {}) };
        if (e.data.verdict.verdict === "request_changes" && !e.data.selfReview) u.reviewRequests = (u.reviewRequests ?? 0) + 1;
        u.updatedAt = e.ts;
        touch(u.taskId);
        break;
      }
      case "unit_held": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        u.state = "awaiting_approval";
        u.risk = e.data.risk;
        u.reason = `held for approval: ${e.data.risk.reasons.join("; ")}`;
        u.updatedAt = e.ts;
        touch(u.taskId);
        break;
      }
      case "unit_approved": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        u.approvedAttempt = e.data.attempt;
        touch(u.taskId);
        break;
      }
      case "unit_merged": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        u.risk = e.data.risk;
        u.mergedCommit = e.data.commit;
        u.feedback = undefined;
        this.settle(u, "merged", e.ts);
        for (const k of u.dependents) if (this.promote(k)) ready(k);
        const t = this.tasks.get(u.taskId);
        if (e.data.heldForTask && t) t.heldChanges = [...(t.heldChanges ?? []), { unitId: u.unitId, attempt: e.data.attempt, commit: e.data.commit, reasons: e.data.risk.reasons }];
        touch(u.taskId);
        break;
      }
      case "unit_rejected": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        // A person's decision, not a failure: the unit is cancelled (it may be retried), and its
        // reason says who rejected it and why, so no view reads it as "failed" or "dead".
        this.settle(u, "cancelled", e.ts, `rejected by ${e.actor}: ${e.data.reason}`);
        for (const r of this.reviewersOf(u)) {
          const ru = this.units.get(r)!;
          if (!isTerminal(ru.state)) this.settle(ru, "cancelled", e.ts, "the change it reviews was rejected");
        }
        touch(u.taskId);
        break;
      }
      case "changes_requested": {
        const u = this.unit(e.data.taskId, e.data.unitId);
        this.clearLease(u);
        u.state = "ready";
        u.feedback = [...(u.feedback ?? []), e.data.feedback];
        u.reason = "changes requested";
        u.review = undefined;
        u.updatedAt = e.ts;
        ready(unitKey(u.taskId, u.unitId));
        // Its reviewers review the next attempt afresh.
        for (const r of this.reviewersOf(u)) {
          const ru = this.units.get(r)!;
          ru.state = "planned";
          ru.reason = undefined;
          ru.acceptedLeaseId = undefined;
          ru.acceptedAttempt = undefined;
        }
        touch(u.taskId);
        break;
      }
      case "units_added": {
        const t = this.tasks.get(e.data.taskId);
        if (!t) break;
        for (const k of this.addUnits(t, e.data.units, e.ts)) {
          const u = this.units.get(k)!;
          if (e.data.feedback?.length) u.feedback = [...e.data.feedback];
          ready(k);
        }
        touch(t.taskId);
        break;
      }
      case "units_planned": {
        const t = this.tasks.get(e.data.taskId);
        if (!t) break;
        if (e.data.adr) t.adrs = [...(t.adrs ?? []), e.data.adr];
        if (e.data.fallback) t.planFallback = e.data.fallback;
        for (const k of this.addUnits(t, e.data.units, e.ts)) ready(k);
        touch(t.taskId);
        break;
      }
      case "task_merged":
      case "task_merge_held": {
        const t = this.tasks.get(e.data.taskId);
        if (!t) break;
        t.merge = e.type === "task_merged" ? { into: e.data.into, commit: e.data.commit } : { into: e.data.into, heldReason: e.data.reason, ...(e.data.conflicts?.length ? { conflicts: e.data.conflicts } : {}) };
        if (e.type === "task_merged" && t.pullRequest) t.pullRequest = { ...t.pullRequest, state: "merged" };
        touch(t.taskId);
        break;
      }
      case "task_approved": {
        const t = this.tasks.get(e.data.taskId);
        if (!t) break;
        t.approvals = [...(t.approvals ?? []), { by: e.data.by, head: e.data.head, at: e.ts, ...(e.data.forgeEvent ? { forgeEvent: e.data.forgeEvent } : {}) }];
        touch(t.taskId);
        break;
      }
      case "task_pull_request": {
        const t = this.tasks.get(e.data.taskId);
        if (!t) break;
        t.pullRequest = { number: e.data.number, url: e.data.url, state: e.data.state };
        touch(t.taskId);
        break;
      }
      case "worker_registered": {
        const prev = this.workers.get(e.data.nodeId);
        this.workers.set(e.data.nodeId, { ...e.data, tokenId: e.data.tokenId ?? prev?.tokenId, registeredAt: e.ts });
        break;
      }
      case "task_archived": {
        // Cold from now on: its views live in this event (the journal answers for it).
        const t = this.tasks.get(e.data.taskId);
        if (!t) break;
        for (const k of t.units) {
          const u = this.units.get(k);
          if (u?.worker) this.workerLeases.get(u.worker)?.delete(k);
          this.units.delete(k);
        }
        this.tasks.delete(t.taskId);
        this.archived++;
        break;
      }
      case "manifests_imported":
        this.imported = { ref: e.data.ref, commit: e.data.commit };
        break;
      case "token_revoked":
        this.revokedTokens.add(e.data.tokenId);
        break;
      case "epoch_started":
      case "report_rejected":
      case "token_created":
        break;
    }
  }

  /**
   * Adds units to a task (at creation, or from a plan): records, the dependents index (a review
   * unit waits on the unit it reviews), and returns the keys that are ready at once.
   */
  private addUnits(t: TaskRecord, specs: UnitSpec[], ts: number, restored?: Record<string, UnitStatusMirror>): string[] {
    for (const spec of specs) {
      const r = restored?.[spec.id];
      // A unit that was in flight when the files were written has lost its lease: it runs again,
      // with attempt numbers continuing so any zombie report of the old attempt is fenced off.
      const state: UnitState = r && isTerminal(r.state) ? r.state : "planned";
      this.units.set(unitKey(t.taskId, spec.id), {
        taskId: t.taskId, unitId: spec.id, spec, state, attempt: r?.attempt ?? 0, failures: 0, reason: r?.reason, updatedAt: ts, dependents: [],
        ...(state === "completed" || state === "merged" ? { acceptedAttempt: r?.attempt, acceptedWorker: r?.worker } : {}),
      });
    }
    const keys = specs.map((u) => unitKey(t.taskId, u.id));
    for (const spec of specs) {
      const on = new Set([...spec.dependsOn, ...(spec.reviews ? [spec.reviews] : [])]);
      for (const dep of on) this.units.get(unitKey(t.taskId, dep))?.dependents.push(unitKey(t.taskId, spec.id));
    }
    t.units.push(...keys);
    return keys.filter((k) => this.promote(k));
  }

  /** The review units of a codegen unit. */
  reviewersOf(u: UnitRecord): string[] {
    return u.dependents.filter((k) => this.units.get(k)?.spec.reviews === u.unitId);
  }

  /** planned → ready once every dependency is done (a review unit: once its change is evaluated). */
  private promote(key: string): boolean {
    const u = this.units.get(key);
    if (!u || u.state !== "planned") return false;
    const reviewed = u.spec.reviews;
    if (reviewed && this.unit(u.taskId, reviewed).state !== "reviewing") return false;
    if (!u.spec.dependsOn.every((d) => d === reviewed || isDone(this.unit(u.taskId, d).state))) return false;
    u.state = "ready";
    return true;
  }

  private settle(u: UnitRecord, state: UnitState, ts: number, reason?: string): void {
    const last = u.worker;
    this.clearLease(u);
    u.worker = last; // who worked on it last stays visible; it holds no lease any more
    u.state = state;
    u.reason = reason;
    u.notBefore = undefined;
    u.updatedAt = ts;
  }

  private clearLease(u: UnitRecord): void {
    if (u.worker) this.workerLeases.get(u.worker)?.delete(unitKey(u.taskId, u.unitId));
    u.worker = undefined;
    u.leaseId = undefined;
    u.leaseExpiresAt = undefined;
  }

  unit(taskId: string, unitId: string): UnitRecord {
    const u = this.units.get(unitKey(taskId, unitId));
    if (!u) throw new Error(`journal refers to unknown unit ${taskId}/${unitId}`);
    return u;
  }

  taskView(t: TaskRecord): TaskView {
    const counts: Partial<Record<UnitState, number>> = {};
    for (const k of t.units) {
      const s = this.units.get(k)!.state;
      counts[s] = (counts[s] ?? 0) + 1;
    }
    return {
      taskId: t.taskId, title: t.title, description: t.description, priority: t.priority, createdBy: t.createdBy,
      createdAt: t.createdAt, updatedAt: t.updatedAt, units: t.units.map((k) => k.slice(t.taskId.length + 1)), counts,
      state: taskState(t, counts), ...(t.merge ? { merge: t.merge } : {}), ...(t.pullRequest ? { pullRequest: t.pullRequest } : {}), ...(t.planFallback ? { planFallback: t.planFallback } : {}),
    };
  }

  /** A finished task's views as they go to the archive (`task_archived`). */
  archiveOf(t: TaskRecord): EventPayloads["task_archived"] {
    return { taskId: t.taskId, order: t.order, task: this.taskView(t), units: t.units.map((k) => this.unitView(this.units.get(k)!)) };
  }

  unitView(u: UnitRecord): UnitView {
    const { dependents: _d, acceptedAttempt: _a, acceptedLeaseId: _l, acceptedWorker: _w, approvedAttempt: _p, author: _au, reviewRequests: _rr, ...view } = u;
    return view;
  }

  private leaseSet(nodeId: string): Set<string> {
    let s = this.workerLeases.get(nodeId);
    if (!s) this.workerLeases.set(nodeId, (s = new Set()));
    return s;
  }

  leasesOf(nodeId: string): UnitRecord[] {
    return [...(this.workerLeases.get(nodeId) ?? [])].map((k) => this.units.get(k)!);
  }

  activeLeaseCount(nodeId: string): number {
    return this.workerLeases.get(nodeId)?.size ?? 0;
  }

  *leasedUnits(): Iterable<UnitRecord> {
    for (const set of this.workerLeases.values()) for (const k of set) yield this.units.get(k)!;
  }

  toSnapshot(): unknown {
    return {
      format: SNAPSHOT_FORMAT,
      lastSeq: this.lastSeq, taskOrder: this.taskOrder, tasks: [...this.tasks.values()], units: [...this.units.values()],
      workers: [...this.workers.values()], revokedTokens: [...this.revokedTokens], ledger: this.ledger.toSnapshot(),
      ...(this.imported ? { imported: this.imported } : {}), archived: this.archived,
    };
  }

  /** The projection a snapshot holds, or null when its format is not this version's (the journal is then replayed). */
  static fromSnapshot(s: unknown): Projection | null {
    if ((s as { format?: unknown } | null)?.format !== SNAPSHOT_FORMAT) return null;
    const o = s as { lastSeq: number; taskOrder: number; tasks: TaskRecord[]; units: UnitRecord[]; workers: WorkerRecord[]; revokedTokens: string[]; ledger?: unknown; imported?: Projection["imported"]; archived?: number };
    const p = new Projection();
    if (o.imported) p.imported = o.imported;
    p.archived = o.archived ?? 0;
    p.lastSeq = o.lastSeq;
    p.taskOrder = o.taskOrder;
    for (const t of o.tasks) p.tasks.set(t.taskId, t);
    for (const u of o.units) p.units.set(unitKey(u.taskId, u.unitId), u);
    for (const w of o.workers) p.workers.set(w.nodeId, w);
    for (const r of o.revokedTokens) p.revokedTokens.add(r);
    p.ledger = Ledger.fromSnapshot(o.ledger);
    for (const u of p.units.values()) if (u.state === "leased" && u.worker) p.leaseSet(u.worker).add(unitKey(u.taskId, u.unitId));
    return p;
  }
}

export function taskState(t: { cancelled: boolean; merge?: TaskRecord["merge"] }, counts: Partial<Record<UnitState, number>>): TaskView["state"] {
  if (t.cancelled) return "cancelled";
  const n = (s: UnitState) => counts[s] ?? 0;
  const total = Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
  // Done only once its change is on the target branch (a task without a change is done at once).
  if (n("completed") + n("merged") === total) return n("merged") === 0 || t.merge?.commit ? "completed" : t.merge?.heldReason ? "held" : "merging";
  const active = n("leased") + n("submitted") + n("evaluating") + n("reviewing") + n("awaiting_approval");
  if (active > 0) return "running";
  if (n("dead") > 0 && n("ready") === 0) return "failed";
  // Units cancelled or rejected one by one, the rest done: nothing of the task runs any more.
  if (n("cancelled") > 0 && n("cancelled") + n("completed") + n("merged") === total) return "cancelled";
  if (n("completed") + n("merged") + n("dead") + n("cancelled") > 0 && n("ready") > 0) return "running";
  return "open";
}
