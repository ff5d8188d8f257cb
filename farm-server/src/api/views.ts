import {
  FINISHED_TASK_STATES,
  unitKey,
  type HistoryCursor,
  type HistoryPage,
  type SpendSummary,
  type TaskView,
  type UnitLiveView,
  type UnitView,
  type WorkerView,
} from "@optimus/shared";
import { frontierConfigured, unitActions } from "../core/unit-actions.js";
import { utcDay } from "../store/ledger.js";
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
  const view: UnitLiveView = {
    ...p.unitView(u),
    progress: live && live.attempt === u.attempt ? live : undefined,
    actions,
    ...(needsApprover ? { needsApprover } : {}),
  };
  // A worker's escalation through the gateway shows like a person's request: queued, then escalated.
  const id = p.ledger.latestByUnit.get(key);
  const x = id ? p.ledger.entries.get(id) : undefined;
  if (x && (x.state === "queued" || x.state === "admitted" || x.state === "settled") && (!u.escalation || u.escalation.at <= x.queuedAt)) {
    view.escalation = {
      state: x.state === "queued" ? "queued" : "escalated",
      requestedBy: x.worker,
      at: x.queuedAt,
      attempt: u.attempt,
      ...(x.state === "queued"
        ? { reason: x.reason ?? p.ledger.paused, position: p.ledger.queue().findIndex((q) => q.requestId === x.requestId) + 1 }
        : {}),
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
    nodeId: w.nodeId,
    role: w.role,
    maxConcurrentTasks: w.maxConcurrentTasks,
    model: w.model,
    connected: d.isConnected(w.nodeId),
    active: p.activeLeaseCount(w.nodeId),
    lastSeenAt: d.lastSeen(w.nodeId) ?? w.registeredAt,
  }));
}

/** Frontier spend from the gateway's ledger: per day (the last 30), today, the daily budget, and a pause. */
export function spendSummary(s: FarmServices): SpendSummary {
  const r = s.state.projection.ledger.report();
  const today = utcDay(Date.now());
  const days = Object.entries(r.byDay)
    .sort(([a], [b]) => a.localeCompare(b))
    .slice(-30)
    .map(([day, usd]) => ({ day, usd }));
  return {
    todayUsd: r.byDay[today] ?? 0,
    dailyBudgetUsd: s.config.gateway.apiKey ? s.config.gateway.budgets.perDayUsd : undefined,
    days,
    paused: s.state.projection.ledger.paused,
    frontierConfigured: frontierConfigured(s.config),
    gate: { ...s.config.gate },
  };
}

/** How many finished tasks the first views message carries (the rest come a page at a time). */
export const HISTORY_PAGE = 50;

/** Tasks in flight, and hot finished ones created before `before` (all when absent), newest first. */
function split(s: FarmServices, before = Infinity): { live: TaskView[]; finished: Array<{ order: number; view: TaskView }> } {
  const live: TaskView[] = [];
  const finished: Array<{ order: number; view: TaskView }> = [];
  for (const t of s.state.projection.tasks.values()) {
    if (t.order >= before) continue; // (a page of history needs no newer task)
    const view = s.state.projection.taskView(t);
    if (FINISHED_TASK_STATES.has(view.state)) finished.push({ order: t.order, view });
    else live.push(view);
  }
  return { live, finished: finished.sort((a, b) => b.order - a.order) };
}

/** A finished task's views, hot (from the projection) or archived (from the journal). */
interface Finished {
  order: number;
  task: TaskView;
  units: UnitLiveView[];
}

/** An archived unit as clients see it: its last view; nothing can be done with it any more. */
const archivedUnit = (u: UnitView): UnitLiveView => ({ ...u, actions: [] });

/**
 * The `limit` newest finished tasks created before `before`, hot and archived together (a task
 * archived meanwhile may be in both: the hot copy wins), and where the rest start.
 */
async function finishedPage(
  s: FarmServices,
  hot: Array<{ order: number; view: TaskView }>,
  before: number,
  limit: number,
): Promise<{ tasks: TaskView[]; units: UnitLiveView[]; history: HistoryCursor }> {
  // The hot part is read before the journal is asked: a task archived meanwhile is then in both.
  const hotPage: Finished[] = hot.slice(0, limit).map((f) => ({ order: f.order, task: f.view, units: unitsOf(s, [f.view]) }));
  const cold = await s.state.journal.archivedPage(before, limit);
  const seen = new Set(hot.map((f) => f.view.taskId));
  const coldOnly = cold.tasks.filter((a) => !seen.has(a.taskId));
  const all: Finished[] = [...hotPage, ...coldOnly.map((a) => ({ order: a.order, task: a.task, units: a.units.map(archivedUnit) }))].sort(
    (a, b) => b.order - a.order,
  );
  const page = all.slice(0, limit);
  const total = hot.length + cold.total - (cold.tasks.length - coldOnly.length);
  const more = Math.max(0, total - page.length);
  return {
    tasks: page.map((f) => f.task),
    units: page.flatMap((f) => f.units),
    history: { more, ...(more > 0 ? { before: page[page.length - 1]!.order } : {}) },
  };
}

const unitsOf = (s: FarmServices, tasks: TaskView[]): UnitLiveView[] =>
  tasks.flatMap((t) => t.units.map((id) => unitLive(s, unitKey(t.taskId, id))!));

/**
 * What a client is sent first: every task still in flight, and the `HISTORY_PAGE` most recent
 * finished ones (hot or archived), with their units; how many older finished tasks remain is in
 * `history`. So the first message is bounded by live work, not by everything the farm ever did.
 */
export async function liveAndRecent(s: FarmServices): Promise<{ tasks: TaskView[]; units: UnitLiveView[]; history: HistoryCursor }> {
  const { live, finished } = split(s);
  const liveUnits = unitsOf(s, live);
  const recent = await finishedPage(s, finished, Number.MAX_SAFE_INTEGER, HISTORY_PAGE);
  const tasks = [...live, ...recent.tasks].sort((a, b) => a.createdAt - b.createdAt);
  return { tasks, units: [...liveUnits, ...recent.units], history: recent.history };
}

/** A page of older finished tasks with their units, newest first (the editor's "show more"). */
export async function historyPage(s: FarmServices, before: number, limit: number): Promise<HistoryPage> {
  const { tasks, units, history } = await finishedPage(s, split(s, before).finished, before, limit);
  return { tasks, units, ...history };
}

/** A task with its units, hot or archived (`archived` then): what `task show` and the editor ask for. */
export async function taskWithUnits(
  s: FarmServices,
  taskId: string,
): Promise<{ task: TaskView; units: UnitLiveView[]; archived: boolean } | undefined> {
  const p = s.state.projection;
  const t = p.tasks.get(taskId);
  if (t) return { task: p.taskView(t), units: t.units.map((k) => unitLive(s, k)!), archived: false };
  const a = await s.state.journal.archivedTask(taskId);
  // Hot again meanwhile is impossible (archived is final), but the projection is asked first above.
  return a ? { task: a.task, units: a.units.map(archivedUnit), archived: true } : undefined;
}
