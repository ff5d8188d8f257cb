import type { HistoryCursor, HistoryPage, SpendSummary, TaskView, UnitLiveView, ViewsMessage, WorkerView } from "./events.js";
import { unitKey } from "./ids.js";

/** What one `views.stream` message changed in a client's copy of the farm. */
export interface ViewsChange {
  /** the whole model was replaced (first connection, or the farm restarted) */
  reset: boolean;
  tasks: Set<string>;
  units: Set<string>;
  fleet: boolean;
  /** units that just entered `awaiting_approval` (not on a reset: those were already waiting) */
  nowAwaitingApproval: UnitLiveView[];
}

/**
 * A client's copy of the farm's views (tasks, units, fleet, spend), kept in sync by applying
 * `views.stream` messages in order. Pure and transport-free, so the editor, the CLI and benchmarks
 * share it. A message older than what the model holds is ignored, which makes redelivery harmless.
 */
export class FarmViews {
  readonly tasks = new Map<string, TaskView>();
  readonly units = new Map<string, UnitLiveView>();
  workers: WorkerView[] = [];
  spend: SpendSummary = { todayUsd: 0, days: [], frontierConfigured: false };
  epoch = 0;
  seq = 0;
  /** the farm's clock in the last message (`ViewsMessage.serverTime`), and this process's clock then */
  serverTime = 0;
  receivedAt = 0;
  /** unit ids per task, in manifest order (as TaskView lists them) */
  private readonly byTask = new Map<string, string[]>();
  /** finished tasks the farm has not sent (the first message holds live work and a page of history) */
  history: HistoryCursor = { more: 0 };

  apply(m: ViewsMessage): ViewsChange {
    const change: ViewsChange = { reset: false, tasks: new Set(), units: new Set(), fleet: false, nowAwaitingApproval: [] };
    if (m.kind === "snapshot" || m.epoch === this.epoch) {
      this.serverTime = m.serverTime;
      this.receivedAt = Date.now();
    }
    if (m.kind === "snapshot") {
      this.tasks.clear();
      this.units.clear();
      this.byTask.clear();
      for (const t of m.tasks) this.putTask(t);
      for (const u of m.units) this.units.set(unitKey(u.taskId, u.unitId), u);
      this.workers = m.workers;
      this.spend = m.spend;
      this.history = m.history ?? { more: 0 };
      this.epoch = m.epoch;
      this.seq = m.seq;
      change.reset = true;
      change.fleet = true;
      return change;
    }
    if (m.epoch !== this.epoch) return change; // from a farm run this model no longer follows
    if (m.kind === "delta") {
      if (m.seq < this.seq) return change;
      if (m.spend) {
        this.spend = m.spend;
        change.fleet = true;
      }
      for (const t of m.tasks) {
        this.putTask(t);
        change.tasks.add(t.taskId);
      }
      for (const u of m.units) {
        const k = unitKey(u.taskId, u.unitId);
        const before = this.units.get(k);
        if (before && before.updatedAt > u.updatedAt) continue;
        if (u.state === "awaiting_approval" && (before?.state !== "awaiting_approval" || before.attempt !== u.attempt))
          change.nowAwaitingApproval.push(u);
        this.units.set(k, u);
        change.units.add(k);
        change.tasks.add(u.taskId);
      }
      this.seq = m.seq;
    } else if (m.kind === "progress") {
      for (const p of m.units) {
        const k = unitKey(p.taskId, p.unitId);
        const u = this.units.get(k);
        if (!u) continue;
        if (p.progress && p.progress.attempt !== u.attempt) continue;
        this.units.set(k, { ...u, progress: p.progress ?? undefined });
        change.units.add(k);
        change.tasks.add(u.taskId);
      }
    } else if (m.kind === "fleet") {
      this.workers = m.workers;
      change.fleet = true;
    }
    return change;
  }

  /** An older page of finished tasks, asked for with `history.before` (the tree's "show more"). */
  addHistory(page: HistoryPage): ViewsChange {
    const change: ViewsChange = { reset: false, tasks: new Set(), units: new Set(), fleet: false, nowAwaitingApproval: [] };
    for (const t of page.tasks) {
      if (this.tasks.has(t.taskId)) continue; // a delta brought a newer view meanwhile
      this.putTask(t);
      change.tasks.add(t.taskId);
    }
    for (const u of page.units) {
      const k = unitKey(u.taskId, u.unitId);
      if (this.units.has(k) || !change.tasks.has(u.taskId)) continue;
      this.units.set(k, u);
      change.units.add(k);
    }
    this.history = { more: page.more, ...(page.before !== undefined ? { before: page.before } : {}) };
    return change;
  }

  private putTask(t: TaskView): void {
    this.tasks.set(t.taskId, t);
    this.byTask.set(t.taskId, t.units);
  }

  /**
   * The farm's clock now, estimated from its last message: ages (running for, last seen, offline
   * for) are measured on it, so a client whose clock is off still shows them right.
   */
  farmNow(localNow = Date.now()): number {
    return this.serverTime === 0 ? localNow : this.serverTime + Math.max(0, localNow - this.receivedAt);
  }

  /** A task's units in manifest order. */
  unitsOf(taskId: string): UnitLiveView[] {
    return (this.byTask.get(taskId) ?? [])
      .map((id) => this.units.get(unitKey(taskId, id)))
      .filter((u): u is UnitLiveView => u !== undefined);
  }

  unit(taskId: string, unitId: string): UnitLiveView | undefined {
    return this.units.get(unitKey(taskId, unitId));
  }

  count(pred: (u: UnitLiveView) => boolean): number {
    let n = 0;
    for (const u of this.units.values()) if (pred(u)) n++;
    return n;
  }

  /** Units a person has to act on: held for approval, or dead with nothing left to try. */
  needsHuman(u: UnitLiveView): boolean {
    return (
      u.state === "awaiting_approval" ||
      u.state === "dead" ||
      (this.tasks.get(u.taskId)?.merge?.heldReason !== undefined && u.state === "merged")
    );
  }
}
