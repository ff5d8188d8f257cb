import { on } from "node:events";
import { unitKey, type FarmEvent, type UnitLiveView, type ViewsMessage } from "@optimus/shared";
import type { FarmServices } from "./services.js";
import { fleetView, liveAndRecent, spendSummary, taskViewOf, unitLive } from "./views.js";

/** Beyond this many events to catch up on, a fresh snapshot is cheaper than a delta. */
const MAX_CATCH_UP_EVENTS = 20_000;
/** how often the fleet (connections, load) is compared with what the client last saw */
const FLEET_POLL_MS = 1_000;
/** live progress is coalesced: at most one progress message per client per this interval */
const PROGRESS_EVERY_MS = 200;

/** Where a client's views stand: the farm's epoch and the journal seq they reflect. */
export const viewsCursor = (epoch: number, seq: number) => `${epoch}:${seq}`;

function parseCursor(id: string | null | undefined): { epoch: number; seq: number } | null {
  const m = /^(\d+):(\d+)$/.exec(id ?? "");
  return m ? { epoch: Number(m[1]), seq: Number(m[2]) } : null;
}

/** The keys of the tasks and units an event changed. */
function touchedBy(e: FarmEvent, s: FarmServices, tasks: Set<string>, units: Set<string>): boolean {
  let d = e.data as { taskId?: string; unitId?: string; reviewUnitId?: string; planUnitId?: string; requestId?: string };
  const money = e.type.startsWith("escalation");
  // Admission and settlement name only the request: its unit is in the ledger.
  if (!d.taskId && d.requestId) d = s.state.projection.ledger.entries.get(d.requestId) ?? d;
  if (!d.taskId) return money;
  tasks.add(d.taskId);
  if (d.unitId) units.add(unitKey(d.taskId, d.unitId));
  if (d.reviewUnitId) units.add(unitKey(d.taskId, d.reviewUnitId));
  // Events that create or end many units at once: send every unit of the task.
  if (e.type === "task_created" || e.type === "units_planned" || e.type === "task_cancelled" || !d.unitId) {
    for (const k of s.state.projection.tasks.get(d.taskId)?.units ?? []) units.add(k);
  }
  return money;
}

function delta(s: FarmServices, seq: number, tasks: Set<string>, units: Set<string>, money: boolean): ViewsMessage {
  return {
    kind: "delta",
    epoch: s.state.epoch,
    seq,
    serverTime: Date.now(),
    ...(money ? { spend: spendSummary(s) } : {}),
    tasks: [...tasks].map((t) => taskViewOf(s, t)).filter((t) => t !== undefined),
    units: [...units].map((k) => unitLive(s, k)).filter((u): u is UnitLiveView => u !== undefined),
  };
}

/** Live work and a page of recent history (older finished tasks are fetched on demand: `views.history`). */
async function snapshot(s: FarmServices): Promise<ViewsMessage> {
  // Where it stands is read in the same turn as the live work (liveAndRecent reads it before it awaits).
  const at = { epoch: s.state.epoch, seq: s.state.journal.lastCommittedSeq() };
  const views = await liveAndRecent(s);
  return { kind: "snapshot", ...at, serverTime: Date.now(), ...views, workers: fleetView(s), spend: spendSummary(s) };
}

/**
 * An editor's live view of the farm: a snapshot (or, resuming within the same epoch, the current
 * views of whatever changed since its cursor), then deltas after each durable commit, worker
 * progress and fleet changes. Views are state, not events, so a message sent twice is harmless and
 * one missed is impossible: on resume everything touched after the cursor is sent again. A new epoch
 * (the farm restarted) always gets a fresh snapshot, since in-memory state it showed may never have
 * become durable.
 */
export async function* viewsStream(
  s: FarmServices,
  lastEventId: string | null | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<ViewsMessage> {
  const wake = new AbortController();
  const stop = () => wake.abort();
  signal?.addEventListener("abort", stop, { once: true });
  // Subscribed before anything is read, so no commit falls between the catch-up and live.
  const committed = on(s.state, "committed", { signal: wake.signal }) as AsyncIterableIterator<[FarmEvent[]]>;
  const progressKeys = new Set<string>();
  const onProgress = (k: string) => progressKeys.add(k);
  s.leases.progressEvents.on("progress", onProgress);
  let timer: NodeJS.Timeout | undefined;
  try {
    const cursor = parseCursor(lastEventId);
    let sent: number;
    const head = s.state.journal.lastCommittedSeq();
    if (cursor && cursor.epoch === s.state.epoch && cursor.seq <= head && head - cursor.seq <= MAX_CATCH_UP_EVENTS) {
      const tasks = new Set<string>(),
        units = new Set<string>();
      let money = false;
      for (let at = cursor.seq; at < head;) {
        const page = await s.state.journal.readAfter(at, 2_000);
        if (page.length === 0) break;
        for (const e of page) if (e.seq <= head) money = touchedBy(e, s, tasks, units) || money;
        at = page[page.length - 1]!.seq;
      }
      sent = head;
      yield delta(s, sent, tasks, units, money);
      // What was running meanwhile: its progress now.
      for (const k of s.leases.progress.keys()) progressKeys.add(k);
    } else {
      const snap = await snapshot(s);
      sent = snap.seq;
      yield snap;
    }
    let fleetJson = JSON.stringify(fleetView(s));

    // One loop wakes on commits, progress and a fleet timer; each pass sends what changed.
    const tick = new EventTarget();
    timer = setInterval(() => tick.dispatchEvent(new Event("tick")), Math.min(FLEET_POLL_MS, PROGRESS_EVERY_MS));
    const pendingTasks = new Set<string>(),
      pendingUnits = new Set<string>();
    let pendingMoney = false;
    let pendingSeq = sent;
    let lastFleetCheck = 0;
    const pump = (async () => {
      for await (const [events] of committed) {
        for (const e of events) {
          if (e.seq <= pendingSeq) continue;
          pendingMoney = touchedBy(e, s, pendingTasks, pendingUnits) || pendingMoney;
          pendingSeq = e.seq;
        }
        tick.dispatchEvent(new Event("tick"));
      }
    })().catch(() => undefined);
    const ticks = on(tick, "tick", { signal: wake.signal });
    for await (const _ of ticks) {
      if (pendingSeq > sent) {
        const msg = delta(s, pendingSeq, pendingTasks, pendingUnits, pendingMoney);
        pendingTasks.clear();
        pendingUnits.clear();
        pendingMoney = false;
        sent = pendingSeq;
        yield msg;
      }
      if (progressKeys.size > 0) {
        const units = [...progressKeys]
          .map((k) => {
            const u = unitLive(s, k);
            return u ? { taskId: u.taskId, unitId: u.unitId, progress: u.progress ?? null } : null;
          })
          .filter((u) => u !== null);
        progressKeys.clear();
        if (units.length) yield { kind: "progress", epoch: s.state.epoch, seq: sent, serverTime: Date.now(), units };
      }
      if (Date.now() - lastFleetCheck >= FLEET_POLL_MS) {
        lastFleetCheck = Date.now();
        const workers = fleetView(s);
        const json = JSON.stringify(workers);
        if (json !== fleetJson) {
          fleetJson = json;
          yield { kind: "fleet", epoch: s.state.epoch, seq: sent, serverTime: Date.now(), workers };
        }
      }
    }
    await pump;
  } catch (err) {
    if ((err as Error).name !== "AbortError") throw err;
  } finally {
    clearInterval(timer);
    s.leases.progressEvents.off("progress", onProgress);
    signal?.removeEventListener("abort", stop);
    wake.abort();
    await committed.return?.();
  }
}
