import { unitKey, type UnitRole } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { Lease, LeaseCommands } from "../core/lease-commands.js";
import type { Touched, UnitRecord } from "../store/projection.js";
import { ReadyQueue } from "./ready-queue.js";

type Author = { node: string; tokenId?: string };

/** For a review unit: who wrote the change it reviews (node and token), which must not review it. */
export function authorOfReviewed(state: FarmState, u: UnitRecord): Author | undefined {
  if (!u.spec.reviews) return undefined;
  const target = state.projection.units.get(unitKey(u.taskId, u.spec.reviews));
  const node = target?.author?.node ?? target?.acceptedWorker;
  if (!node) return undefined;
  return { node, tokenId: target?.author?.tokenId ?? state.projection.workers.get(node)?.tokenId };
}

/** A connected worker's end of the lease stream. */
export interface LeaseSink {
  push(lease: Lease): void;
}

interface Connection {
  nodeId: string;
  role: UnitRole;
  capacity: number;
  sinks: Set<LeaseSink>;
  lastAssignedAt: number;
  lastSeenAt: number;
  /** when this connection opened (`optimus worker list`'s "connected since") */
  connectedAt: number;
}

export interface DispatcherOptions {
  /** how often overdue leases are looked for; a quarter of the heartbeat interval by default */
  expiryScanMs: number;
  onError: (err: unknown) => void;
  onLeased?: (lease: Lease) => void;
  /**
   * A task's unit became ready and no worker of its role is connected: it waits until one is. Said
   * once per task and role until a worker of that role connects; not before `start()` (units found
   * or imported while the farm starts: its workers have not had a chance to connect yet).
   */
  onUnserved?: (taskId: string, role: UnitRole) => void;
}

/** Tasks whose units may not be leased yet (their integration branch is still being cut). */
export interface LeaseGate {
  blocked(taskId: string): boolean;
}

/**
 * Matches ready units to connected workers: for each unit in priority order, the least-busy
 * connected worker of its role with free capacity (`maxConcurrentTasks`). A lease is pushed to the
 * worker only once it is durable, so a worker never works on a lease the journal does not know.
 */
export class Dispatcher {
  private readonly queues = new Map<UnitRole, ReadyQueue>();
  private readonly delayed = new Set<string>();
  /** units held back by the gate, by task, until `release(task)` */
  private readonly parked = new Map<string, Set<string>>();
  gate: LeaseGate | null = null;
  private readonly conns = new Map<string, Connection>();
  /** tasks already said to wait for a role nobody serves, by role (forgotten when one connects) */
  private readonly unserved = new Map<UnitRole, Set<string>>();
  private scheduled = false;
  private delayTimer: NodeJS.Timeout | null = null;
  private wakeAt = 0;
  private expiryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private started = false;

  constructor(
    private readonly state: FarmState,
    private readonly leases: LeaseCommands,
    private readonly opts: DispatcherOptions,
  ) {
    state.onTouched = (t: Touched) => {
      for (const k of t.readyUnits) {
        this.enqueue(k);
        this.sayIfUnserved(k);
      }
      // Any change to a task may free a worker's capacity (a submission, an expiry, a cancel).
      if (t.readyUnits.size > 0 || t.tasks.size > 0) this.schedule();
    };
  }

  start(): void {
    this.started = true;
    for (const [k, u] of this.state.projection.units) if (u.state === "ready") this.enqueue(k);
    this.expiryTimer = setInterval(() => {
      this.leases.expireLeases().then((n) => n > 0 && this.schedule(), this.opts.onError);
    }, this.opts.expiryScanMs);
    this.expiryTimer.unref();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    if (this.delayTimer) clearTimeout(this.delayTimer);
  }

  /** A worker opened its lease stream. Returns the function that closes it. */
  attach(nodeId: string, sink: LeaseSink): () => void {
    const w = this.state.projection.workers.get(nodeId)!;
    let c = this.conns.get(nodeId);
    if (!c) {
      const now = Date.now();
      c = { nodeId, role: w.role, capacity: w.maxConcurrentTasks, sinks: new Set(), lastAssignedAt: 0, lastSeenAt: now, connectedAt: now };
      this.conns.set(nodeId, c);
    }
    c.role = w.role;
    c.capacity = w.maxConcurrentTasks;
    c.sinks.add(sink);
    this.unserved.delete(w.role);
    // Whatever it already holds (after its own or the farm's restart) is handed back first, once
    // durable: a lease staged this very moment must not reach a worker before the journal has it.
    void this.state.settle().then(() => {
      if (c!.sinks.has(sink)) for (const u of this.state.projection.leasesOf(nodeId)) sink.push(this.leases.toLease(u));
      this.schedule();
    }, this.opts.onError);
    return () => {
      c!.sinks.delete(sink);
      if (c!.sinks.size === 0 && this.conns.get(nodeId) === c) this.conns.delete(nodeId);
    };
  }

