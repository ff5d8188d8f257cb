import { Ledger } from "./ledger.js";
import {
  isDone,
  isTerminal,
  mayMove,
  unitKey,
  type EventPayloads,
  type EventType,
  type FarmEvent,
  type TaskView,
  type UnitSpec,
  type UnitState,
  type UnitStatusMirror,
  type UnitView,
} from "@optimus/shared";
import type { Fold, FoldHandlers, FoldTarget } from "./projection-fold.js";
import type { TaskRecord, UnitRecord, WorkerRecord } from "./projection-records.js";
import { taskEvents } from "./projection-task-events.js";
import { unitEvents } from "./projection-unit-events.js";
import { taskState } from "./task-state.js";

export type { TaskRecord, UnitRecord, WorkerRecord } from "./projection-records.js";
export { taskState } from "./task-state.js";

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
 * A unit's move from one state to another, as the event that made it (`from` undefined: the unit
 * was created in `to`). `attempt`, `worker` and `reason` are the unit's once the event is folded.
 */
export interface UnitMove {
  taskId: string;
  unitId: string;
  from?: UnitState;
  to: UnitState;
  attempt: number;
  worker?: string;
  reason?: string;
  event: EventType;
  seq: number;
}

/**
 * The farm's state as a fold of the journal. Pure and deterministic: the same events give the
 * same state, which is what lets a snapshot plus the tail of the journal replace a full replay.
 */
export class Projection implements FoldTarget {
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

  /**
   * Moves of a unit the lifecycle table does not allow, as they happened (at most 100 kept). The
   * farm's guards make them impossible; one here is a bug, reported by the farm and failing tests
   * (`OPTIMUS_STRICT_LIFECYCLE=1` makes it throw).
   */
  readonly lifecycleViolations: string[] = [];
  static strict = process.env.OPTIMUS_STRICT_LIFECYCLE === "1";

  /**
   * Where unit moves are recorded while folding, when someone wants them (the farm's transition
   * log): set by FarmState around the events it stages, never during a replay; null costs nothing.
   */
  moves: UnitMove[] | null = null;
  private moving: UnitRecord[] = [];

  apply(e: FarmEvent, touched?: Touched): void {
    this.lastSeq = e.seq;
    if (e.type.startsWith("escalation")) this.ledger.apply(e);
    const fold: Fold = {
      p: this,
      ready: (k) => touched?.readyUnits.add(k),
      touch: (taskId) => {
        touched?.tasks.add(taskId);
        const t = this.tasks.get(taskId);
        if (t) t.updatedAt = e.ts;
      },
    };
    const handle = HANDLERS[e.type] as ((f: Fold, e: FarmEvent) => void) | undefined;
    const mark = this.moves?.length ?? 0;
    this.moving.length = 0;
    handle?.(fold, e);
    if (this.moves) this.detailMoves(mark);
  }

  move(u: UnitRecord, to: UnitState, e: FarmEvent): void {
    if (!mayMove(u.state, to)) {
      const what = `${e.type} (seq ${e.seq}) moved ${u.taskId}/${u.unitId} from ${u.state} to ${to}, which the lifecycle does not allow`;
      if (Projection.strict) throw new Error(what);
      if (this.lifecycleViolations.length < 100) this.lifecycleViolations.push(what);
    }
    if (this.moves && u.state !== to) this.recordMove(u, u.state, to, e);
    u.state = to;
  }

  private recordMove(u: UnitRecord, from: UnitState | undefined, to: UnitState, e: FarmEvent): void {
    this.moves!.push({ taskId: u.taskId, unitId: u.unitId, ...(from ? { from } : {}), to, attempt: 0, event: e.type, seq: e.seq });
    this.moving.push(u);
  }

  /** A handler sets the attempt, worker and reason around its moves: read once the event is folded. */
  private detailMoves(from: number): void {
    const moves = this.moves!;
    for (let i = from; i < moves.length; i++) {
      const u = this.moving[i - from]!;
      const m = moves[i]!;
      m.attempt = u.attempt;
      if (u.worker) m.worker = u.worker;
      if (u.reason) m.reason = u.reason;
    }
    this.moving.length = 0;
  }

  addTask(t: Omit<TaskRecord, "order">): TaskRecord {
    const record: TaskRecord = { ...t, order: this.taskOrder++ };
    this.tasks.set(t.taskId, record);
    return record;
  }

  /** A finished task leaves for the archive: its records go, with the leases index's entries. */
  archive(taskId: string): void {
    const t = this.tasks.get(taskId);
    if (!t) return;
    for (const k of t.units) {
      const u = this.units.get(k);
      if (u?.worker) this.workerLeases.get(u.worker)?.delete(k);
      this.units.delete(k);
    }
    this.tasks.delete(t.taskId);
    this.archived++;
  }

