import { isTerminal } from "@optimus/shared";
import type { FoldHandlers } from "./projection-fold.js";

/** How task-level events (creation, plans, cancellation, merge, pull request, archive) change the projection. */
export const taskEvents: FoldHandlers = {
  task_created: (f, e) => {
    const d = e.data;
    const t = f.p.addTask({
      taskId: d.taskId,
      title: d.title,
      description: d.description,
      priority: d.priority,
      targetBranch: d.targetBranch,
      createdBy: d.createdBy,
      createdAt: e.ts,
      updatedAt: e.ts,
      cancelled: false,
      units: [],
    });
    for (const k of f.p.addUnits(t, d.units, e, d.restored)) f.ready(k);
    f.touch(d.taskId);
  },
  task_cancelled: (f, e) => {
    const t = f.p.tasks.get(e.data.taskId);
    if (!t) return;
    t.cancelled = true;
    for (const k of t.units) {
      const u = f.p.units.get(k)!;
      if (!isTerminal(u.state)) f.p.settle(u, "cancelled", e, e.data.reason ?? "task cancelled");
    }
    f.touch(t.taskId);
  },
  units_added: (f, e) => {
    const t = f.p.tasks.get(e.data.taskId);
    if (!t) return;
    for (const k of f.p.addUnits(t, e.data.units, e)) {
      const u = f.p.units.get(k)!;
      if (e.data.feedback?.length) u.feedback = [...e.data.feedback];
      f.ready(k);
    }
    f.touch(t.taskId);
  },
  units_planned: (f, e) => {
    const t = f.p.tasks.get(e.data.taskId);
    if (!t) return;
    if (e.data.adr) t.adrs = [...(t.adrs ?? []), e.data.adr];
    if (e.data.fallback) t.planFallback = e.data.fallback;
    for (const k of f.p.addUnits(t, e.data.units, e)) f.ready(k);
    f.touch(t.taskId);
  },
  task_merged: (f, e) => {
    const t = f.p.tasks.get(e.data.taskId);
    if (!t) return;
    t.merge = { into: e.data.into, commit: e.data.commit };
    if (t.pullRequest) t.pullRequest = { ...t.pullRequest, state: "merged" };
    f.touch(t.taskId);
  },
  task_merge_held: (f, e) => {
    const t = f.p.tasks.get(e.data.taskId);
    if (!t) return;
    t.merge = { into: e.data.into, heldReason: e.data.reason, ...(e.data.conflicts?.length ? { conflicts: e.data.conflicts } : {}) };
    f.touch(t.taskId);
  },
  task_approved: (f, e) => {
    const t = f.p.tasks.get(e.data.taskId);
    if (!t) return;
    t.approvals = [
      ...(t.approvals ?? []),
      { by: e.data.by, head: e.data.head, at: e.ts, ...(e.data.forgeEvent ? { forgeEvent: e.data.forgeEvent } : {}) },
    ];
    f.touch(t.taskId);
  },
  task_pull_request: (f, e) => {
    const t = f.p.tasks.get(e.data.taskId);
    if (!t) return;
    t.pullRequest = { number: e.data.number, url: e.data.url, state: e.data.state };
    f.touch(t.taskId);
  },
  task_archived: (f, e) => {
    // Cold from now on: its views live in this event (the journal answers for it).
    f.p.archive(e.data.taskId);
  },
};