  private sayIfUnserved(key: string): void {
    const u = this.state.projection.units.get(key);
    if (!u || !this.started || !this.opts.onUnserved || u.state !== "ready") return;
    const role = u.spec.role;
    for (const c of this.conns.values()) if (c.role === role) return;
    let told = this.unserved.get(role);
    if (!told) this.unserved.set(role, (told = new Set()));
    if (told.has(u.taskId)) return;
    told.add(u.taskId);
    this.opts.onUnserved(u.taskId, role);
  }

  isConnected(nodeId: string): boolean {
    return this.conns.has(nodeId);
  }

  seen(nodeId: string): void {
    const c = this.conns.get(nodeId);
    if (c) c.lastSeenAt = Date.now();
  }

  lastSeen(nodeId: string): number | undefined {
    return this.conns.get(nodeId)?.lastSeenAt;
  }

  connectedSince(nodeId: string): number | undefined {
    return this.conns.get(nodeId)?.connectedAt;
  }

  /** The gate lets these tasks' units through now. */
  release(taskIds: Iterable<string>): void {
    for (const taskId of taskIds) {
      const keys = this.parked.get(taskId);
      if (!keys) continue;
      this.parked.delete(taskId);
      for (const k of keys) this.enqueue(k);
    }
    this.schedule();
  }

  /** Capacity may have freed up (a submission, an expiry): look again soon. */
  schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      try {
        this.pass();
      } catch (err) {
        this.opts.onError(err);
      }
    });
  }

  private enqueue(key: string): void {
    const u = this.state.projection.units.get(key);
    if (!u) return;
    const task = this.state.projection.tasks.get(u.taskId);
    // Higher priority first (task, then unit); equal priorities in arrival order.
    const rank = -((task?.priority ?? 0) * 2001 + u.spec.priority);
    let q = this.queues.get(u.spec.role);
    if (!q) this.queues.set(u.spec.role, (q = new ReadyQueue()));
    q.push(key, rank);
  }

  private pass(): void {
    const now = Date.now();
    const p = this.state.projection;
    for (const [role, q] of this.queues) {
      // Units no connected worker may take (a review whose only reviewers wrote the change) wait
      // aside for this pass, so they do not hold up the units behind them.
      const barred: string[] = [];
      while (q.size > 0) {
        if (!this.pickWorker(role)) break;
        const key = q.pop()!;
        const u = p.units.get(key);
        if (!u || u.state !== "ready") continue; // stale entry: leased, cancelled or queued twice
        if (this.gate?.blocked(u.taskId)) {
          let keys = this.parked.get(u.taskId);
          if (!keys) this.parked.set(u.taskId, (keys = new Set()));
          keys.add(key);
          continue;
        }
        if (u.notBefore !== undefined && u.notBefore > now) {
          this.delay(key, u);
          continue;
        }
        const worker = this.pickWorker(role, authorOfReviewed(this.state, u));
        if (!worker) {
          barred.push(key);
          continue;
        }
        worker.lastAssignedAt = now;
        const { lease, durable } = this.leases.lease(u, worker.nodeId);
        durable.then(() => {
          // Deliver to whichever stream the worker has open now (it may have reconnected meanwhile).
          const c = this.conns.get(worker.nodeId);
          const current = p.units.get(key);
          if (c && current?.state === "leased" && current.leaseId === lease.leaseId) for (const s of c.sinks) s.push(lease);
          this.opts.onLeased?.(lease);
        }, this.opts.onError);
      }
      for (const key of barred) this.enqueue(key);
    }
  }

  /**
   * The least-busy connected worker of a role with free capacity. Never a worker whose token was
   * revoked (its stream may not have closed yet), nor, for a review, the node or token that wrote
   * the change under review.
   */
  private pickWorker(role: UnitRole, author?: Author): Connection | undefined {
    const p = this.state.projection;
    let best: Connection | undefined;
    let bestLoad = Infinity;
    for (const c of this.conns.values()) {
      if (c.role !== role) continue;
      const tokenId = p.workers.get(c.nodeId)?.tokenId;
      if (tokenId && p.revokedTokens.has(tokenId)) continue;
      if (author && (c.nodeId === author.node || (tokenId !== undefined && tokenId === author.tokenId))) continue;
      const active = p.activeLeaseCount(c.nodeId);
      if (active >= c.capacity) continue;
      const load = active / c.capacity;
      if (load < bestLoad || (load === bestLoad && best && c.lastAssignedAt < best.lastAssignedAt)) {
        best = c;
        bestLoad = load;
      }
    }
    return best;
  }

  private delay(key: string, u: UnitRecord): void {
    this.delayed.add(key);
    const wakeAt = u.notBefore ?? Date.now();
    if (this.delayTimer && this.wakeAt <= wakeAt) return;
    // One timer, for the soonest; every delayed unit is looked at again when it fires.
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.wakeAt = wakeAt;
    this.delayTimer = setTimeout(
      () => {
        this.delayTimer = null;
        const keys = [...this.delayed];
        this.delayed.clear();
        for (const k of keys) this.enqueue(k);
        this.schedule();
      },
      Math.max(0, wakeAt - Date.now()) + 5,
    );
    this.delayTimer.unref();
  }
}