  /**
   * Adds units to a task (at creation, or from a plan): records, the dependents index (a review
   * unit waits on the unit it reviews), and returns the keys that are ready at once.
   */
  addUnits(t: TaskRecord, specs: UnitSpec[], e: FarmEvent, restored?: Record<string, UnitStatusMirror>): string[] {
    const ts = e.ts;
    for (const spec of specs) {
      const r = restored?.[spec.id];
      // A unit that was in flight when the files were written has lost its lease: it runs again,
      // with attempt numbers continuing so any zombie report of the old attempt is fenced off.
      const state: UnitState = r && isTerminal(r.state) ? r.state : "planned";
      this.units.set(unitKey(t.taskId, spec.id), {
        taskId: t.taskId,
        unitId: spec.id,
        spec,
        state,
        attempt: r?.attempt ?? 0,
        failures: 0,
        reason: r?.reason,
        updatedAt: ts,
        dependents: [],
        ...(state === "completed" || state === "merged" ? { acceptedAttempt: r?.attempt, acceptedWorker: r?.worker } : {}),
      });
      if (this.moves) this.recordMove(this.units.get(unitKey(t.taskId, spec.id))!, undefined, state, e);
    }
    const keys = specs.map((u) => unitKey(t.taskId, u.id));
    for (const spec of specs) {
      const on = new Set([...spec.dependsOn, ...(spec.reviews ? [spec.reviews] : [])]);
      for (const dep of on) this.units.get(unitKey(t.taskId, dep))?.dependents.push(unitKey(t.taskId, spec.id));
    }
    t.units.push(...keys);
    return keys.filter((k) => this.promote(k, e));
  }

  /** The review units of a codegen unit. */
  reviewersOf(u: UnitRecord): string[] {
    return u.dependents.filter((k) => this.units.get(k)?.spec.reviews === u.unitId);
  }

  /** planned → ready once every dependency is done (a review unit: once its change is evaluated). */
  promote(key: string, e: FarmEvent): boolean {
    const u = this.units.get(key);
    if (!u || u.state !== "planned") return false;
    const reviewed = u.spec.reviews;
    if (reviewed && this.unit(u.taskId, reviewed).state !== "reviewing") return false;
    if (!u.spec.dependsOn.every((d) => d === reviewed || isDone(this.unit(u.taskId, d).state))) return false;
    this.move(u, "ready", e);
    return true;
  }

  settle(u: UnitRecord, state: UnitState, e: FarmEvent, reason?: string): void {
    const last = u.worker;
    this.clearLease(u);
    u.worker = last; // who worked on it last stays visible; it holds no lease any more
    this.move(u, state, e);
    u.reason = reason;
    u.notBefore = undefined;
    u.updatedAt = e.ts;
  }

  clearLease(u: UnitRecord): void {
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
      taskId: t.taskId,
      title: t.title,
      description: t.description,
      priority: t.priority,
      createdBy: t.createdBy,
      createdAt: t.createdAt,
      updatedAt: t.updatedAt,
      units: t.units.map((k) => k.slice(t.taskId.length + 1)),
      counts,
      state: taskState(t, counts),
      ...(t.merge ? { merge: t.merge } : {}),
      ...(t.pullRequest ? { pullRequest: t.pullRequest } : {}),
      ...(t.planFallback ? { planFallback: t.planFallback } : {}),
    };
  }

  /** A finished task's views as they go to the archive (`task_archived`). */
  archiveOf(t: TaskRecord): EventPayloads["task_archived"] {
    return { taskId: t.taskId, order: t.order, task: this.taskView(t), units: t.units.map((k) => this.unitView(this.units.get(k)!)) };
  }

  unitView(u: UnitRecord): UnitView {
    const {
      dependents: _d,
      acceptedAttempt: _a,
      acceptedLeaseId: _l,
      acceptedWorker: _w,
      approvedAttempt: _p,
      author: _au,
      reviewRequests: _rr,
      ...view
    } = u;
    return view;
  }

  leaseSet(nodeId: string): Set<string> {
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
      lastSeq: this.lastSeq,
      taskOrder: this.taskOrder,
      tasks: [...this.tasks.values()],
      units: [...this.units.values()],
      workers: [...this.workers.values()],
      revokedTokens: [...this.revokedTokens],
      ledger: this.ledger.toSnapshot(),
      ...(this.imported ? { imported: this.imported } : {}),
      archived: this.archived,
    };
  }

  /** The projection a snapshot holds, or null when its format is not this version's (the journal is then replayed). */
  static fromSnapshot(s: unknown): Projection | null {
    if ((s as { format?: unknown } | null)?.format !== SNAPSHOT_FORMAT) return null;
    const o = s as {
      lastSeq: number;
      taskOrder: number;
      tasks: TaskRecord[];
      units: UnitRecord[];
      workers: WorkerRecord[];
      revokedTokens: string[];
      ledger?: unknown;
      imported?: Projection["imported"];
      archived?: number;
    };
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

/** The farm-level events; unit and task events have their own files. */
const farmEvents: FoldHandlers = {
  worker_registered: (f, e) => {
    const prev = f.p.workers.get(e.data.nodeId);
    f.p.workers.set(e.data.nodeId, { ...e.data, tokenId: e.data.tokenId ?? prev?.tokenId, registeredAt: e.ts });
  },
  manifests_imported: (f, e) => {
    f.p.imported = { ref: e.data.ref, commit: e.data.commit };
  },
  token_revoked: (f, e) => {
    f.p.revokedTokens.add(e.data.tokenId);
  },
};

const HANDLERS: FoldHandlers = { ...unitEvents, ...taskEvents, ...farmEvents };
