import type { Logger } from "pino";
import { stripTerminalEscapes, type FarmEvent, type TaskView, type UnitState } from "@optimus/shared";
import type { TaskRecord, UnitMove } from "../store/projection.js";
import { taskState } from "../store/task-state.js";
import type { FarmState } from "./farm-state.js";

/** What the log keeps of a task to know its state as of the committed events: its flags and unit counts. */
interface TaskTrack {
  cancelled: boolean;
  merge?: TaskRecord["merge"];
  counts: Partial<Record<UnitState, number>>;
  state: TaskView["state"];
}

/** Reasons and worker names come from workers and repositories: no escape sequence reaches a terminal. */
const clean = (text: string) => stripTerminalEscapes(text).slice(0, 300);

/**
 * Logs every unit and task transition at info, one line each, once its event is durable: the unit
 * moves are the ones the projection recorded while folding (nothing is folded twice), and a task's
 * state is kept here from its unit counts and flags, so a batch costs one step per event and move.
 * Does nothing (and records nothing) when the log is above info. Returns a function that stops it.
 */
export function logTransitions(state: FarmState, log: Logger): () => void {
  if (!log.isLevelEnabled("info")) return () => undefined;
  const tasks = new Map<string, TaskTrack>();
  // As of now: called after the journal's replay, before anything new is committed.
  for (const t of state.projection.tasks.values()) {
    const counts: Partial<Record<UnitState, number>> = {};
    for (const k of t.units) {
      const s = state.projection.units.get(k)?.state;
      if (s) counts[s] = (counts[s] ?? 0) + 1;
    }
    tasks.set(t.taskId, { cancelled: t.cancelled, ...(t.merge ? { merge: { ...t.merge } } : {}), counts, state: taskState(t, counts) });
  }

  const unitLine = (m: UnitMove) => {
    const worker = m.worker ? clean(m.worker) : undefined;
    const reason = m.reason ? clean(m.reason) : undefined;
    const what = [`attempt ${m.attempt}`, ...(worker ? [`worker ${worker}`] : [])].join(", ");
    log.info(
      {
        unit: `${m.taskId}/${m.unitId}`,
        from: m.from ?? "new",
        to: m.to,
        attempt: m.attempt,
        ...(worker ? { worker } : {}),
        ...(reason ? { reason } : {}),
        event: m.event,
      },
      `unit ${m.taskId}/${m.unitId}: ${m.from ?? "new"} → ${m.to} (${what})${reason ? `: ${reason}` : ""}`,
    );
  };

  const settle = (taskId: string, from: TaskView["state"] | "new") => {
    const t = tasks.get(taskId);
    if (!t) return;
    const to = taskState(t, t.counts);
    if (to === from) return;
    t.state = to;
    log.info({ task: taskId, from, to }, `task ${taskId}: ${from} → ${to}`);
  };

  const onMoved = (moves: UnitMove[], events: FarmEvent[]) => {
    let i = 0;
    for (const e of events) {
      let taskId: string | undefined;
      let before: TaskView["state"] | "new" | undefined;
      if (e.type === "task_created") {
        tasks.set(e.data.taskId, { cancelled: false, counts: {}, state: "open" });
        before = "new";
      } else if (e.type === "task_archived") {
        tasks.delete(e.data.taskId);
      }
      const d = e.data as { taskId?: unknown };
      if (typeof d.taskId === "string") {
        taskId = d.taskId;
        const t = tasks.get(taskId);
        before ??= t?.state;
        if (t && e.type === "task_cancelled") t.cancelled = true;
        if (t && e.type === "task_merged") t.merge = { into: e.data.into, commit: e.data.commit };
        if (t && e.type === "task_merge_held") t.merge = { into: e.data.into, heldReason: e.data.reason };
      }
      for (; i < moves.length && moves[i]!.seq === e.seq; i++) {
        const m = moves[i]!;
        const t = tasks.get(m.taskId);
        if (t) {
          if (m.from) t.counts[m.from] = (t.counts[m.from] ?? 1) - 1;
          t.counts[m.to] = (t.counts[m.to] ?? 0) + 1;
        }
        // A unit made with its task is not a transition worth a line; where it goes from there is.
        if (m.from) unitLine(m);
      }
      if (taskId && before) settle(taskId, before);
    }
  };
  state.on("moved", onMoved);
  return () => void state.off("moved", onMoved);
}
