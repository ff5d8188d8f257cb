import { unitKey, type HistoryCursor, type HistoryPage, type SpendSummary, type TaskView, type UnitLiveView, type WorkerView } from "@optimus/shared";
import { frontierConfigured, unitActions } from "../core/unit-actions.js";
import { utcDay } from "../gateway/ledger.js";
import { protectedPathsIn } from "../prloop/separation.js";
import type { FarmServices } from "./services.js";

/** A unit as clients see it: its state plus the live progress of its current attempt. */
export function unitLive(s: FarmServices, key: string): UnitLiveView | undefined {
  const p = s.state.projection;
  const u = p.units.get(key);
  if (!u) return undefined;
  const live = s.leases.progress.get(key);
  // What the farm accepts now, from the lifecycle table: the editor offers exactly these.
  const actions = unitActions(p, s.config, u);
  const needsApprover = actions.includes("approve") && protectedPathsIn(u.evaluation?.diff.files ?? [], s.config.policy).length > 0;
  const view: UnitLiveView = { ...p.unitView(u), progress: live && live.attempt === u.attempt ? live : undefined, actions, ...(needsApprover ? { needsApprover } : {}) };
  // A worker's escalation through the gateway shows like a person's request: queued, then escalated.
  const id = p.ledger.latestByUnit.get(key);
  const x = id ? p.ledger.entries.get(id) : undefined;
  if (x && (x.state === "queued" || x.state === "admitted" || x.state === "settled") && (!u.escalation || u.escalation.at <= x.queuedAt)) {
    view.escalation = {
      state: x.state === "queued" ? "queued" : "escalated", requestedBy: x.worker, at: x.queuedAt, attempt: u.attempt,
      ...(x.state === "queued" ? { reason: x.reason ?? p.ledger.paused, position: p.ledger.queue().findIndex((q) => q.requestId === x.requestId) + 1 } : {}),
    };
  }
  return view;
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

/** Frontier spend from the gateway's ledger: per day (the last 30), today, the daily budget, and a pause. */
export function spendSummary(s: FarmServices): SpendSummary {
  const r = s.state.projection.ledger.report();
  const today = utcDay(Date.now());
  const days = Object.entries(r.byDay).sort(([a], [b]) => a.localeCompare(b)).slice(-30).map(([day, usd]) => ({ day, usd }));
  return {
    todayUsd: r.byDay[today] ?? 0, dailyBudgetUsd: s.config.gateway.apiKey ? s.config.gateway.budgets.perDayUsd : undefined, days, paused: s.state.projection.ledger.paused,
    frontierConfigured: frontierConfigured(s.config), gate: { ...s.config.gate },
  };
}

/** How many finished tasks the first views message carries (the rest come a page at a time). */
export const HISTORY_PAGE = 50;
const FINISHED = new Set<TaskView["state"]>(["completed", "cancelled", "failed"]);

/**
 * The tasks a client is sent first: every one still in flight, and the `HISTORY_PAGE` most recent
 * finished ones; how many older finished tasks remain is in `history`. So the first message is
 * bounded by live work, not by everything the farm ever did.
 */
export function liveAndRecent(s: FarmServices): { tasks: TaskView[]; history: HistoryCursor } {
  const live: TaskView[] = [];
  const finished: TaskView[] = [];
  for (const t of s.state.projection.tasks.values()) {
    const v = s.state.projection.taskView(t);
    (FINISHED.has(v.state) ? finished : live).push(v);
  }
  const page = newestFirst(s, finished, undefined, HISTORY_PAGE);
  return { tasks: [...live, ...page.tasks].sort((a, b) => a.createdAt - b.createdAt), history: { more: page.more, ...(page.before !== undefined ? { before: page.before } : {}) } };
}

/** Finished tasks created before `before` (a task's creation order), newest first, `limit` of them. */
function newestFirst(s: FarmServices, finished: TaskView[], before: number | undefined, limit: number): { tasks: TaskView[]; more: number; before?: number } {
  const order = (v: TaskView) => s.state.projection.tasks.get(v.taskId)!.order;
  const older = (before === undefined ? finished : finished.filter((v) => order(v) < before)).sort((a, b) => order(b) - order(a));
  const tasks = older.slice(0, limit);
  const more = older.length - tasks.length;
  return { tasks, more, ...(more > 0 ? { before: order(tasks[tasks.length - 1]!) } : {}) };
}

/** A page of older finished tasks with their units (the editor's "show more"). */
export function historyPage(s: FarmServices, before: number, limit: number): HistoryPage {
  const finished: TaskView[] = [];
  for (const t of s.state.projection.tasks.values()) {
    if (t.order >= before) continue;
    const v = s.state.projection.taskView(t);
    if (FINISHED.has(v.state)) finished.push(v);
  }
  const page = newestFirst(s, finished, before, limit);
  return { ...page, units: page.tasks.flatMap((t) => t.units.map((id) => unitLive(s, unitKey(t.taskId, id))!).filter(Boolean)) };
}
