import { unitKey, type SpendSummary, type TaskView, type UnitLiveView, type WorkerView } from "@optimus/shared";
import type { FarmServices } from "./services.js";

/** A unit as clients see it: its state plus the live progress of its current attempt. */
export function unitLive(s: FarmServices, key: string): UnitLiveView | undefined {
  const p = s.state.projection;
  const u = p.units.get(key);
  if (!u) return undefined;
  const live = s.leases.progress.get(key);
  return { ...p.unitView(u), progress: live && live.attempt === u.attempt ? live : undefined };
}

export const unitLiveOf = (s: FarmServices, taskId: string, unitId: string): UnitLiveView => unitLive(s, unitKey(taskId, unitId))!;

export function taskViewOf(s: FarmServices, taskId: string): TaskView | undefined {
  const t = s.state.projection.tasks.get(taskId);
  return t ? s.state.projection.taskView(t) : undefined;
}

export function fleetView(s: FarmServices): WorkerView[] {
  const { projection: p } = s.state;
  const d = s.dispatcher;
  return [...p.workers.values()].map((w) => ({
    nodeId: w.nodeId, role: w.role, maxConcurrentTasks: w.maxConcurrentTasks, model: w.model,
    connected: d.isConnected(w.nodeId), active: p.activeLeaseCount(w.nodeId), lastSeenAt: d.lastSeen(w.nodeId) ?? w.registeredAt,
  }));
}

/** Frontier spend. Nothing reaches the frontier until the gateway exists, so the ledger is empty. */
export function spendSummary(_s: FarmServices): SpendSummary {
  return { todayUsd: 0, days: [] };
}
